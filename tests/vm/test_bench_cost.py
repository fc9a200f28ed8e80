"""The deterministic cost benchmark on real kernels: repeats agree, and the series stays within its cost limits."""

from pathlib import Path

import pytest
import yaml

from harness import bench, cli

LIMITS = Path(__file__).resolve().parents[2] / "benchmarks" / "cost-limits.yaml"


@pytest.fixture(scope="module")
def cost(tmp_path_factory, rh_build):
    spec = yaml.safe_load(LIMITS.read_text())
    rh_build("regions")
    out = tmp_path_factory.mktemp("cost")
    opts = bench.CostOptions(variants=(spec["baseline"], *spec["variants"]), topology="two-node",
                             orders=tuple(spec["orders"]), repeat=2, out=out)
    table = bench.run_cost(opts, progress=lambda *_: None)
    return spec, table, bench.summarize(table, opts.variants), out


def test_repeats_agree_within_half_a_percent(cost):
    _, table, summary, out = cost
    assert (out / "cost.csv").is_file()
    assert set(table["measure"]) == {"alloc+free order 0", "alloc+free order 10", "pfbench order 0",
                                     "pfbench order 9"}
    # the gated figures repeat within 0.5% (measured: 0.1%); pfbench's fault path varies a
    # few units in 600 between boots (0.2-0.5%), so order 0 gets 1% and is not gated. Order
    # 9 madvise(MADV_HUGEPAGE)s since the base config has madvise: with THP defrag=madvise
    # its faults compact directly, as fragmented as the boot left memory (1.1% seen): 2%
    gated = summary[summary["measure"].str.startswith("alloc+free")]
    assert gated["deterministic"].all(), gated[~gated["deterministic"]].to_string()
    faults = summary[summary["measure"].str.startswith("pfbench")]
    limit = faults["order"].map({0: 0.01, 9: 0.02})
    assert (faults["spread"] <= limit).all(), faults.to_string()


def test_region_policies_stay_within_the_cost_limits(cost):
    spec, _, summary, _ = cost
    for variant in spec["variants"]:
        mine = summary[(summary["variant"] == variant) & (summary["path"].isin(spec["limits"]))]
        assert set(mine["path"]) == set(spec["limits"]), variant
        for row in mine.itertuples():
            assert row.ratio <= spec["limits"][row.path], (
                f"{variant}: {row.measure} ({row.path}): {row.ratio:.3f}x the policies-off baseline, "
                f"limit {spec['limits'][row.path]} in {LIMITS.name}")


def test_cli_prints_the_unit_and_fails_on_bad_orders(capsys):
    assert cli.main(["bench", "cost", "--orders", "12"]) == 2
    assert "--orders" in capsys.readouterr().err
