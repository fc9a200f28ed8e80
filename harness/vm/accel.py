"""Choose QEMU acceleration (kvm or tcg) by a real boot probe, cached per QEMU and kernel.

/dev/kvm existing proves nothing. Measured on the project's machines: their host KVM
is kvm-pvm (a nested hypervisor that runs only kernels built for PVM), so /dev/kvm is
there, but a stock kernel under KVM hangs right after "Probing EDD" whatever the
machine type, CPU model or irqchip, and ``-cpu host`` aborts (MSR 0x10a); TCG works.
So "auto" boots the kernel under KVM with a short deadline and falls back to TCG unless
it reaches the ready marker.
"""

from __future__ import annotations

import logging
import os
import struct
import tempfile
import time
from pathlib import Path

from harness.errors import HarnessError, VMError
from harness.fs import read_json_state, write_json

from .qemu import ACCELS, VM, qemu_version

log = logging.getLogger(__name__)

#: the probe cache, in the cache root: {"<qemu version> | <kernel release>": {"accel": ...}}
PROBE_FILE = "accel-probe.json"
PROBE_TIMEOUT = 20.0
# small and plain on purpose: the probe asks "does this kernel boot under KVM here",
# not anything about a topology; never -cpu host (it aborts on these machines)
PROBE_QEMU_ARGS = ["-machine", "q35", "-m", "512M", "-smp", "1"]


def kernel_release(bzimage: Path) -> str:
    """The version string the x86 boot header of a bzImage points to ("6.12.117 (user@host) #1 ...").

    Read from the image itself so the probe cache needs no build directory. Falls
    back to size+mtime for anything that is not a bzImage.
    """
    bzimage = Path(bzimage)
    with open(bzimage, "rb") as f:
        head = f.read(0x4000)
        if len(head) >= 0x210 and head[0x202:0x206] == b"HdrS":
            (offset,) = struct.unpack_from("<H", head, 0x20E)
            f.seek(offset + 0x200)
            raw = f.read(256)
            text = raw.split(b"\0", 1)[0].decode(errors="replace").strip()
            if text:
                return text
    st = bzimage.stat()
    return f"unknown:{st.st_size}:{st.st_mtime_ns}"


def probe_kvm(kernel: Path, initrd: Path, workdir: Path, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """Boot under KVM to the ready marker within ``timeout``; (worked, reason)."""
    vm = VM(kernel, initrd, workdir, PROBE_QEMU_ARGS, append="rh.poweroff=1",
            accel="kvm", boot_timeout=timeout, name="kvm-probe")
    t0 = time.monotonic()
    try:
        with vm:
            return True, f"ready after {time.monotonic() - t0:.1f} s"
    except HarnessError as exc:
        return False, str(exc).splitlines()[0]


def _read_probes(path: Path) -> dict[str, dict[str, object]]:
    """The probe cache; a missing or garbled one is empty (it is only a cache)."""
    data = read_json_state(path)
    return data if isinstance(data, dict) else {}


#: a probe's answer is trusted this long: a host whose KVM gets fixed (or broken) by
#: something the key does not see is probed again within a day
PROBE_MAX_AGE = 24 * 3600.0


def probe_key(qemu: str, guest_release: str, host_release: str) -> str:
    """What a probe's answer depends on: QEMU, the guest kernel's release, the host kernel.

    The guest release ("6.12.117"), not its whole version string: that one carries the
    build time, and every rebuild would pay for a new 20 s probe.
    """
    return f"{qemu} | {guest_release.split()[0]} | host {host_release}"


def _fresh(hit: dict[str, object]) -> bool:
    epoch = hit.get("epoch")
    return isinstance(epoch, int | float) and 0 <= time.time() - epoch < PROBE_MAX_AGE


def choose_accel(kernel: Path, initrd: Path, cache_dir: Path, requested: str = "auto") -> str:
    """"tcg" or "kvm": the requested one if forced, else the cached or freshly probed answer.

    ``cache_dir`` holds the probe cache and the probe's scratch directory (callers pass
    harness.paths.cache_root()).
    """
    if requested in ACCELS:
        log.info("accel %s (requested)", requested)
        return requested
    if requested != "auto":
        raise ValueError(f"accel must be auto, tcg or kvm, not {requested!r}")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        log.info("accel tcg: /dev/kvm missing or not accessible")
        return "tcg"
    if not Path(kernel).is_file():  # the cache key is read from it
        raise VMError(f"kernel {kernel} does not exist")

    cache_dir = Path(cache_dir)
    path = cache_dir / PROBE_FILE
    key = probe_key(qemu_version(), kernel_release(kernel), os.uname().release)
    hit = _read_probes(path).get(key)
    if isinstance(hit, dict) and hit.get("accel") in ACCELS and _fresh(hit):
        accel = str(hit["accel"])
        log.info("accel %s (cached probe: %s)", accel, hit.get("reason", ""))
        return accel

    if not Path(initrd).is_file():
        # checked here, not left to the probe VM: a probe failing for a missing file
        # would be cached as "KVM does not work"
        raise VMError(f"initrd {initrd} does not exist")
    log.info("probing KVM with %s (deadline %.0f s)", kernel, PROBE_TIMEOUT)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kvm-probe-", dir=cache_dir) as tmp:
        ok, reason = probe_kvm(kernel, initrd, Path(tmp))
    accel = "kvm" if ok else "tcg"
    log.info("accel %s (KVM probe: %s)", accel, reason)
    cache = _read_probes(path)  # re-read: another run may have written meanwhile
    cache[key] = {"accel": accel, "reason": reason, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "epoch": time.time()}
    write_json(path, cache)
    return accel
