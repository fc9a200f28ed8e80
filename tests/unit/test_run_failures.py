"""The main job under bad options, a full disk and signals: right exit codes, runs marked, nothing half-written."""

import json
import os
import signal
import subprocess
import threading
import time
from types import SimpleNamespace

import pytest

from harness import cli
from harness import run as main_job
from harness.fs import atomic_write


@pytest.fixture
def no_build(monkeypatch):
    """kernel.build must not be reached: option errors come first."""
    def build(*_a, **_kw):
        raise AssertionError("kernel.build called before the options were validated")
    monkeypatch.setattr(main_job.kernel, "build", build)
    monkeypatch.setattr(main_job, "qemu_version", lambda: "QEMU emulator version 7.2.22")


@pytest.mark.parametrize("args", [
    ["--flavors", ""], ["--topologies", ""], ["--seconds", "0"], ["--interval", "0"], ["--repeat", "0"],
    ["--flavors", "nosuchflavor"], ["--flavors", "regions+"], ["--workload", "nope"],
])
def test_bad_options_exit_2_before_any_build_and_leave_no_run(tmp_path, no_build, args, capsys):
    assert cli.main(["run", "--topologies", "two-node", *args, "--out", str(tmp_path)][:]) == 2
    assert list(tmp_path.iterdir()) == [], "a run directory was left behind"
    assert "Error" in capsys.readouterr().err


def test_runs_started_in_the_same_second_do_not_collide(tmp_path):
    import datetime as dt
    now = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)
    first, second = main_job._new_run_dir(tmp_path, now), main_job._new_run_dir(tmp_path, now)
    assert (first.name, second.name) == ("20261201-120000", "20261201-120000-2")


def _fake_build(tmp_path):
    meta = SimpleNamespace(kernel_version="6.12.117", package_version="6.12.117-1", compiler="gcc 12",
                           durations={})
    return lambda *a, **kw: SimpleNamespace(key="k" * 64, cached=True, bzimage=tmp_path / "bzImage",
                                            metadata=meta, config_path=tmp_path / "config")


def test_sigterm_marks_the_run_aborted(tmp_path, monkeypatch):
    monkeypatch.setattr(main_job, "qemu_version", lambda: "QEMU emulator version 7.2.22")
    monkeypatch.setattr(main_job.kernel, "build", _fake_build(tmp_path))
    started = threading.Event()

    def slow_guest(*_a, **_kw):
        started.set()
        time.sleep(30)
    monkeypatch.setattr(main_job, "run_guest", slow_guest)
    threading.Thread(target=lambda: started.wait(10) and os.kill(os.getpid(), signal.SIGTERM), daemon=True).start()
    out = tmp_path / "runs"
    assert cli.main(["run", "--flavors", "vanilla", "--topologies", "two-node", "--out", str(out)]) == 143
    (run,) = out.iterdir()
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "aborted" and "SIGTERM" in meta["error"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_full_disk_exits_3_marks_aborted_and_leaves_no_temp_files(tmp_path, monkeypatch):
    out = tmp_path / "small"
    out.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(out)], check=True)
    try:
        monkeypatch.setattr(main_job, "qemu_version", lambda: "QEMU emulator version 7.2.22")
        monkeypatch.setattr(main_job.kernel, "build", _fake_build(tmp_path))

        def filling_guest(build, variant, topo, opts, vm_dir, progress):
            atomic_write(vm_dir / "console.log", b"x" * 200_000)   # more than the disk holds
        monkeypatch.setattr(main_job, "run_guest", filling_guest)
        assert cli.main(["run", "--flavors", "vanilla", "--topologies", "two-node", "--out", str(out)]) == 3
        (run,) = out.iterdir()
        meta = json.loads((run / "metadata.json").read_text())
        assert meta["status"] == "aborted" and "disk full" in meta["error"]
        leftovers = [p for p in run.rglob("*") if p.name.endswith(".tmp")]
        assert not leftovers
    finally:
        subprocess.run(["umount", str(out)], check=True)
