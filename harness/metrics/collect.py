"""Snapshot collection: one ssh round trip reads every MM file of a guest, timestamped."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ParseError


MARK = "@@@rh "

#: guest files read by every snapshot; a missing file (e.g. no debugfs regions on vanilla) is skipped
SNAPSHOT_GLOBS = (
    "/proc/zoneinfo",
    "/proc/buddyinfo",
    "/proc/pagetypeinfo",
    "/proc/vmstat",
    "/sys/devices/system/node/node*/meminfo",
    "/sys/devices/system/node/node*/numastat",
    "/sys/devices/system/node/node*/vmstat",
    "/sys/kernel/debug/mem_regions/regions",
    "/sys/kernel/debug/mem_regions/free_blocks",
    "/sys/kernel/debug/mem_regions/config",
)


def snapshot_command(refresh: bool = True) -> str:
    """The guest shell command printing every file after a marker line, uptime first.

    refresh folds the per-cpu vmstat deltas first (/proc/sys/vm/stat_refresh), so
    nr_free_pages is exact at quiescence; time series skip it to stay cheap.
    """
    pre = "echo 1 > /proc/sys/vm/stat_refresh 2>/dev/null; " if refresh else ""
    globs = " ".join(SNAPSHOT_GLOBS)
    return (f"{pre}echo '{MARK}uptime'; cat /proc/uptime; "
            f"for f in {globs}; do [ -r \"$f\" ] && {{ echo '{MARK}'\"$f\"; cat \"$f\"; }}; done; true")


def split_snapshot(text: str, source: str = "snapshot") -> dict[str, str]:
    """Split the command's output into {guest path: content}; 'uptime' is the guest clock."""
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith(MARK):
            current = files.setdefault(line[len(MARK):].strip(), [])
        elif current is None:
            raise ParseError(source, lineno, "output does not start with a file marker")
        else:
            current.append(line)
    if "uptime" not in files:
        raise ParseError(source, None, "no uptime marker: the snapshot command did not run")
    return {name: "\n".join(lines) + "\n" for name, lines in files.items()}


def capture_name(guest_path: str) -> str:
    """File name a guest file is saved under in a run directory (parse_snapshot reads it back)."""
    parts = guest_path.strip("/").split("/")
    if parts[:4] == ["sys", "devices", "system", "node"]:
        return f"{parts[4]}-{parts[5]}"          # node0-meminfo
    if parts[:3] == ["sys", "kernel", "debug"]:
        return "/".join(parts[3:])               # mem_regions/regions
    return parts[-1]                             # zoneinfo, vmstat, uptime


@dataclass
class Snapshot:
    """One consistent read of the guest's MM files."""

    label: str
    host_time: float                  # time.time() when the read returned
    guest_uptime: float               # seconds, from /proc/uptime
    files: dict[str, str] = field(default_factory=dict)  # capture name -> text

    def save(self, directory: Path) -> Path:
        """Write the files under directory/label/ (written to a temp dir, then renamed)."""
        dest = Path(directory) / self.label
        tmp = dest.with_name(dest.name + ".tmp")
        for name, text in self.files.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        (tmp / "time").write_text(f"host {self.host_time:.3f}\nguest_uptime {self.guest_uptime:.2f}\n")
        tmp.replace(dest)
        return dest


def take_snapshot(vm, label: str, refresh: bool = True, timeout: float = 60) -> Snapshot:
    """Read every snapshot file of a running VM in one ssh round trip."""
    result = vm.run(snapshot_command(refresh), timeout=timeout, check=True)
    raw = split_snapshot(result.stdout, f"{vm.name}:{label}")
    uptime = float(raw.pop("uptime").split()[0])
    files = {capture_name(path): text for path, text in raw.items()}
    return Snapshot(label, time.time(), uptime, files)


class Sampler:
    """Takes snapshots every `interval` seconds in a thread while a workload runs."""

    def __init__(self, vm, interval: float, prefix: str = "during"):
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
            except BaseException as exc:  # reported by stop(); the workload decides the run's fate
                self.errors.append(exc)
                return
            n += 1
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t0)))

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=120)
