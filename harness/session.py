"""One guest for one kernel on one topology: image, ssh key, acceleration, QEMU arguments and VM together."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from harness.errors import VMError
from harness.fs import atomic_write
from harness.guest import host_public_key, prepare_run
from harness.guest.disk import make_scratch_disk, qemu_drive, scratch_size
from harness.paths import cache_root
from harness.topology import Topology
from harness.vm import VM
from harness.vm.accel import choose_accel
from harness.vm.numa import qemu_args

#: TCG boots of a 6.12 tinyconfig kernel take seconds; debug kernels and 8 GiB guests longer
DEFAULT_BOOT_TIMEOUT = 180.0


def guest(kernel: Path, topo: Topology, workdir: Path, *, append: str = "", accel: str = "auto",
          boot_timeout: float = DEFAULT_BOOT_TIMEOUT, name: str | None = None,
          qemu_extra: Sequence[str] = ()) -> VM:
    """A VM (not started: use it as a context manager) booting `kernel` on `topo`.

    workdir receives the generated ACPI tables, console.log and vm.json; the per-run
    initrd, ssh key and scratch disk (harness.guest.disk) go in a scratch directory
    removed when the VM stops; qemu_extra is appended to the QEMU arguments (e.g.
    -icount). accel "auto" is settled here, before the VM exists: by the cached KVM
    probe, or by a probe boot (up to accel.PROBE_TIMEOUT) on a cache miss.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cache = cache_root()
    # the per-VM initrd (the 37 MiB image plus this VM's key) and the private key live
    # outside the workdir and go when the VM stops: stored runs keep neither
    scratch = Path(tempfile.mkdtemp(prefix=f"{name or topo.name}-", dir=_scratch_root(cache)))
    try:
        initrd, key = prepare_run(cache / "guest", scratch)
        disk = make_scratch_disk(scratch / "scratch-disk.img", scratch_size(topo.memory_bytes))
        host_key = host_public_key(cache / "guest")
        chosen = choose_accel(kernel, initrd, cache, accel)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return VM(kernel, initrd, workdir, [*qemu_args(topo, workdir), *qemu_drive(disk), *qemu_extra],
              accel=chosen, append=append,
              boot_timeout=boot_timeout, name=name or topo.name, ssh_key=key, scratch=scratch,
              host_key=host_key)


#: scratch directories older than this belong to a harness that was killed: removed
STALE_SCRATCH = 24 * 3600.0


def _scratch_root(cache: Path) -> Path:
    root = cache / "scratch"
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        try:
            if time.time() - old.stat().st_mtime > STALE_SCRATCH:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            continue
    return root


def interactive_ssh_argv(vm: VM) -> list[str]:
    """The ssh command line that opens a shell in a booted guest (what `harness boot` runs)."""
    if vm.ssh_key is None or vm.port is None or vm.host_key is None or vm.scratch is None:
        raise VMError(f"{vm.name}: not booted with an ssh key, a host key and a port")
    # the guest's host key is known: pin it in a known_hosts file that goes with the VM
    known = vm.scratch / "known_hosts"
    atomic_write(known, f"[127.0.0.1]:{vm.port} {vm.host_key}\n")
    return ["ssh", "-i", str(vm.ssh_key), "-p", str(vm.port), "-t",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}",
            "-o", "LogLevel=ERROR", "root@127.0.0.1"]
