"""The machine-wide kernel build lock (the cache root itself is harness.paths.cache_root)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path

from harness.paths import cache_root

log = logging.getLogger(__name__)


@contextlib.contextmanager
def build_lock(root: Path | None = None) -> Iterator[int]:
    """Hold the machine-wide build lock (exclusive flock, blocking).

    The machine has two cores shared by everyone: two kernel builds at once would
    each take twice as long and thrash ccache, so every configure+make, by hand
    (`flock <cache>/build.lock make ...`) or through the harness, holds this lock.
    Yields the lock's file descriptor: a make given it (pass_fds) keeps the lock held,
    through its compiler children, until the last of them exits, even if the harness
    itself is killed.
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
            yield fh.fileno()
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
