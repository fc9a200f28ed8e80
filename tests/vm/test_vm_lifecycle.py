"""VM lifecycle against a real kernel: boot, ssh, exit codes, files, failure cleanup, no orphans."""

import concurrent.futures
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from harness.errors import GuestKernelError, VMError
from harness.guest import build_initramfs, prepare_run
from harness.paths import cache_root
from harness.vm import VM
from harness.vm.accel import choose_accel

pytestmark = pytest.mark.vm

#: RH_TEST_KERNEL, or the vanilla kernel the suite builds (set by the `kernel` fixture)
KERNEL = Path(os.environ.get("RH_TEST_KERNEL", "/nonexistent"))
GUEST_CACHE = cache_root() / "guest"
# the size the brief measures: 2 GiB, 2 vCPUs, q35 (what the topology layer hands over)
QEMU_ARGS = ["-machine", "q35", "-m", "2G", "-smp", "2"]
ACCEL = os.environ.get("RH_TEST_ACCEL", "auto")



@pytest.fixture(scope="module", autouse=True)
def kernel(rh_build):
    """Build what these tests boot (a cold CI has no kernel yet): never skip for want of one."""
    global KERNEL
    if not os.environ.get("RH_TEST_KERNEL"):
        KERNEL = rh_build("vanilla").bzimage
    assert KERNEL.is_file(), f"RH_TEST_KERNEL={KERNEL} does not exist"
    return KERNEL


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # comm may contain spaces: fields after the closing parenthesis
        fields = stat.rsplit(")", 1)[1].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            found.append(int(entry.name))
    return found


def is_running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def assert_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # a zombie counts as gone: it no longer runs, and in a container the
        # reaper of orphans may be slow or absent
        if not group_members(pid) and not is_running(pid):
            return
        time.sleep(0.1)
    raise AssertionError(f"QEMU pid {pid} (or its group) still alive: {group_members(pid)}")


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    initrd, key = prepare_run(GUEST_CACHE, run_dir)
    return run_dir, initrd, key


@pytest.fixture(scope="module")
def vm(run_files):
    run_dir, initrd, key = run_files
    accel = choose_accel(KERNEL, initrd, cache_root(), ACCEL)  # VM takes tcg or kvm, not auto
    with VM(KERNEL, initrd, run_dir / "vm0", QEMU_ARGS, accel=accel, ssh_key=key,
            boot_timeout=120, name="lifecycle") as machine:
        yield machine
    assert_gone(machine.pid)


def test_boot_and_ssh(vm, record_property):
    uname = vm.run("uname -r", check=True)
    assert uname.stdout.strip().startswith("6.12")
    meminfo = vm.run("cat /proc/meminfo", check=True).stdout
    total_kib = int(next(l for l in meminfo.splitlines() if l.startswith("MemTotal:")).split()[1])
    assert 1_700_000 < total_kib <= 2 * 1024 * 1024
    assert vm.run("nproc").stdout.strip() == "2"
    record_property("boot_seconds", vm.boot_seconds)
    record_property("ssh_seconds", vm.record.ssh_seconds)
    record_property("accel", vm.accel)
    print(f"\nboot-to-ready {vm.boot_seconds:.2f} s, boot-to-ssh {vm.record.ssh_seconds:.2f} s,"
          f" accel {vm.accel}, {vm.record.qemu_version}")
    assert vm.record.qemu_version.startswith("QEMU emulator version")
    assert (vm.workdir / "vm.json").is_file()
    assert "REGION-HARNESS-READY" in (vm.workdir / "console.log").read_text(errors="replace")


def test_exit_status_and_streams(vm):
    r = vm.run("echo out; echo err >&2; exit 3")
    assert (r.status, r.stdout, r.stderr) == (3, "out\n", "err\n")
    with pytest.raises(VMError, match="exited 3"):
        vm.run("exit 3", check=True)


def test_large_output(vm):
    r = vm.run("head -c 3000000 /dev/zero | tr '\\0' x", timeout=120)
    assert r.status == 0 and len(r.stdout) == 3_000_000


def test_fetch_and_put(vm, tmp_path):
    local = vm.fetch("/proc/buddyinfo", tmp_path / "buddyinfo")
    assert "Node 0, zone" in local.read_text()
    src = tmp_path / "blob"
    src.write_bytes(bytes(range(256)) * 1000)
    vm.put(src, "/tmp/blob")
    back = vm.fetch("/tmp/blob", tmp_path / "blob.back")
    assert back.read_bytes() == src.read_bytes()
    with pytest.raises(VMError):
        vm.fetch("/does/not/exist", tmp_path / "nothing")


def test_guest_tools(vm):
    for cmd in ("stress-ng --version", "numactl --hardware", "pfbench -m 8 -r 2",
                "ls /sys/kernel/debug /sys/kernel/tracing"):
        r = vm.run(cmd, timeout=120)
        assert r.status == 0, (cmd, r.stderr)
    r = vm.run("pfbench -m 8 -r 2 -o 9", timeout=120)
    assert r.stdout.startswith("pfbench order=9 pages=8 ns_per_fault=")


def test_console_is_clean(vm):
    vm.check_console()


def test_poweroff_mode_runs_rh_cmd(tmp_path):
    initrd = build_initramfs(GUEST_CACHE, dest=tmp_path / "initrd.cpio", extra_files={
        "etc/rh-cmd": b"#!/bin/sh\necho rh-cmd ran on $(uname -r)\nexit 4\n"})
    vm = VM(KERNEL, initrd, tmp_path / "vm", QEMU_ARGS, accel="tcg", append="rh.poweroff=1",
            name="poweroff")
    with vm:
        assert vm.wait_exit(60) == 0  # the guest powered itself off
        text = vm.console_text()
    assert "rh-cmd ran on 6.12" in text and "RH-CMD-EXIT=4" in text
    vm.check_console()


def test_boot_timeout_leaves_no_qemu(run_files):
    run_dir, initrd, key = run_files
    vm = VM(KERNEL, initrd, run_dir / "timeout", QEMU_ARGS, accel="tcg", ssh_key=key,
            boot_timeout=0.5, name="too-slow")
    with pytest.raises(VMError, match="not ready within") as info:
        with vm:
            pass
    assert "qemu-system-x86_64" in str(info.value)  # argv is in the message
    assert_gone(vm.pid)
    vm.shutdown()  # idempotent


def test_bogus_kernel_leaves_no_qemu(run_files, tmp_path):
    run_dir, initrd, key = run_files
    bogus = tmp_path / "bzImage"
    bogus.write_bytes(os.urandom(4096))
    vm = VM(bogus, initrd, run_dir / "bogus", QEMU_ARGS, accel="tcg", boot_timeout=30,
            name="bogus")
    with pytest.raises(VMError, match="QEMU exited") as info:
        with vm:
            pass
    assert "qemu stderr" in str(info.value)
    assert_gone(vm.pid)


def test_panic_is_reported(run_files):
    run_dir, initrd, key = run_files
    # no such init, neither in the initramfs nor as init=: the kernel panics at once
    vm = VM(KERNEL, initrd, run_dir / "panic", QEMU_ARGS, accel="tcg", boot_timeout=60,
            append="rdinit=/no-such-init init=/no-such-init", name="panic")
    with pytest.raises(GuestKernelError) as info:
        with vm:
            pass
    assert info.value.kind == "panic"
    assert "Kernel panic - not syncing" in str(info.value)
    assert_gone(vm.pid)


def test_vm_started_in_a_thread_outlives_the_thread(run_files):
    """PDEATHSIG follows the forking thread: a pool worker that ends must not kill QEMU."""
    run_dir, initrd, key = run_files
    vm = VM(KERNEL, initrd, run_dir / "thread", QEMU_ARGS, accel="tcg", name="thread")
    worker = threading.Thread(target=vm.launch)
    worker.start()
    worker.join()
    try:
        time.sleep(1)
        assert vm.is_running()
    finally:
        vm.shutdown()
    assert_gone(vm.pid)


def test_parallel_vms_do_not_collide(run_files):
    run_dir, initrd, key = run_files
    vms = [VM(KERNEL, initrd, run_dir / f"par{i}", ["-machine", "q35", "-m", "512M"],
              accel="tcg", ssh_key=key, name=f"par{i}") for i in range(2)]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda v: v.start(), vms))
    try:
        assert vms[0].port != vms[1].port
        for i, v in enumerate(vms):
            v.run(f"echo {i} > /tmp/who", check=True)
        for i, v in enumerate(vms):
            assert v.run("cat /tmp/who").stdout.strip() == str(i)
    finally:
        for v in vms:
            v.shutdown()
    for v in vms:
        assert_gone(v.pid)


def test_killed_harness_leaves_no_qemu(run_files, tmp_path):
    run_dir, initrd, key = run_files
    pidfile = tmp_path / "qemu.pid"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from harness.vm import VM
        vm = VM(Path({str(KERNEL)!r}), Path({str(initrd)!r}), Path({str(tmp_path / "orphan")!r}),
                {QEMU_ARGS!r}, accel="tcg")
        vm.launch()
        Path({str(pidfile)!r}).write_text(str(vm.pid))
        time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", script],
                             cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists() or not pidfile.read_text():
            assert child.poll() is None, "harness child died before starting QEMU"
            assert time.monotonic() < deadline, "harness child never started QEMU"
            time.sleep(0.1)
        qemu_pid = int(pidfile.read_text())
        assert group_members(qemu_pid)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert_gone(qemu_pid)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_ssh_refuses_a_guest_with_another_host_key(kernel, tmp_path):
    """The harness knows the host key it put in the image: any other key is refused at once."""
    from harness import topology
    from harness.session import guest

    vm = guest(kernel, topology.load("one-node"), tmp_path / "vm", accel=ACCEL)
    assert vm.host_key and vm.host_key.startswith("ssh-ed25519 ")
    vm.host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMOC2pap5aO+tCtoxntzDEP7vrXLFPUYzIphyT9esTZl"
    t0 = time.monotonic()
    with pytest.raises(VMError, match="not the guest image's"):
        with vm:
            pass
    assert time.monotonic() - t0 < 60
    assert not vm.is_running()
