"""The matrix on dask for real: a LocalCluster of two workers, and a scheduler with two worker processes, one killed.

Both use the smallest matrix that means something (vanilla on one-node, short stress):
what is under test is that real guests run on workers, their directories come back
into one run, and a worker dying mid-guest loses no job and counts none twice.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from harness import cli
from harness.paths import cache_root

TINY = ["--flavors", "vanilla", "--topologies", "one-node", "--seconds", "2", "--interval", "1"]


def _meta(run):
    return json.loads((run / "metadata.json").read_text())


def test_parallel_runs_the_matrix_on_a_local_cluster(tmp_path, rh_build, capsys):
    rh_build("vanilla")
    out = tmp_path / "runs"
    assert cli.main(["run", *TINY, "--repeat", "2", "--parallel", "2", "--out", str(out)]) == 0
    (run,) = out.iterdir()
    meta = _meta(run)
    assert meta["executor"] == "local dask cluster, 2 workers" and meta["status"] == "ok"
    guests = meta["guests"]
    assert [g["dir"] for g in guests] == ["vanilla-one-node-r1", "vanilla-one-node-r2"]
    assert sorted(g["job"] for g in guests) == sorted(j["id"] for j in meta["jobs"])
    for g in guests:
        d = run / g["dir"]
        assert g["status"] == "ok" and g["worker"].startswith("tcp://") and g["boot_seconds"] > 0
        for name in ("console.log", "vm.json", "dmesg.txt", "config", "workload.log", "checks.csv"):
            assert (d / name).is_file(), name
        assert (d / "metrics" / "zoneinfo.csv").is_file()
    # the same run layout as a sequential run: guests, metadata, summary, checks; nothing staged
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["checks.csv", "metadata.json", "summary.txt", "vanilla-one-node-r1", "vanilla-one-node-r2"])
    assert cli.main(["check", str(run)]) == 0


def _qemus(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "qemu-system" in (p.info["name"] or "") + cmd and marker in cmd:
            found.append(p)
    return found


def _start(argv, log, env=None):
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(15)


def test_a_worker_killed_mid_guest_loses_no_job(tmp_path, rh_build, capsys):
    """`dask scheduler` and two `dask worker` processes on localhost, as on lab machines.

    Worker B has a cache of its own without kernels: the client ships the kernel to it
    and to no one else. Worker A is killed (SIGKILL, its whole process group) while its
    guest is booting; the run must finish on B with each job exactly once.
    """
    build = rh_build("vanilla")
    dask = str(Path(sys.executable).parent / "dask")
    sched_file = tmp_path / "scheduler.json"
    b_cache = tmp_path / "cache-b"
    b_cache.mkdir()
    # B shares the guest image (its build is not under test here) and the acceleration probe's answer
    (b_cache / "guest").symlink_to(cache_root() / "guest")
    if (cache_root() / "accel-probe.json").exists():
        shutil.copy(cache_root() / "accel-probe.json", b_cache / "accel-probe.json")
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []
    try:
        procs.append(_start([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                             "--scheduler-file", str(sched_file)], open(logs / "scheduler.log", "w")))
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        worker = [dask, "worker", address, "--nthreads", "1", "--memory-limit", "0", "--no-dashboard"]
        a = _start([*worker, "--name", "A"], open(logs / "a.log", "w"))
        procs.append(a)
        procs.append(_start([*worker, "--name", "B"], open(logs / "b.log", "w"),
                            env={**os.environ, "REGION_HARNESS_CACHE": str(b_cache)}))

        killed: dict[str, object] = {}

        def kill_a_when_its_guest_boots():
            end = time.monotonic() + 300
            while time.monotonic() < end and "pid" not in killed:
                for q in _qemus(str(cache_root() / "jobs")):
                    if any(p.pid == a.pid for p in q.parents()):
                        killed["pid"] = q.pid
                        os.killpg(a.pid, signal.SIGKILL)
                        break
                time.sleep(0.2)

        killer = threading.Thread(target=kill_a_when_its_guest_boots, daemon=True)
        out = tmp_path / "runs"
        # the client waits for its first worker; A must be among the workers when the jobs go out
        from distributed import Client
        with Client(address, timeout=30) as c:
            c.wait_for_workers(2, timeout=120)
        killer.start()
        status = cli.main(["run", *TINY, "--repeat", "3", "--scheduler", address, "--out", str(out)])
        killer.join(5)
        printed = capsys.readouterr().out
        (run,) = out.iterdir()
        assert status == 0, (run / "summary.txt").read_text()
        assert "pid" in killed, "worker A never started a guest: nothing was killed"
        assert psutil.pid_exists(killed["pid"]) is False or psutil.Process(killed["pid"]).status() == "zombie"

        meta = _meta(run)
        guests = meta["guests"]
        assert [g["dir"] for g in guests] == [f"vanilla-one-node-r{k}" for k in (1, 2, 3)]
        assert sorted(g["job"] for g in guests) == sorted(j["id"] for j in meta["jobs"])   # each exactly once
        assert all(g["status"] == "ok" for g in guests)
        assert len({g["worker"] for g in guests}) == 1, "every job finished on the surviving worker"
        for g in guests:   # one boot per guest directory: the killed attempt left nothing in the run
            assert (run / g["dir"] / "console.log").read_text().count("SeaBIOS (version") == 1
        # the kernel went to B only (A's cache is the client's), and arrived intact
        assert "to 1 worker(s)" in printed
        assert (b_cache / "kernels" / build.key / "bzImage").read_bytes() == build.bzimage.read_bytes()
    finally:
        for p in reversed(procs):
            _stop(p)
    time.sleep(1)
    assert not _qemus(str(b_cache)) and not _qemus(str(cache_root() / "jobs")), "a QEMU outlived its worker"


@pytest.fixture(autouse=True)
def _no_process_left():
    """No process this test started survives it: dask workers, nannies, schedulers (QEMU is checked above)."""
    me = psutil.Process()
    before = {c.pid for c in me.children(recursive=True)}
    yield

    def leftovers():
        # multiprocessing's resource tracker is one per Python process, kept for its life and reused
        return [c for c in me.children(recursive=True) if c.pid not in before and c.is_running()
                and c.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(c.cmdline())]
    end = time.monotonic() + 15
    while leftovers() and time.monotonic() < end:
        time.sleep(0.5)
    assert not leftovers(), [" ".join(c.cmdline()) for c in leftovers()]
