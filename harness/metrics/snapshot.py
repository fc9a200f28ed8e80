"""What a snapshot is: the guest command reading every MM file at once, its output split into files, those parsed.

Nothing here talks to a guest or writes files: harness.vm.snapshots runs the command,
saves snapshots and samples them over time.

parse_snapshot takes capture names ("zoneinfo", "node0-meminfo", "mem_regions/regions",
"firmware-memmap/0/start", "dmesg.txt") or guest paths ("/proc/zoneinfo",
"/sys/devices/system/node/node0/meminfo", "/sys/kernel/debug/mem_regions/regions") and
dispatches them through harness.metrics.registry. Keys of the result:

zoneinfo, zoneinfo.node_stats, zoneinfo.pagesets, zoneinfo.regions, buddyinfo,
pagetypeinfo.free, pagetypeinfo.blocks, pagetypeinfo.mixed, vmstat, node_meminfo,
node_numastat, node_vmstat (all nodes concatenated, indexed by node), dmesg.e820,
dmesg.<field of NumaLayout>, firmware_memmap, mem_regions.regions,
mem_regions.free_blocks, mem_regions.config (1 row), extfrag_events (1 row), memory_blocks.
The "time" and "uptime" files saved next to a snapshot are clock data, not parsed here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.errors import ParseError
from harness.fs import read_tree

from . import registry
from .region_alloc_test import CONTROL
from .registry import CapturedFile, Frames, KernelFile

__all__ = ["CLOCK_FILES", "MARK", "Snapshot", "capture_name", "load_capture", "parse_snapshot",
           "snapshot_command", "split_snapshot"]

log = logging.getLogger(__name__)

#: starts the line announcing each file in the snapshot command's output
MARK = "@@@rh "
#: files saved with a snapshot that hold its clock, not kernel data
CLOCK_FILES = frozenset(("time", "uptime"))


#: read last, back to back, with shell builtins: the check of the regions' free sums against
#: zoneinfo's nr_free_pages compares two files, and a `cat` between them forks and exits,
#: freeing pages the second file then counts (CI once saw 344 pages on an idle guest)
TOGETHER = ("/sys/kernel/debug/mem_regions/regions", "/proc/zoneinfo")
_SLURP = "while IFS= read -r l || [ -n \"$l\" ]; do printf '%s\\n' \"$l\"; done < \"$f\""


def snapshot_command(refresh: bool = True) -> str:
    """The guest shell command printing every live registry file after a marker line, uptime first.

    refresh drains the per-cpu page lists (on a kernel with the series' test interface)
    and folds the per-cpu vmstat deltas (/proc/sys/vm/stat_refresh), so region counts
    and nr_free_pages are exact at quiescence; time series skip both to stay cheap. A file the
    guest lacks (no debugfs regions on vanilla) is skipped. The TOGETHER files come
    last, right after the fold, read without a fork between them.
    """
    # the fold comes right before the pair: the cats before it leave per-cpu deltas behind
    fold = "echo 1 > /proc/sys/vm/stat_refresh 2>/dev/null; " if refresh else ""
    # pages parked on per-cpu lists would count as used in every region they come from:
    # the series' test interface drains them (kernel-patches/README.md), where it exists
    drain = f"echo drain > {CONTROL} 2>/dev/null; " if refresh else ""
    paths = registry.live_paths(small=False)
    globs = " ".join(p for p in paths if p not in TOGETHER)
    small = " ".join(registry.live_paths(small=True))
    together = " ".join(p for p in TOGETHER if p in paths)
    return (f"{drain}echo '{MARK}uptime'; cat /proc/uptime; "
            f"for f in {globs}; do [ -r \"$f\" ] && {{ echo '{MARK}'\"$f\"; cat \"$f\"; }}; done; "
            f"for f in {small}; do [ -r \"$f\" ] && {{ echo '{MARK}'\"$f\"; {_SLURP}; }}; done; "
            f"{fold}for f in {together}; do [ -r \"$f\" ] && {{ echo '{MARK}'\"$f\"; {_SLURP}; }}; done; true")


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
    if parts[:4] == ["sys", "kernel", "tracing", "events"]:
        return f"{parts[-2]}-{parts[-1]}"        # mm_page_alloc_extfrag-hist
    if parts[:4] == ["sys", "devices", "system", "memory"]:
        return "/".join(parts[3:])               # memory/memory12/state, memory/block_size_bytes
    if parts[:3] == ["sys", "kernel", "debug"]:
        return "/".join(parts[3:])               # mem_regions/regions
    return parts[-1]                             # zoneinfo, vmstat, uptime


@dataclass(frozen=True)
class Snapshot:
    """One consistent read of the guest's MM files (harness.vm.snapshots takes and saves them)."""

    label: str
    host_time: float                  # time.time() when the read returned
    guest_uptime: float               # seconds, from /proc/uptime
    files: dict[str, str] = field(default_factory=dict)  # capture name -> text

    def clock_text(self) -> str:
        """Content of the "time" file saved next to the files (harness.results.store reads it)."""
        return f"host {self.host_time:.3f}\nguest_uptime {self.guest_uptime:.2f}\n"


def parse_snapshot(files: Mapping[str, str]) -> Frames:
    """Parse every known file of one snapshot ({name or path: text}); unknown names are logged and skipped."""
    matched: dict[KernelFile, list[CapturedFile]] = {}
    for name, text in files.items():
        path = name.replace(os.sep, "/")
        if path.rsplit("/", 1)[-1] in CLOCK_FILES:
            continue
        found = registry.find_entry(path)
        if found is None:
            log.warning("no parser for captured file %s: skipped", name)
            continue
        entry, match = found
        matched.setdefault(entry, []).append(CapturedFile(name, text, match))
    out: Frames = {}
    for entry in registry.REGISTRY:  # registry order: the same keys in the same order for every snapshot
        if entry in matched:
            out.update(entry.reader.read(matched[entry]))
    return out


def load_capture(path: str | Path) -> dict[str, pd.DataFrame]:
    """Read a saved capture or snapshot directory and parse it (harness.fs.read_tree + parse_snapshot)."""
    return parse_snapshot(read_tree(Path(path)))
