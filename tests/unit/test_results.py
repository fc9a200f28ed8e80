"""Run store and regression comparison on run directories assembled from real captures."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from harness import cli
from harness.errors import UserError
from harness.fs import write_csv
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
        if (src / "mem_regions").is_dir():
            shutil.copytree(src / "mem_regions", d / "mem_regions")
        (d / "time").write_text(f"host 1000.0\nguest_uptime {5.0 if label == 'before' else 30.0}\n")
    vm = g / "snapshots" / "after" / "vmstat"
    lines = [f"pgfault {int(ln.split()[1]) + pgfault_extra}" if ln.startswith("pgfault ") else ln
             for ln in vm.read_text().splitlines()]
    vm.write_text("\n".join(lines) + "\n")
    shutil.copy(src / "dmesg.txt", g / "dmesg.txt")
    (g / "vm.json").write_text(json.dumps({"boot_seconds": boot}))
    store.write_metrics(g)
    return g


def make_run(run: Path, faults: dict[str, list[int]], status: str = "ok", capture: str = "6.12-vanilla-two-node",
             topology: str = "two-node") -> Path:
    """A run with one guest per repetition of each variant; faults[variant][k] is repetition k's extra faults."""
    guests = []
    repeat = max(len(v) for v in faults.values())
    for variant, extras in faults.items():
        for rep, extra in enumerate(extras, 1):
            name = f"{variant}-{topology}" + (f"-r{rep}" if repeat > 1 else "")
            make_guest(run, name, capture, boot=6.0 + rep / 100, pgfault_extra=extra)
            guests.append({"flavor": variant, "topology": topology, "repetition": rep, "dir": name,
                           "status": "ok", "workload_seconds": 20.0 + rep / 10})
    (run / "metadata.json").write_text(json.dumps({"status": status, "guests": guests}))
    return run


def _row(report, metric):
    return report.set_index("metric").loc[metric]


def test_metrics_are_stacked_per_snapshot(tmp_path):
    run = make_run(tmp_path / "base", {"vanilla": [1000]})
    z = store.load_metric(run / "vanilla-two-node", "zoneinfo")
    assert list(z.columns[:3]) == ["snapshot", "host_time", "guest_uptime"]
    assert sorted(set(z["snapshot"])) == ["after", "before"]
    # two nodes x three zones (DMA32, Normal, Movable) per snapshot, exactly as captured
    assert len(z[z["snapshot"] == "before"]) == 6
    assert set(z["node"]) == {0, 1}


def test_one_sample_per_side_is_only_indicative(tmp_path):
    base = make_run(tmp_path / "base", {"vanilla": [1000]})
    new = make_run(tmp_path / "new", {"vanilla": [2000]})
    report = compare.compare_runs(base, new)
    row = _row(report, "pgfault_delta")
    assert (row["median_base"], row["median_new"], row["verdict"]) == (1000, 2000, "single sample")
    assert row["direction"] == "indicative regression" and row["ratio"] == pytest.approx(2.0)
    assert compare.failures(report).empty
    assert "0 regression(s)" in compare.render(report)


def test_repeated_regression_is_found_and_fails(tmp_path, capsys):
    base = make_run(tmp_path / "base", {"vanilla": [1000 + 7 * i for i in range(8)]})
    new = make_run(tmp_path / "new", {"vanilla": [5000 + 7 * i for i in range(8)]})  # floor: 1000
    report = compare.compare_runs(base, new)
    row = _row(report, "pgfault_delta")
    assert (row["verdict"], row["direction"]) == ("DIFFERENT", "REGRESSION")
    assert row["ratio_low"] <= row["ratio"] <= row["ratio_high"]
    # what did not change between the runs is not flagged
    assert _row(report, "nr_free_pages_after")["verdict"] == "SAME"
    assert cli.main(["compare", str(base), str(new), "--out", str(tmp_path / "cmp")]) == 4
    assert "1 regression(s)" in capsys.readouterr().out
    assert (tmp_path / "cmp" / "compare.csv").is_file()
    assert cli.main(["compare", str(new), str(base)]) == 0   # the other way round it is an improvement


def test_within_one_run_by_variant(tmp_path):
    run = make_run(tmp_path / "run", {"regions+mem_region_sort=0": [1000 + i for i in range(8)],
                                      "regions": [3000 + i for i in range(8)]})
    report = compare.compare_variants(run, "regions+mem_region_sort=0", "regions")
    assert _row(report, "pgfault_delta")["direction"] == "REGRESSION"
    assert cli.main(["compare", str(run), "--base-variant", "regions", "--new-variant",
                     "regions+mem_region_sort=0"]) == 0
    assert cli.main(["compare", str(run), "--base-variant", "nope", "--new-variant", "regions"]) == 2


def test_vanished_guest_is_a_failure_and_failed_base_is_refused(tmp_path):
    base = make_run(tmp_path / "base", {"vanilla": [1000], "regions": [1000]})
    new = make_run(tmp_path / "new", {"vanilla": [1000]})
    report = compare.compare_runs(base, new)
    missing = report[report["verdict"] == "MISSING"]
    assert not missing.empty and set(missing["base"]) == {"regions"}
    assert cli.main(["compare", str(base), str(new)]) == 4
    failed = make_run(tmp_path / "failed", {"vanilla": [1000]}, status="failed")
    assert cli.main(["compare", str(failed), str(new)]) == 2
    assert cli.main(["compare", str(failed), str(new), "--allow-failed-base"]) == 0


def test_a_ratio_of_no_events_is_not_comparable_but_a_lost_metric_is_missing():
    """CI: one of five base guests had a THP fault, no new guest had one; that is no failure."""
    nan = float("nan")

    def samples(variant, thp, free):
        return [compare.Sample(variant, "one-node", i, {"thp_fault_success": t, "nr_free_pages_after": f})
                for i, (t, f) in enumerate(zip(thp, free, strict=True))]

    base = {"one-node": samples("a", [1.0, nan, nan, nan, nan], [5e5] * 5)}
    new = {"one-node": samples("b", [nan] * 5, [nan] * 5)}
    metrics = ("thp_fault_success", "nr_free_pages_after")
    report = compare.judge_groups(base, new, {"one-node": "a"}, {"one-node": "b"}, metrics, alpha=0.05)
    by = report.set_index("metric")
    assert by.loc["thp_fault_success", "verdict"] == "UNKNOWN"
    assert "no THP fault" in by.loc["thp_fault_success", "note"]
    assert by.loc["nr_free_pages_after", "verdict"] == "MISSING"
    assert compare.failures(report)["metric"].tolist() == ["nr_free_pages_after"]


def test_compare_rejects_unknown_metric_and_non_runs(tmp_path):
    base = make_run(tmp_path / "base", {"vanilla": [1000]})
    with pytest.raises(UserError, match="unknown metric"):
        compare.compare_runs(base, base, metrics=("bogomips",))
    with pytest.raises(UserError, match="not a run directory"):
        compare.compare_runs(tmp_path / "nope", base)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metadata.json").write_text("{")
    assert cli.main(["compare", str(tmp_path / "bad"), str(base)]) == 2


def test_snapshot_order_is_time_order(tmp_path):
    for label in ("after", "during-001", "before", "during-000", "during-010.tmp"):
        (tmp_path / "snapshots" / label).mkdir(parents=True)
    assert [p.name for p in store.snapshot_dirs(tmp_path)] == ["before", "during-000", "during-001", "after"]


def test_write_csv_roundtrip(tmp_path):
    df = pd.DataFrame({"a": [1, 2]}, index=pd.MultiIndex.from_tuples([(0, "DMA32"), (1, "DMA32")],
                                                                     names=["node", "zone"]))
    write_csv(tmp_path / "x.csv", df)
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


def test_report_has_every_figure_it_references(tmp_path):
    from harness.results.report import figure_files

    run = make_run(tmp_path / "run", {"regions+mem_region_sort=0": [1000 + i for i in range(3)],
                                      "regions": [1000 + 2 * i for i in range(3)]},
                   capture="6.12-regions-two-node")
    assert cli.main(["report", str(run)]) == 0
    page = run / "report" / "report.html"
    text = page.read_text()
    assert "Verdicts: each variant against regions+mem_region_sort=0" in text
    figures = figure_files(page)
    names = {f.name for f in figures}
    assert {"distributions.png", "free-regions.png", "regions-regions-two-node-r1.png"} <= names
    for f in figures:
        assert f.is_file() and f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f.stat().st_size > 2000, f


def test_last_ok_run_skips_failed_and_aborted(tmp_path):
    for name, status in (("20261130-010000", "ok"), ("20261201-010000", "failed"), ("20261201-020000", "aborted")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metadata.json").write_text(json.dumps({"status": status}))
    assert store.last_ok_run(tmp_path) == tmp_path / "20261130-010000"
    assert store.last_ok_run(tmp_path / "none") is None


def test_bisect_search_finds_the_first_bad_prefix():
    from harness.bisect import first_bad

    for n in range(1, 9):
        for culprit in range(1, n + 1):
            asked = []

            def is_bad(k, culprit=culprit, asked=asked):
                asked.append(k)
                return k >= culprit
            assert first_bad(n, is_bad) == culprit
            assert len(asked) <= max(1, n.bit_length())


def test_report_page_renders_in_a_browser(tmp_path):
    """Headless chromium shows the page: the screenshot is not blank (ci/setup.sh installs chromium)."""
    import shutil
    import subprocess

    import matplotlib.image as mpimg

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is not installed: run ci/setup.sh"
    run = make_run(tmp_path / "run", {"regions+mem_region_sort=0": [1000, 1001], "regions": [1000, 1003]},
                   capture="6.12-regions-two-node")
    assert cli.main(["report", str(run)]) == 0
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1200,1600",
                    (run / "report" / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = mpimg.imread(shot)[..., :3]
    # a blank page is one colour; a rendered report has text, tables and figures
    assert pixels.std() > 0.05 and (pixels.reshape(-1, 3) < 0.5).any(axis=1).mean() > 0.005


def test_bisect_builds_prefixes_reruns_and_names_the_culprit(tmp_path, monkeypatch):
    """bisect's wiring with fake builds and guests: prefix 3 of 4 is where pgfault jumps."""
    from harness import bisect as bis
    from harness.kernel import PatchStep
    from harness.run import GuestOutcome, GuestStatus
    from harness.variant import Variant

    base = make_run(tmp_path / "base", {"regions": [1000 + i for i in range(5)]})
    patches = [SimpleNamespace(name=f"000{k}-p.patch") for k in range(1, 5)]
    monkeypatch.setattr(bis.kernel, "parse_series", lambda: patches)
    steps = [PatchStep(p.name, True, True, 1.0, key=f"key{k}") for k, p in enumerate(patches, 1)]
    monkeypatch.setattr(bis.kernel, "build", lambda *a, **kw: SimpleNamespace(steps=steps, metadata=None))
    monkeypatch.setattr(bis.kernel, "cached_build", lambda key: SimpleNamespace(key=key))
    ran = []

    def fake_guest(build, variant, topo, opts, vm_dir, progress):
        prefix = int(build.key.removeprefix("key"))
        ran.append(prefix)
        extra = 9000 if prefix >= 3 else 1000
        make_guest(vm_dir.parent, vm_dir.name, "6.12-vanilla-two-node", boot=6.0, pgfault_extra=extra + len(ran))
        return GuestOutcome(Variant.parse("regions"), topo.name, vm_dir.name, GuestStatus.OK)
    monkeypatch.setattr(bis, "run_guest", fake_guest)
    culprit, tried = bis.bisect(bis.BisectOptions(base=base, metric="pgfault_delta", repeat=5),
                                progress=lambda *_: None)
    assert culprit == "0003-p.patch"
    assert [t["prefix"] for t in tried] == [4, 2, 3] and [t["bad"] for t in tried] == [True, False, True]
    assert sorted(set(ran)) == [2, 3, 4]


@pytest.mark.parametrize("victim", ["vm.json", "metrics/vmstat.csv"])
def test_corrupt_files_of_a_run_exit_2_naming_them(tmp_path, capsys, victim):
    base = make_run(tmp_path / "base", {"vanilla": [1000]})
    new = make_run(tmp_path / "new", {"vanilla": [1000]})
    (new / "vanilla-two-node" / victim).write_bytes(b"\xff\xfe{not,\"json\n\x00")
    assert cli.main(["compare", str(base), str(new)]) == 2
    assert victim.split("/")[-1] in capsys.readouterr().err


def _checkable_guest(run: Path, name: str, capture: str, topo: str) -> Path:
    g = make_guest(run, name, capture, boot=5.0)
    shutil.copy(CAPTURES / capture / "config", g / "config")
    shutil.copy(Path(__file__).resolve().parents[2] / "qemu-configs" / "topologies" / f"{topo}.yaml", g)
    for label in ("before", "after"):
        shutil.copytree(CAPTURES / capture / "mem_regions", g / "snapshots" / label / "mem_regions",
                        dirs_exist_ok=True)
        shutil.copy(CAPTURES / capture / "node1-meminfo", g / "snapshots" / label / "node1-meminfo")
    return g


def test_check_names_an_underflowed_region_goes_on_past_a_bad_guest_and_writes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    good = _checkable_guest(run, "regions-two-node", "6.12-regions-two-node", "two-node")
    assert cli.main(["check", str(good)]) == 0
    under = _checkable_guest(run, "regions-two-node-under", "6.12-regions-two-node", "two-node")
    zoneinfo = under / "snapshots" / "after" / "zoneinfo"
    lines = zoneinfo.read_text().splitlines()
    spots = [i for i, ln in enumerate(lines) if ln.strip().startswith("region ") and " free " in ln]
    i = spots[2]                                    # node 1's region 0: its free count went below zero
    lines[i] = lines[i].rsplit(" ", 1)[0] + f" {2**64 - 3}"
    zoneinfo.write_text("\n".join(lines) + "\n")
    broken = _checkable_guest(run, "regions-two-node-broken", "6.12-regions-two-node", "two-node")
    (broken / "dmesg.txt").write_text("not a boot log\n")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    status = cli.main(["check", str(run)])
    out = capsys.readouterr()
    assert status == 2                               # one guest could not be checked at all
    assert "regions-two-node-broken" in out.err and "== regions-two-node-under" in out.out
    assert "node1/DMA32/region0  free" in out.out    # the underflow, named by region and field
    assert cli.main(["check", str(under)]) == 4
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before, "check wrote into the stored run"


def test_the_main_job_headline_compares_the_variants_of_each_topology(tmp_path):
    from harness.metrics import parse_mem_regions
    from harness.run import GuestOutcome, GuestStatus, headline
    from harness.variant import Variant
    run = tmp_path / "run"
    capture = CAPTURES / "6.12-thpchallenge-two-node"
    g = make_guest(run, "regions-two-node", capture.name, boot=6.0)
    for label in ("before", "after"):   # the fragmentation files make_guest leaves out
        shutil.copytree(capture / "extfrag", g / "snapshots" / label / "extfrag")
        shutil.copy(capture / "mm_page_alloc_extfrag-hist", g / "snapshots" / label)
    store.write_metrics(g)
    make_guest(run, "vanilla-two-node", "6.12-vanilla-two-node", boot=6.0)
    outcomes = [GuestOutcome(Variant.parse("regions"), "two-node", "regions-two-node"),
                GuestOutcome(Variant.parse("vanilla"), "two-node", "vanilla-two-node"),
                GuestOutcome(Variant.parse("vanilla"), "two-node", "lost", status=GuestStatus.ERROR)]
    lines = headline(outcomes, run).splitlines()
    assert lines[0] == "two-node:"
    header = lines[1].split()
    assert header[:5] == ["variant", "n", "free", "regions", "before"] and "optimum" in header
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines[2:] if ln.split()[0] in ("regions", "vanilla")}
    regions = parse_mem_regions((capture / "mem_regions" / "regions").read_text())
    free = int(((regions["free"] == regions["present"]) & (regions["present"] > 0)).sum())
    # n, free before, after, % of optimum, unusable@9, THP success, fragmenting fallbacks, stalls
    n, before, after, pct, unusable, thp, fragmenting, stalls = rows["regions"]
    assert (n, int(before), int(after), stalls, fragmenting) == ("1", free, free, "0", "0")
    assert 0 < float(pct) <= 100 and 0 <= float(unusable) <= 1
    assert thp == "-"            # no THP fault between two equal snapshots: undefined, not 0
    # vanilla has no regions and no histogram: shown as missing, never as zero; the failed guest is left out
    assert rows["vanilla"][:4] == ["1", "-", "-", "-"] and rows["vanilla"][6] == "-"
