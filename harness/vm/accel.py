"""Choose QEMU acceleration (kvm or tcg) by a real boot probe, cached per QEMU and kernel.

/dev/kvm existing proves nothing: on the project's machines a guest under KVM hangs
right after "Probing EDD" (DESIGN.md), so "auto" boots the kernel under KVM with a
short deadline and falls back to TCG unless it reaches the ready marker.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import tempfile
import time
from pathlib import Path

from harness.errors import HarnessError

log = logging.getLogger(__name__)

PROBE_FILE = "accel-probe.json"
PROBE_TIMEOUT = 20.0
# small and plain on purpose: the probe asks "does this kernel boot under KVM here",
# not anything about a topology; never -cpu host (it aborts on these machines)
PROBE_QEMU_ARGS = ["-machine", "q35", "-m", "512M", "-smp", "1"]


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "region-harness"


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


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _store(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def probe_kvm(kernel: Path, initrd: Path, workdir: Path, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """Boot under KVM to the ready marker within ``timeout``; (worked, reason)."""
    from .qemu import VM

    vm = VM(kernel, initrd, workdir, PROBE_QEMU_ARGS, append="rh.poweroff=1",
            accel="kvm", boot_timeout=timeout, name="kvm-probe")
    t0 = time.monotonic()
    try:
        with vm:
            return True, f"ready after {time.monotonic() - t0:.1f} s"
    except HarnessError as exc:
        return False, str(exc).splitlines()[0]


def choose_accel(kernel: Path, initrd: Path, cache_dir: Path, requested: str = "auto") -> str:
    """"tcg" or "kvm": the requested one if forced, else the cached or freshly probed answer."""
    if requested in ("tcg", "kvm"):
        log.info("accel %s (requested)", requested)
        return requested
    if requested != "auto":
        raise ValueError(f"accel must be auto, tcg or kvm, not {requested!r}")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        log.info("accel tcg: /dev/kvm missing or not accessible")
        return "tcg"

    from .qemu import qemu_version

    cache_dir = Path(cache_dir)
    path = cache_dir / PROBE_FILE
    # the release ("6.12.117"), not the whole version string: that one carries the
    # build time, and every rebuild would pay for a new 20 s probe
    key = f"{qemu_version()} | {kernel_release(kernel).split()[0]}"
    cache = _load(path)
    hit = cache.get(key)
    if hit and hit.get("accel") in ("tcg", "kvm"):
        log.info("accel %s (cached probe: %s)", hit["accel"], hit.get("reason", ""))
        return hit["accel"]

    log.info("probing KVM with %s (deadline %.0f s)", kernel, PROBE_TIMEOUT)
    with tempfile.TemporaryDirectory(prefix="kvm-probe-", dir=_ensure(cache_dir)) as tmp:
        ok, reason = probe_kvm(kernel, initrd, Path(tmp))
    accel = "kvm" if ok else "tcg"
    log.info("accel %s (KVM probe: %s)", accel, reason)
    cache = _load(path)  # re-read: another run may have written meanwhile
    cache[key] = {"accel": accel, "reason": reason, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _store(path, cache)
    return accel


def _ensure(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    return d
