"""Verdicts on real repeated guests: an A/A pair raises no alarm, a known difference is flagged the right way.

One run, repetitions interleaved: `regions` and `regions+mem_region_sort=1` are the
same kernel with the same behaviour (sorting is on by default) under two names, the
A/A pair; `regions+mem=1792M` hides 256 MiB from the kernel, so its free pages after
the workload are lower on every repetition: a difference that must be found. Two guests
run at once (--parallel 2, a local dask cluster), in the interleaved order.
"""

import json

import pandas as pd
import pytest

from harness import cli
from harness.results.metrics import METRICS

A, A_AGAIN, SMALLER = "regions", "regions+mem_region_sort=1", "regions+mem=1792M"
REPEAT = 5


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, rh_build):
    rh_build("regions")
    out = tmp_path_factory.mktemp("runs")
    status = cli.main(["run", "--flavors", f"{A},{A_AGAIN},{SMALLER}", "--topologies", "one-node",
                       "--repeat", str(REPEAT), "--seconds", "2", "--interval", "1", "--parallel", "2",
                       "--out", str(out)])
    (run,) = out.iterdir()
    assert status == 0, (run / "summary.txt").read_text()
    return run


def test_repetitions_are_interleaved_and_recorded(run_dir):
    guests = json.loads((run_dir / "metadata.json").read_text())["guests"]
    assert len(guests) == 3 * REPEAT
    assert [g["flavor"] for g in guests[:6]] == [A, A_AGAIN, SMALLER] * 2
    assert [g["order"] for g in guests] == list(range(3 * REPEAT))
    assert all((run_dir / g["dir"] / "metrics" / "zoneinfo.csv").is_file() for g in guests)


def test_a_a_raises_no_alarm(run_dir, tmp_path):
    assert cli.main(["compare", str(run_dir), "--base-variant", A, "--new-variant", A_AGAIN,
                     "--out", str(tmp_path)]) == 0
    report = pd.read_csv(tmp_path / "compare.csv")
    assert not (report["verdict"] == "DIFFERENT").any(), report.to_string()
    # every guest gave every metric, but the ratios of no events (THP success without a THP fault)
    defined = report["metric"].map(lambda m: METRICS[m].undefined_when is None)
    assert (report.loc[defined, "n_base"] == REPEAT).all(), report.to_string()


def test_known_difference_is_flagged_in_its_direction(run_dir, tmp_path):
    args = ["--metrics", "nr_free_pages_after", "--out", str(tmp_path)]
    assert cli.main(["compare", str(run_dir), "--base-variant", A, "--new-variant", SMALLER, *args]) == 4
    row = pd.read_csv(tmp_path / "compare.csv").iloc[0]
    assert (row["verdict"], row["direction"]) == ("DIFFERENT", "REGRESSION")
    assert row["ratio_high"] < 1.0   # the whole interval says fewer free pages
    assert cli.main(["compare", str(run_dir), "--base-variant", SMALLER, "--new-variant", A, *args]) == 0
    assert pd.read_csv(tmp_path / "compare.csv").iloc[0]["direction"] == "IMPROVEMENT"


def test_report_renders_from_the_run(run_dir):
    from harness.results.report import figure_files

    assert cli.main(["report", str(run_dir)]) == 0
    page = run_dir / "report" / "report.html"
    for f in figure_files(page):
        assert f.is_file() and f.stat().st_size > 2000, f
