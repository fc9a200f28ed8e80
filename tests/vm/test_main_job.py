"""The main job end to end on one small topology: run directory, offline check, comparison."""

import json

import pandas as pd
import pytest

from harness import cli
from harness.results import store
from harness.results.metrics import extract_metrics


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, rh_build):
    rh_build("vanilla"), rh_build("regions")   # build errors surface here, not as a run failure
    out = tmp_path_factory.mktemp("runs")
    status = cli.main(["run", "--flavors", "vanilla,regions,regions+mem_region_sort=0",
                       "--topologies", "interleaved-small", "--seconds", "8", "--interval", "2",
                       "--region-size", "512M",
                       "--out", str(out)])
    (run,) = out.iterdir()
    assert status == 0, (run / "summary.txt").read_text()
    return run


def test_run_directory_has_everything(run_dir):
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["status"] == "ok"
    assert set(meta["kernels"]) == {"vanilla", "regions"}
    assert all(k["key"] for k in meta["kernels"].values())
    assert meta["qemu"].startswith("QEMU emulator version")
    assert len(meta["guests"]) == 3
    for g in meta["guests"]:
        assert "-acpitable" in g["qemu_argv"] and g["boot_seconds"] > 0
    guest = run_dir / "regions-interleaved-small"
    for name in ("console.log", "vm.json", "dmesg.txt", "config", "workload.log", "checks.csv"):
        assert (guest / name).is_file(), name
    # no secrets and no 37 MiB image copies in a stored run
    assert not list(run_dir.rglob("id_harness*")) and not list(run_dir.rglob("*.cpio"))
    assert sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file()) < 20 << 20
    labels = [p.name for p in store.snapshot_dirs(guest)]
    assert labels[0] == "before" and labels[-1] == "after"
    assert any(label.startswith("during-") for label in labels), "no sample while the workload ran"


def test_metrics_read_back_with_pandas(run_dir):
    z = pd.read_csv(run_dir / "regions-interleaved-small" / "metrics" / "zoneinfo.csv")
    assert {"snapshot", "host_time", "node", "zone", "nr_free_pages", "present"} <= set(z.columns)
    assert set(z["node"]) == {0, 1}
    r = store.load_metric(run_dir / "regions-interleaved-small", "mem_regions.regions")
    after = r[r["snapshot"] == "after"]
    # per node: three 512M regions in its DMA32 span, the middle one the other node's stripe
    assert len(after) == 6
    assert after.groupby("node")["present"].apply(lambda p: list(p > 0)).tolist() == [[True, False, True]] * 2


def test_check_offline_and_compare(run_dir, tmp_path, capsys):
    assert cli.main(["check", str(run_dir)]) == 0
    assert "0 not ok" in capsys.readouterr().out
    # one guest per variant: a comparison is only indicative, never a verdict
    assert cli.main(["compare", str(run_dir), "--base-variant", "regions+mem_region_sort=0",
                     "--new-variant", "regions", "--out", str(tmp_path)]) == 0
    report = pd.read_csv(tmp_path / "compare.csv")
    # a metric with a value on both sides is a single sample; one undefined on a side (a
    # THP success ratio when the 8 s workload took no THP fault there) is UNKNOWN, never a verdict
    both = report[(report["n_base"] > 0) & (report["n_new"] > 0)]
    assert not both.empty and (both["verdict"] == "single sample").all()
    assert (report.loc[~report.index.isin(both.index), "verdict"] == "UNKNOWN").all()
    assert not report["direction"].isin(["REGRESSION", "IMPROVEMENT"]).any()
    fr = extract_metrics(run_dir / "regions-interleaved-small")
    assert fr["free_regions_after"] >= 0 and fr["boot_seconds"] > 0


def test_check_fails_on_a_tampered_run(run_dir, tmp_path):
    """Copy a guest, break its zoneinfo by one page: harness check must exit 4."""
    import shutil
    guest = tmp_path / "regions-interleaved-small"
    shutil.copytree(run_dir / "regions-interleaved-small", guest)
    zi = guest / "snapshots" / "before" / "zoneinfo"
    text = zi.read_text()
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("present"))
    zi.write_text(text.replace(line, line.replace(line.split()[-1], str(int(line.split()[-1]) + 1)), 1))
    assert cli.main(["check", str(guest)]) == 4
