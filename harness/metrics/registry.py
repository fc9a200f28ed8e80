"""The one list of kernel files the harness parses: guest path, capture name, parser and frames of each.

Adding a parser is a new module (text in, DataFrame out) plus one line in REGISTRY:

    KernelFile("/proc/slabinfo", "slabinfo", single(parse_slabinfo, "slabinfo")),

The snapshot command reads every ``live`` entry's guest path (harness.metrics.snapshot);
parse_snapshot hands each captured file to the entry whose ``capture`` pattern matches
its name. A pattern is matched against the end of a "/"-separated name, starting at a
path component, so the capture name ("node0-meminfo", "mem_regions/regions") and the
guest path ("/sys/devices/system/node/node0/meminfo") both match. When several entries
match, the one matching the longer tail wins: ".../node0/vmstat" ends in "vmstat" too,
but it is a per-node file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import pandas as pd

from .buddyinfo import parse_buddyinfo
from .dmesg import NumaLayout, parse_e820, parse_numa_layout
from .extfrag import parse_extfrag
from .firmware_memmap import parse_firmware_memmap
from .mem_regions import parse_mem_free_blocks, parse_mem_regions, parse_mem_regions_config, parse_mem_zones
from .memory_blocks import parse_memory_blocks
from .node import parse_node_meminfo, parse_node_numastat, parse_node_vmstat
from .pagetypeinfo import parse_pagetypeinfo
from .tracehist import parse_extfrag_hist
from .vmstat import parse_vmstat
from .zoneinfo import parse_zoneinfo

__all__ = ["REGISTRY", "CapturedFile", "Frames", "KernelFile", "Reader", "find_entry", "live_paths",
           "per_node", "single", "fields"]

#: parsed frames by key ("zoneinfo", "zoneinfo.regions", "node_meminfo", ...)
Frames = dict[str, pd.DataFrame]


class CapturedFile(NamedTuple):
    """One file of a snapshot, handed to the entry that matched its name."""

    name: str              # as given: a capture name or a guest path; parsers report it as the source
    text: str
    match: re.Match[str]   # of the entry's pattern: named groups such as node or entry


@dataclass(frozen=True)
class Reader:
    """How an entry turns its captured files (all that matched, in snapshot order) into frames."""

    frames: tuple[str, ...]                           # the keys read() returns
    read: Callable[[Sequence[CapturedFile]], Frames]


@dataclass(frozen=True)
class KernelFile:
    """One kind of kernel file: where the guest has it, how its capture name looks, how it is parsed."""

    #: path or shell glob on the guest (or several, one entry's files); None when it is no
    #: file there (the boot log)
    guest_path: str | tuple[str, ...] | None
    #: regex of the name's last components ("zoneinfo", r"node(?P<node>\d+)[-/]meminfo")
    capture: str
    reader: Reader
    #: read by every snapshot; False: captured another way (dmesg.txt, firmware memmap)
    live: bool = True
    #: many one-line files: the snapshot reads them with shell builtins, not a `cat` each
    small: bool = False
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # anchored at a component start and at the end: "vmstat" must not match "nr_vmstat"
        object.__setattr__(self, "_pattern", re.compile(rf"(?:^|/)(?:{self.capture})$"))

    @property
    def guest_paths(self) -> tuple[str, ...]:
        """The guest paths or globs of the entry's files (none for the boot log)."""
        if self.guest_path is None:
            return ()
        return (self.guest_path,) if isinstance(self.guest_path, str) else self.guest_path

    @property
    def frames(self) -> tuple[str, ...]:
        """The frame keys this entry produces."""
        return self.reader.frames

    def match(self, name: str) -> re.Match[str] | None:
        """Match a "/"-separated capture name or guest path."""
        return self._pattern.search(name)


# --------------------------------------------------------------------------- readers
# A reader adapts a parser's signature and result to Frames. Most files need `single`.

def single(parse: Callable[[str, str], pd.DataFrame], key: str) -> Reader:
    """A parser of one file giving one frame; should a snapshot hold the file twice, the last one counts."""
    def read(files: Sequence[CapturedFile]) -> Frames:
        out: Frames = {}
        for f in files:
            out = {key: parse(f.text, f.name)}
        return out
    return Reader((key,), read)


def fields(parse: Callable[[str, str], tuple[object, ...]], **frames: str) -> Reader:
    """A parser of one file giving a NamedTuple of frames; frames maps its field names to keys."""
    def read(files: Sequence[CapturedFile]) -> Frames:
        out: Frames = {}
        for f in files:
            result = parse(f.text, f.name)
            out = {key: getattr(result, attr) for attr, key in frames.items()}
        return out
    return Reader(tuple(frames.values()), read)


def per_node(parse: Callable[[str, str, int], pd.DataFrame], key: str) -> Reader:
    """A per-node sysfs file: each node's 1-row frame, the node taken from the path; all nodes in one frame."""
    def read(files: Sequence[CapturedFile]) -> Frames:
        if not files:
            return {}
        return {key: pd.concat([parse(f.text, f.name, int(f.match["node"])) for f in files]).sort_index()}
    return Reader((key,), read)


def _firmware_memmap(files: Sequence[CapturedFile]) -> Frames:
    # three files per entry (N/start, N/end, N/type) make one row
    entries: dict[str, dict[str, str]] = {}
    for f in files:
        entries.setdefault(f.match["entry"], {})[f.match["field"]] = f.text
    return {"firmware_memmap": parse_firmware_memmap(entries, "firmware-memmap")} if entries else {}


def _dmesg(text: str, source: str) -> Frames:
    out = {"dmesg.e820": parse_e820(text, source)}
    out.update((f"dmesg.{name}", df) for name, df in parse_numa_layout(text, source)._asdict().items())
    return out


def _dmesg_reader(files: Sequence[CapturedFile]) -> Frames:
    out: Frames = {}
    for f in files:
        out = _dmesg(f.text, f.name)
    return out


def _memory_blocks(files: Sequence[CapturedFile]) -> Frames:
    return {"memory_blocks": parse_memory_blocks({f.name: f.text for f in files})} if files else {}


def _node_meminfo(text: str, source: str, node: int) -> pd.DataFrame:
    return parse_node_meminfo(text, source)  # meminfo prints its node on every line


def _mem_regions_config(text: str, source: str) -> pd.DataFrame:
    return pd.DataFrame([parse_mem_regions_config(text, source)])  # one row of key -> value


# --------------------------------------------------------------------------- the registry

_NODE_DIR = "/sys/devices/system/node/node*"
_DEBUGFS = "/sys/kernel/debug/mem_regions"
_MEMORY = "/sys/devices/system/memory"

#: Every file the harness parses. Live entries are read by the snapshot command in this order:
#: zoneinfo first, so the debugfs region files, read last, are the ones that lag it.
REGISTRY: tuple[KernelFile, ...] = (
    KernelFile("/proc/zoneinfo", "zoneinfo",
               fields(parse_zoneinfo, zones="zoneinfo", node_stats="zoneinfo.node_stats",
                      pagesets="zoneinfo.pagesets", regions="zoneinfo.regions")),
    KernelFile("/proc/buddyinfo", "buddyinfo", single(parse_buddyinfo, "buddyinfo")),
    KernelFile("/proc/pagetypeinfo", "pagetypeinfo",
               fields(parse_pagetypeinfo, free="pagetypeinfo.free", blocks="pagetypeinfo.blocks",
                      mixed="pagetypeinfo.mixed")),
    KernelFile("/proc/vmstat", "vmstat", single(parse_vmstat, "vmstat")),
    KernelFile(f"{_NODE_DIR}/meminfo", r"node(?P<node>\d+)[-/]meminfo", per_node(_node_meminfo, "node_meminfo")),
    KernelFile(f"{_NODE_DIR}/numastat", r"node(?P<node>\d+)[-/]numastat",
               per_node(parse_node_numastat, "node_numastat")),
    KernelFile(f"{_NODE_DIR}/vmstat", r"node(?P<node>\d+)[-/]vmstat", per_node(parse_node_vmstat, "node_vmstat")),
    KernelFile((f"{_MEMORY}/block_size_bytes", f"{_MEMORY}/memory*/state", f"{_MEMORY}/memory*/valid_zones"),
               r"memory/(?:memory\d+/(?:state|valid_zones)|block_size_bytes)",
               Reader(("memory_blocks",), _memory_blocks), small=True),
    KernelFile(f"{_DEBUGFS}/regions", "regions", single(parse_mem_regions, "mem_regions.regions")),
    KernelFile(f"{_DEBUGFS}/free_blocks", "free_blocks", single(parse_mem_free_blocks, "mem_regions.free_blocks")),
    KernelFile(f"{_DEBUGFS}/config", "mem_regions[-/]config", single(_mem_regions_config, "mem_regions.config")),
    KernelFile(f"{_DEBUGFS}/zones", "mem_regions[-/]zones", single(parse_mem_zones, "mem_regions.zones")),
    KernelFile("/sys/kernel/debug/extfrag/unusable_index", "unusable_index", single(parse_extfrag, "unusable_index")),
    KernelFile("/sys/kernel/debug/extfrag/extfrag_index", "extfrag_index", single(parse_extfrag, "extfrag_index")),
    KernelFile("/sys/kernel/tracing/events/kmem/mm_page_alloc_extfrag/hist", "mm_page_alloc_extfrag[-/]hist",
               single(parse_extfrag_hist, "extfrag_events")),
    # saved by tests/data/capture.py as firmware-memmap/N/{start,end,type}
    KernelFile("/sys/firmware/memmap/*/*", r"(?:firmware-)?memmap/(?P<entry>\d+)/(?P<field>start|end|type)",
               Reader(("firmware_memmap",), _firmware_memmap), live=False),
    # the boot log, saved as dmesg.txt next to the snapshots (or a console log)
    KernelFile(None, r"dmesg|dmesg\.txt|dmesg\.log|console\.log",
               Reader(("dmesg.e820", *(f"dmesg.{name}" for name in NumaLayout._fields)), _dmesg_reader),
               live=False),
)


def find_entry(name: str) -> tuple[KernelFile, re.Match[str]] | None:
    """The entry handling a capture name or guest path ("/"-separated), or None when no parser knows it."""
    best: tuple[KernelFile, re.Match[str]] | None = None
    for entry in REGISTRY:
        m = entry.match(name)
        if m is not None and (best is None or len(m[0]) > len(best[1][0])):
            best = (entry, m)
    return best


def live_paths(small: bool | None = None) -> tuple[str, ...]:
    """The guest paths and globs every snapshot reads, in reading order (only the small
    entries' or only the others', when small is given)."""
    return tuple(p for e in REGISTRY if e.live and (small is None or e.small == small) for p in e.guest_paths)
