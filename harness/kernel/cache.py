"""Where the kernel cache lives on disk, the global build lock, and small atomic-write helpers."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Iterator

from harness.errors import InfraError

log = logging.getLogger(__name__)

#: the repository root (harness/kernel/cache.py -> repo); flavors and the series live there
REPO_ROOT = Path(__file__).resolve().parents[2]
FLAVORS_DIR = REPO_ROOT / "qemu-configs" / "kernel"
PATCHES_DIR = REPO_ROOT / "kernel-patches"


def cache_root() -> Path:
    """The cache root: $REGION_HARNESS_CACHE, else ~/.cache/region-harness."""
    env = os.environ.get("REGION_HARNESS_CACHE")
    root = Path(env) if env else Path.home() / ".cache" / "region-harness"
    return root


@contextlib.contextmanager
def build_lock(root: Path | None = None) -> Iterator[None]:
    """Hold the machine-wide build lock (exclusive flock, blocking).

    The machine has two cores shared by everyone: two kernel builds at once would
    each take twice as long and thrash ccache, so every configure+make, by hand
    (`flock <cache>/build.lock make ...`) or through the harness, holds this lock.
    """
    root = root or cache_root()
    root.mkdir(parents=True, exist_ok=True)
    path = root / "build.lock"
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("waiting for the build lock %s (another build is running)", path)
            fcntl.flock(fh, fcntl.LOCK_EX)
            log.info("got the build lock")
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write a file through a temp file and os.replace, so readers never see half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: object) -> None:
    """Atomically write pretty JSON (metadata and state files are read by people too)."""
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> dict | None:
    """Read a JSON state file; a missing or corrupt one counts as absent."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@contextlib.contextmanager
def disk_full_is_infra(what: str) -> Iterator[None]:
    """Turn ENOSPC into an InfraError that says the disk is full (not the user's fault)."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise InfraError(f"disk full while {what}: {exc} (free space under {cache_root()})") from exc
        raise
