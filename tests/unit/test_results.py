"""Run store and regression comparison on run directories assembled from real captures."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from harness.errors import UserError
from harness.results import compare, store

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"
SNAPSHOT_FILES = ("zoneinfo", "buddyinfo", "pagetypeinfo", "vmstat", "node0-meminfo")


def make_guest(run: Path, name: str, capture: str, boot: float, pgfault_extra: int = 0) -> Path:
    """A guest dir whose before and after snapshots are the same real capture (after: + faults)."""
    g = run / name
    src = CAPTURES / capture
    for label in ("before", "after"):
        d = g / "snapshots" / label
        d.mkdir(parents=True)
        for f in SNAPSHOT_FILES:
            shutil.copy(src / f, d / f)
        (d / "time").write_text(f"host 1000.0\nguest_uptime {5.0 if label == 'before' else 30.0}\n")
    vm = g / "snapshots" / "after" / "vmstat"
    lines = [f"pgfault {int(ln.split()[1]) + pgfault_extra}" if ln.startswith("pgfault ") else ln
             for ln in vm.read_text().splitlines()]
    vm.write_text("\n".join(lines) + "\n")
    shutil.copy(src / "dmesg.txt", g / "dmesg.txt")
    (g / "vm.json").write_text(json.dumps({"boot_seconds": boot}))
    store.write_metrics(g)
    return g


@pytest.fixture
def two_runs(tmp_path):
    base, new = tmp_path / "base", tmp_path / "new"
    make_guest(base, "vanilla-two-node", "6.12-vanilla-two-node", boot=6.0, pgfault_extra=1000)
    make_guest(new, "vanilla-two-node", "6.12-vanilla-two-node", boot=6.1, pgfault_extra=2000)
    return base, new


def test_metrics_are_stacked_per_snapshot(two_runs):
    base, _ = two_runs
    z = store.load_metric(base / "vanilla-two-node", "zoneinfo")
    assert list(z.columns[:3]) == ["snapshot", "host_time", "guest_uptime"]
    assert sorted(set(z["snapshot"])) == ["after", "before"]
    # two nodes x three zones (DMA32, Normal, Movable) per snapshot, exactly as captured
    assert len(z[z["snapshot"] == "before"]) == 6
    assert set(z["node"]) == {0, 1}


def test_compare_flags_a_regression_and_not_noise(two_runs):
    report = compare.compare_runs(*two_runs)
    row = report.set_index("metric").loc["pgfault_delta"]
    assert (row["base"], row["new"], row["verdict"]) == (1000, 2000, "REGRESSION")
    assert row["ratio"] == pytest.approx(2.0)
    boot = report.set_index("metric").loc["boot_seconds"]
    assert boot["verdict"] == "same"             # +1.7 % is under the 25 % threshold
    assert "1 regression(s)" in compare.render(report)


def test_compare_rejects_unknown_metric_and_non_runs(two_runs, tmp_path):
    with pytest.raises(UserError, match="unknown metric"):
        compare.compare_runs(*two_runs, metrics=["bogomips"])
    with pytest.raises(UserError, match="not a run directory"):
        compare.run_metrics(tmp_path / "nope")


def test_snapshot_order_is_time_order(tmp_path):
    for label in ("after", "during-001", "before", "during-000", "during-010.tmp"):
        (tmp_path / "snapshots" / label).mkdir(parents=True)
    assert [p.name for p in store.snapshot_dirs(tmp_path)] == ["before", "during-000", "during-001", "after"]


def test_write_csv_roundtrip(tmp_path):
    df = pd.DataFrame({"a": [1, 2]}, index=pd.MultiIndex.from_tuples([(0, "DMA32"), (1, "DMA32")],
                                                                     names=["node", "zone"]))
    store.write_csv(tmp_path / "x.csv", df)
    back = pd.read_csv(tmp_path / "x.csv")
    assert list(back.columns) == ["node", "zone", "a"] and back["a"].tolist() == [1, 2]
    assert not list(tmp_path.glob(".x.csv.*")), "temp file left behind"


def test_aborted_run_says_so(tmp_path, monkeypatch):
    """A build failure mid-run leaves metadata.json with status aborted and the error."""
    from harness import run as main_job
    from harness.errors import BuildError

    def failing_build(*a, **kw):
        raise BuildError("make exited 2", log_path="/x/build.log", excerpt="mm/page_alloc.c:1: error: boom")
    monkeypatch.setattr(main_job.kernel, "build", failing_build)
    monkeypatch.setattr(main_job, "qemu_version", lambda: "QEMU emulator version 7.2.22")
    opts = main_job.RunOptions(flavors=("vanilla",), topologies=("two-node",), out=tmp_path)
    with pytest.raises(BuildError):
        main_job.run(opts, progress=lambda *_: None)
    (run_dir,) = tmp_path.iterdir()
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["status"] == "aborted"
    assert "BuildError: make exited 2" in meta["error"] and "boom" in meta["error"]
