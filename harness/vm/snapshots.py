"""Live snapshots of a running guest: read every MM file in one ssh round trip, sample them, save them to disk."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Protocol

from harness.fs import atomic_write
from harness.metrics.snapshot import Snapshot, capture_name, snapshot_command, split_snapshot
from harness.vm.ssh import Result

__all__ = ["Guest", "Sampler", "save_snapshot", "take_snapshot"]


class Guest(Protocol):
    """What snapshots need of a VM (harness.vm.VM is one)."""

    name: str

    def run(self, cmd: str, timeout: float = ..., check: bool = ...) -> Result: ...


def take_snapshot(vm: Guest, label: str, refresh: bool = True, timeout: float = 60) -> Snapshot:
    """Read every snapshot file of a running VM in one ssh round trip."""
    result = vm.run(snapshot_command(refresh), timeout=timeout, check=True)
    raw = split_snapshot(result.stdout, f"{vm.name}:{label}")
    uptime = float(raw.pop("uptime").split()[0])
    files = {capture_name(path): text for path, text in raw.items()}
    return Snapshot(label, time.time(), uptime, files)


def save_snapshot(snapshot: Snapshot, directory: Path) -> Path:
    """Write the snapshot's files and its "time" file to directory/<label>/, all or nothing; return that path.

    The files go to <label>.tmp first, which is then renamed: a reader never sees half a
    snapshot, and harness.results.store skips a .tmp left by a crash.
    """
    dest = Path(directory) / snapshot.label
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # a crashed earlier save of this label: start over
    for name, text in snapshot.files.items():
        atomic_write(tmp / name, text)
    atomic_write(tmp / "time", snapshot.clock_text())
    tmp.replace(dest)
    return dest


class Sampler:
    """Takes snapshots every `interval` seconds in a thread while a workload runs (a context manager).

    Snapshots collect in .snapshots; the error that stopped sampling early, if any, is in
    .errors for the caller to report once the workload is done.
    """

    def __init__(self, vm: Guest, interval: float, prefix: str = "during"):
        self.vm = vm
        self.interval = interval
        self.prefix = prefix
        self.snapshots: list[Snapshot] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"sampler-{vm.name}", daemon=True)

    def _loop(self) -> None:
        n = 0
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self.snapshots.append(take_snapshot(self.vm, f"{self.prefix}-{n:03d}", refresh=False))
            except BaseException as exc:  # kept for the caller (.errors); the workload decides the run's fate
                self.errors.append(exc)
                return
            n += 1
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t0)))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)
