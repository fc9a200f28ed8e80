"""The main job under bad options, a full disk and signals: right exit codes, runs marked, nothing half-written."""

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
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
                                            directory=tmp_path,
                                            metadata=meta, config_path=tmp_path / "config")


def test_sigterm_marks_the_run_aborted(tmp_path, monkeypatch):
    monkeypatch.setattr(main_job, "qemu_version", lambda: "QEMU emulator version 7.2.22")
    monkeypatch.setattr(main_job.kernel, "build", _fake_build(tmp_path))
    started = threading.Event()

    def slow_guest(*_a, **_kw):
        started.set()
        time.sleep(5)   # SIGTERM comes right after started is set
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


# --------------------------------------------------------------------------- one bad guest

CAPTURE = Path(__file__).resolve().parents[1] / "data" / "captures" / "6.12-vanilla-two-node"
GUEST_FILES = {"/proc/zoneinfo": "zoneinfo", "/proc/buddyinfo": "buddyinfo", "/proc/pagetypeinfo": "pagetypeinfo",
               "/proc/vmstat": "vmstat", "/sys/devices/system/node/node0/meminfo": "node0-meminfo",
               "/sys/devices/system/node/node1/meminfo": "node1-meminfo"}


class FakeVM:
    """A booted guest that answers from a real capture; `breaks` garbles its after snapshot."""

    def __init__(self, name, breaks=None):
        self.name, self.breaks, self.snapshots = name, breaks, 0
        self.record = SimpleNamespace(boot_seconds=1.0, accel="tcg")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def check_console(self):
        pass

    def run(self, cmd, timeout=60, check=False):
        from harness.metrics.snapshot import MARK
        from harness.vm.ssh import Result

        if cmd == "dmesg":
            return Result(0, (CAPTURE / "dmesg.txt").read_text(), "")
        if MARK not in cmd:
            return Result(0, "", "")  # the workload
        self.snapshots += 1
        files = {path: (CAPTURE / name).read_text() for path, name in GUEST_FILES.items()}
        if self.breaks and "stat_refresh" in cmd and self.snapshots > 1:   # the quiescent after snapshot
            files = self.breaks(files)
        out = f"{MARK}uptime\n12.5 20.0\n" + "".join(f"{MARK}{p}\n{t}" for p, t in files.items())
        return Result(0, out, "")


def _no_zoneinfo(files):
    return {p: t for p, t in files.items() if p != "/proc/zoneinfo"}


def _garbled(files):
    return {**files, "/proc/zoneinfo": files["/proc/zoneinfo"].replace("spanned", "spanned x", 1)}


def _underflow(files):
    text = files["/proc/zoneinfo"]
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("present"))
    return {**files, "/proc/zoneinfo": text.replace(line, line.split()[0].join(["  ", f" {2**64 - 3}"]), 1)}


@pytest.mark.parametrize("breaks", [_no_zoneinfo, _garbled, _underflow])
def test_a_bad_guest_does_not_stop_the_matrix(tmp_path, monkeypatch, capsys, breaks):
    monkeypatch.setattr(main_job, "qemu_version", lambda: "QEMU emulator version 7.2.22")
    (tmp_path / "config").write_text((CAPTURE / "config").read_text())
    monkeypatch.setattr(main_job.kernel, "build", _fake_build(tmp_path))
    monkeypatch.setattr(main_job.time, "sleep", lambda s: None)
    monkeypatch.setattr(main_job, "guest", lambda bz, topo, d, **kw: FakeVM(kw["name"],
                        breaks if topo.name == "two-node" else None))
    out = tmp_path / "runs"
    status = cli.main(["run", "--flavors", "vanilla", "--topologies", "two-node,one-node", "--seconds", "1",
                       "--interval", "60", "--out", str(out)])
    assert status == 4, capsys.readouterr()
    (run,) = out.iterdir()
    guests = {g["topology"]: g for g in json.loads((run / "metadata.json").read_text())["guests"]}
    assert set(guests) == {"two-node", "one-node"}
    bad = guests["two-node"]
    assert bad["status"] == "check-failed"
    assert "two-node" in (run / "summary.txt").read_text()
    if breaks is _garbled:
        assert "vanilla-two-node/snapshots/after/zoneinfo:52:" in bad["error"]   # guest, snapshot, file, line
    else:
        checks = pd.read_csv(run / "vanilla-two-node" / "checks.csv")
        failing = checks[checks["verdict"] != "ok"]
        assert not failing.empty
        if breaks is _no_zoneinfo:
            assert "/proc/zoneinfo" in set(failing["key"])
        else:   # the underflowed present is named by zone and field
            assert (failing["field"] == "present").any()
    # the one-node guest answered from a two-node capture, so its checks differ from the
    # model: it ran to the end and was judged, which is what matters here
    assert guests["one-node"]["status"] in ("ok", "check-failed") and not guests["one-node"]["error"]
