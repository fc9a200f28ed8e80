"""Shards, merge and resume through the CLI on fake guests (real captures): every job once, nothing half-written."""

import json
from pathlib import Path

import pandas as pd
import pytest
from test_run_failures import CAPTURE, FakeVM, _fake_build

from harness import cli
from harness import run as main_job
from harness.errors import VMError

MATRIX = ["--flavors", "vanilla", "--topologies", "two-node", "--repeat", "4", "--seconds", "1",
          "--interval", "60"]


@pytest.fixture
def fake_guests(tmp_path, monkeypatch):
    """Guests answer from a real two-node capture; `fail` names guests whose next boot fails (VMError)."""
    monkeypatch.setattr(main_job, "qemu_version", lambda: "QEMU emulator version 7.2.22")
    (tmp_path / "config").write_text((CAPTURE / "config").read_text())
    monkeypatch.setattr(main_job.kernel, "build", _fake_build(tmp_path))
    monkeypatch.setattr(main_job.time, "sleep", lambda s: None)
    state = {"booted": [], "fail": set()}

    def guest(bz, topo, workdir, **kw):
        state["booted"].append(kw["name"])
        if kw["name"] in state["fail"]:
            state["fail"].discard(kw["name"])
            raise VMError(f"{kw['name']}: QEMU died (a test)")
        return FakeVM(kw["name"])
    monkeypatch.setattr(main_job, "guest", guest)
    return state


def _run(out, *extra):
    before = set(out.iterdir()) if out.exists() else set()
    status = cli.main(["run", *MATRIX, "--out", str(out), *extra])
    (run,) = set(out.iterdir()) - before
    return status, run


def _meta(run):
    return json.loads((run / "metadata.json").read_text())


def test_a_run_records_its_jobs_and_each_guest_once(tmp_path, fake_guests):
    status, run = _run(tmp_path / "runs")
    assert status == 0, (run / "summary.txt").read_text()
    meta = _meta(run)
    assert meta["executor"] == "sequential" and meta["shard"] is None and len(meta["jobs"]) == 4
    guests = meta["guests"]
    assert [g["dir"] for g in guests] == [f"vanilla-two-node-r{k}" for k in range(1, 5)]
    assert [g["job"] for g in guests] == [j["id"] for j in meta["jobs"]]
    assert all(g["digest"] and g["host"] for g in guests)
    # the layout of a run as before: guest dirs and the run's three files, nothing staged
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["checks.csv", "metadata.json", "summary.txt"] + [g["dir"] for g in guests])


def test_shards_merge_into_the_whole_run(tmp_path, fake_guests):
    out = tmp_path / "runs"
    _, full = _run(out)
    shards = []
    for k in (1, 2, 3):
        status, run = _run(out, "--shard", f"{k}/3")
        assert status == 0
        shards.append(run)
    sizes = [len(_meta(s)["guests"]) for s in shards]
    assert sorted(sizes) == [1, 1, 2] and _meta(shards[0])["shard"] == "1/3"

    merged = tmp_path / "merged"
    assert cli.main(["merge", *map(str, shards), "--out", str(merged)]) == 0
    meta, whole = _meta(merged), _meta(full)
    assert [g["job"] for g in meta["guests"]] == [g["job"] for g in whole["guests"]]
    assert [g["order"] for g in meta["guests"]] == [0, 1, 2, 3]
    assert meta["status"] == "ok" and len(meta["merged_from"]) == 3
    assert len(pd.read_csv(merged / "checks.csv")) == len(pd.read_csv(full / "checks.csv"))
    assert (merged / "summary.txt").read_text().count("vanilla  two-node  ok") == 4
    # the merged run is a run: checks offline, merges again with itself (same digests) to the same jobs
    assert cli.main(["check", str(merged)]) == 0
    again = tmp_path / "again"
    assert cli.main(["merge", str(merged), *map(str, shards), "--out", str(again)]) == 0
    assert len(_meta(again)["guests"]) == 4


def test_merge_refuses_conflicts_and_reports_missing_jobs(tmp_path, fake_guests, capsys):
    out = tmp_path / "runs"
    _, full = _run(out)
    _, first = _run(out, "--shard", "1/2")
    # the same jobs with other results (the full run and a shard overlap): exit 2, nothing written
    assert cli.main(["merge", str(full), str(first), "--out", str(tmp_path / "m1")]) == 2
    assert "different results" in capsys.readouterr().err
    assert not (tmp_path / "m1").exists() and not list(tmp_path.glob(".m1*"))
    # one shard alone: merged, but incomplete (exit 3) and saying which jobs are missing
    assert cli.main(["merge", str(first), "--out", str(tmp_path / "m2")]) == 3
    err = capsys.readouterr().err
    assert "2 jobs of the matrix are in none of the runs" in err and "--resume" in err
    assert _meta(tmp_path / "m2")["status"] == "incomplete"
    # an existing --out, a run of another matrix, a directory that is no run: exit 2
    assert cli.main(["merge", str(first), "--out", str(tmp_path / "m2")]) == 2
    assert "exists" in capsys.readouterr().err
    status, other = _run(out, "--shard", "2/2", "--seconds", "2")
    assert cli.main(["merge", str(first), str(other), "--out", str(tmp_path / "m3")]) == 2
    assert "different matrices" in capsys.readouterr().err
    assert cli.main(["merge", str(tmp_path), "--out", str(tmp_path / "m4")]) == 2


def test_merge_refuses_a_guest_directory_edited_after_its_run(tmp_path, fake_guests, capsys):
    _, run = _run(tmp_path / "runs")
    (run / "vanilla-two-node-r2" / "workload.log").write_text("edited\n")
    assert cli.main(["merge", str(run), "--out", str(tmp_path / "m")]) == 2
    assert "vanilla-two-node-r2" in capsys.readouterr().err


def test_resume_runs_again_only_the_infrastructure_failures(tmp_path, fake_guests, capsys):
    fake_guests["fail"] = {"vanilla-two-node-r2"}
    status, run = _run(tmp_path / "runs")
    assert status == 3
    meta = _meta(run)
    assert [g["status"] for g in meta["guests"]] == ["ok", "error", "ok", "ok"]
    assert meta["status"] == "failed"
    fake_guests["booted"].clear()
    assert cli.main(["run", "--resume", str(run)]) == 0
    assert fake_guests["booted"] == ["vanilla-two-node-r2"]
    meta = _meta(run)
    assert [g["status"] for g in meta["guests"]] == ["ok"] * 4 and meta["status"] == "ok"
    assert len({g["job"] for g in meta["guests"]}) == 4 and len(meta["resumed"]) == 1
    assert (run / "summary.txt").read_text().count("vanilla  two-node  ok") == 4
    assert not (run / main_job.STAGING).exists()
    # nothing left to do: a second resume boots nothing
    fake_guests["booted"].clear()
    assert cli.main(["run", "--resume", str(run)]) == 0 and fake_guests["booted"] == []
    # a guest directory that went missing is run again
    import shutil
    shutil.rmtree(run / "vanilla-two-node-r4")
    assert cli.main(["run", "--resume", str(run)]) == 0 and fake_guests["booted"] == ["vanilla-two-node-r4"]


def test_resume_keeps_check_failures(tmp_path, fake_guests, monkeypatch):
    status, run = _run(tmp_path / "runs")
    meta = _meta(run)
    meta["guests"][0]["status"] = "check-failed"
    (run / "metadata.json").write_text(json.dumps(meta))
    fake_guests["booted"].clear()
    assert cli.main(["run", "--resume", str(run)]) == 4   # still failed: the finding stays
    assert fake_guests["booted"] == []


@pytest.mark.parametrize("args, words", [
    (["--resume", "RUN", "--flavors", "regions"], "drop --flavors"),
    (["--resume", "RUN", "--shard", "1/2"], "drop --shard"),
    (["--resume", "NOWHERE"], "not a run directory"),
])
def test_resume_errors_name_the_option(tmp_path, fake_guests, capsys, args, words):
    _, run = _run(tmp_path / "runs")
    args = [str(run) if a == "RUN" else str(tmp_path / a) if a == "NOWHERE" else a for a in args]
    assert cli.main(["run", *args]) == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize("args, words", [
    (["--parallel", "0"], "--parallel 0"),
    (["--scheduler", "localhost:8786"], "tcp://"),
    (["--scheduler", "tcp://h:8786", "--parallel", "2"], "--parallel with --scheduler"),
    (["--scheduler", "tcp://h:8786", "--ssh-hosts", "a"], "give one"),
    (["--ssh-hosts", ","], "--ssh-hosts"),
    (["--ssh-hosts", "a b"], "not a host name"),
    (["--shard", "3/2"], "--shard"),
    (["--shard", "5/5"], "slice of the 4 jobs is empty"),
])
def test_bad_executor_options_exit_2_before_any_build(tmp_path, monkeypatch, capsys, args, words):
    def build(*_a, **_kw):
        raise AssertionError("kernel.build called before the options were validated")
    monkeypatch.setattr(main_job.kernel, "build", build)
    assert cli.main(["run", *MATRIX, "--out", str(tmp_path), *args]) == 2
    assert words in capsys.readouterr().err
    assert list(Path(tmp_path).iterdir()) == []


def test_the_ci_workflow_shards_the_matrix_and_merges_every_shard():
    import re

    import yaml

    wf = yaml.safe_load((Path(__file__).resolve().parents[2] / "ci" / "workflow.yml").read_text())
    matrix, merge = wf["jobs"]["matrix"], wf["jobs"]["merge"]
    shards = matrix["strategy"]["matrix"]["shard"]
    script = " ".join(s.get("run", "") for s in matrix["steps"])
    (n,) = re.findall(r"--shard \$\{\{ matrix\.shard \}\}/(\d+)", script)
    assert shards == list(range(1, int(n) + 1))      # N slices, one runner each
    assert merge["needs"] == "matrix" and "always()" in merge["if"]
    merge_script = " ".join(s.get("run", "") for s in merge["steps"])
    assert "harness\" merge shards/run-shard-*/*/ --out" in merge_script
