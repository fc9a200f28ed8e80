"""Offline checking of saved runs: a guest directory's boot log, config and snapshots against the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness import checks, topology
from harness.errors import HarnessError, UserError
from harness.metrics import parse_model_inputs, parse_snapshot
from harness.model.inputs import declared_nodes
from harness.results import store

#: the quiescent snapshots: taken with vmstat folded, so counts must match the model exactly
CHECKED_SNAPSHOTS = ("before", "after")


def check_vm_dir(vm_dir: Path) -> pd.DataFrame:
    """Check every quiescent snapshot (before, after) of a saved guest against the model.

    Reads only: the verdict table is returned, the stored run is left as it was.
    """
    vm_dir = Path(vm_dir)
    topo_files = sorted(vm_dir.glob("*.yaml"))
    if not topo_files or not (vm_dir / "dmesg.txt").exists():
        raise UserError(f"{vm_dir}: not a guest directory of a run (needs dmesg.txt and the topology .yaml)")
    topo = topology.load(topo_files[0])
    config_path = vm_dir / "config"
    config = config_path.read_text(errors="replace") if config_path.exists() else None
    dmesg = vm_dir / "dmesg.txt"
    inputs = parse_model_inputs(dmesg.read_text(errors="replace"), config, str(dmesg))
    declared = declared_nodes(topo)
    tables = []
    for label in CHECKED_SNAPSHOTS:
        snap = vm_dir / "snapshots" / label
        if snap.is_dir():
            files, _clock = store.read_snapshot(snap)
            # named by guest and snapshot, so a parse error says which file of which guest
            named = {f"{vm_dir.name}/snapshots/{label}/{name}": text for name, text in files.items()}
            tables.append(checks.check_capture(parse_snapshot(named), inputs, declared).assign(snapshot=label))
    if not tables:
        raise UserError(f"{vm_dir}: no before/after snapshot to check")
    return pd.concat(tables, ignore_index=True)


@dataclass
class GuestCheck:
    """The offline check of one guest directory: its verdict table, or why it could not be checked."""

    directory: Path
    table: pd.DataFrame | None = None
    error: HarnessError | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or (self.table is not None and checks.failed(self.table))


def check_saved(path: Path) -> list[GuestCheck]:
    """Check a run directory (every guest in it) or one guest directory; one bad guest never stops the rest."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: not a directory (give a run directory or one guest directory in it)")
    dirs = [path] if (path / "dmesg.txt").exists() else store.guest_dirs(path)
    if not dirs:
        raise UserError(f"{path}: no guest directories with a dmesg.txt inside")
    results = []
    for d in dirs:
        try:
            results.append(GuestCheck(d, table=check_vm_dir(d)))
        except HarnessError as exc:
            results.append(GuestCheck(d, error=exc))
    return results
