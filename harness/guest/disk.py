"""The guest's scratch disk: a sparse raw image with an ext2 filesystem, made on the host per VM.

Every guest gets one as its only virtio-blk disk (/dev/vda); the guest's init mounts it
at /mnt/scratch (files/init.sh). It is the room for page cache larger than the guest's
memory (the thp-challenge workload), which tmpfs cannot give. The image is sparse, so
only what a workload writes takes host disk, and it lives in the VM's scratch
directory, removed when the VM stops.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from harness.errors import InfraError
from harness.units import GiB

__all__ = ["MOUNTPOINT", "SCRATCH_FACTOR", "make_scratch_disk", "qemu_drive", "scratch_size"]

#: where the guest's init mounts the disk (keep equal to files/init.sh)
MOUNTPOINT = "/mnt/scratch"
#: the disk's size as a multiple of the guest's memory
SCRATCH_FACTOR = 2


def scratch_size(memory_bytes: int) -> int:
    """Bytes of the scratch disk for a guest of memory_bytes: SCRATCH_FACTOR times it, at least 1 GiB."""
    return max(GiB, SCRATCH_FACTOR * int(memory_bytes))


def make_scratch_disk(path: Path, size: int) -> Path:
    """Create a sparse raw image of size bytes at path, formatted ext2 (mkfs.ext2 from e2fsprogs)."""
    mkfs = shutil.which("mkfs.ext2") or next((p for p in ("/usr/sbin/mkfs.ext2", "/sbin/mkfs.ext2")
                                              if Path(p).exists()), None)
    if mkfs is None:
        raise InfraError("mkfs.ext2 not found: the guest's scratch disk needs e2fsprogs (bash ci/setup.sh installs it)")
    with open(path, "wb") as f:
        f.truncate(size)
    # -T largefile: one inode per MiB (the writers make a few large files) keeps mkfs to
    # a few MiB of metadata; -m 0: no blocks reserved for root, the guest is all root
    proc = subprocess.run([mkfs, "-q", "-F", "-m", "0", "-T", "largefile", "-L", "rh-scratch", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        path.unlink(missing_ok=True)
        raise InfraError(f"mkfs.ext2 {path} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return path


def qemu_drive(path: Path) -> list[str]:
    """QEMU arguments attaching the image as a virtio-blk disk; cache=unsafe: scratch data, host flushes skipped."""
    return ["-drive", f"file={path},if=virtio,format=raw,cache=unsafe"]
