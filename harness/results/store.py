"""The run directory on disk: snapshot trees, metrics as CSV that pandas reads back, guest directories.

Layout of a guest directory (runs/<stamp>/<variant>-<topology>/):
  console.log, vm.json, dmesg.txt, config, <topology>.yaml, workload.log
  snapshots/<label>/...   raw files per snapshot (before, during-NNN, after)
  metrics/<frame>.csv     every snapshot's parsed frame, stacked, with columns
                          snapshot, host_time, guest_uptime in front
  checks.csv              observed vs model (field, expected, observed, verdict)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.errors import UserError
from harness.fs import read_csv, read_tree, write_csv
from harness.metrics import parse_snapshot

SNAPSHOT_ORDER = ("before", "during", "after")
#: the clock file a saved snapshot carries next to the kernel files (not a kernel file)
TIME_FILE = "time"


def _snapshot_sort_key(path: Path) -> tuple[int, str]:
    prefix = path.name.split("-")[0]
    return (SNAPSHOT_ORDER.index(prefix) if prefix in SNAPSHOT_ORDER else len(SNAPSHOT_ORDER), path.name)


def snapshot_dirs(vm_dir: Path) -> list[Path]:
    """The saved snapshots of a guest in time order (before, during-000..., after)."""
    root = Path(vm_dir) / "snapshots"
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and not p.name.endswith(".tmp")),
                  key=_snapshot_sort_key)


def read_snapshot(snap: Path) -> tuple[dict[str, str], dict[str, float]]:
    """A saved snapshot: its kernel files {capture name: text} and its clock (host_time, guest_uptime)."""
    files = read_tree(snap)
    values = {}
    for line in files.pop(TIME_FILE, "").splitlines():
        key, _, val = line.partition(" ")
        try:
            values[key] = float(val)
        except ValueError:
            raise UserError(f"{snap / TIME_FILE}: line {line!r} is not '<clock> <seconds>'") from None
    return files, {"host_time": values.get("host", float("nan")),
                   "guest_uptime": values.get("guest_uptime", float("nan"))}


def write_metrics(vm_dir: Path) -> list[Path]:
    """Parse every snapshot of a guest and write metrics/<frame>.csv stacked over snapshots."""
    stacked: dict[str, list[pd.DataFrame]] = {}
    for snap in snapshot_dirs(vm_dir):
        files, when = read_snapshot(snap)
        for key, df in parse_snapshot(files).items():
            if df is None or df.empty:
                continue
            flat = df.reset_index() if not isinstance(df.index, pd.RangeIndex) else df.copy()
            flat.insert(0, "guest_uptime", when["guest_uptime"])
            flat.insert(0, "host_time", when["host_time"])
            flat.insert(0, "snapshot", snap.name)
            stacked.setdefault(key, []).append(flat)
    written = []
    for key, frames in stacked.items():
        path = Path(vm_dir) / "metrics" / f"{key}.csv"
        write_csv(path, pd.concat(frames, ignore_index=True))
        written.append(path)
    return written


def has_metric(vm_dir: Path, key: str) -> bool:
    return (Path(vm_dir) / "metrics" / f"{key}.csv").is_file()


def load_metric(vm_dir: Path, key: str) -> pd.DataFrame:
    """metrics/<key>.csv of a guest directory as a DataFrame (e.g. key 'zoneinfo')."""
    path = Path(vm_dir) / "metrics" / f"{key}.csv"
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.csv")) if path.parent.exists() else []
        raise UserError(f"{path}: no such metric; this guest has: {', '.join(known) or 'none'}")
    return read_csv(path)


def entry_dir_name(entry: dict[str, object]) -> str:
    """The directory of a metadata.json guest entry: its "dir", or <variant>-<topology> in older runs."""
    return str(entry.get("dir") or f"{entry.get('flavor')}-{entry.get('topology')}")


def guest_dirs(run_dir: Path) -> list[Path]:
    """The guest directories of a run (each has a vm.json or dmesg.txt)."""
    run_dir = Path(run_dir)
    return sorted(p for p in run_dir.iterdir()
                  if p.is_dir() and ((p / "dmesg.txt").exists() or (p / "vm.json").exists()))


def last_ok_run(parent: Path) -> Path | None:
    """The newest run directory under ``parent`` whose metadata says status ok (what nightly compares with)."""
    from harness.fs import read_json_state

    runs = sorted((p for p in Path(parent).iterdir() if p.is_dir() and (p / "metadata.json").exists()),
                  key=lambda p: p.name) if Path(parent).is_dir() else []
    for run in reversed(runs):
        meta = read_json_state(run / "metadata.json")
        if isinstance(meta, dict) and meta.get("status") == "ok":
            return run
    return None
