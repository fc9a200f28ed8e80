"""Dispatch a set of captured kernel files to their parsers by file name; read a capture directory.

File names are matched on their last path component, so both capture names
("node0-meminfo", "dmesg.txt", "firmware-memmap/0/start") and live paths
("/proc/zoneinfo", "/sys/devices/system/node/node0/meminfo",
"/sys/kernel/debug/mem_regions/regions") work. Keys of the result:

zoneinfo, zoneinfo.node_stats, zoneinfo.pagesets, zoneinfo.regions, buddyinfo,
pagetypeinfo.free, pagetypeinfo.blocks, pagetypeinfo.mixed, vmstat, node_meminfo,
node_numastat, node_vmstat (all nodes concatenated, indexed by node), dmesg.e820,
dmesg.<field of NumaLayout>, firmware_memmap, mem_regions.regions,
mem_regions.free_blocks, mem_regions.config (1 row). The "time" and "uptime" files that
harness.metrics.collect writes next to a snapshot are clock data, not parsed here.
"""

from __future__ import annotations

import logging
import os
import re

import pandas as pd

from .buddyinfo import parse_buddyinfo
from .dmesg import parse_e820, parse_numa_layout
from .firmware_memmap import parse_firmware_memmap
from .mem_regions import parse_mem_free_blocks, parse_mem_regions, parse_mem_regions_config
from .node import parse_node_meminfo, parse_node_numastat, parse_node_vmstat
from .pagetypeinfo import parse_pagetypeinfo
from .vmstat import parse_vmstat
from .zoneinfo import parse_zoneinfo

__all__ = ["parse_snapshot", "read_capture_dir", "load_capture"]

log = logging.getLogger(__name__)

_NODE_FILE = re.compile(r"(?:^|/)node(\d+)[-/](meminfo|numastat|vmstat)$")
_CLOCK_FILES = frozenset(("time", "uptime"))
_MEMMAP_FILE = re.compile(r"(?:^|/)(?:firmware-)?memmap/(\d+)/(start|end|type)$")


def parse_snapshot(files: dict[str, str]) -> dict[str, pd.DataFrame]:
    """Parse every known file of one snapshot ({name or path: text}); unknown names are logged and skipped."""
    out: dict[str, pd.DataFrame] = {}
    per_node: dict[str, list[pd.DataFrame]] = {}
    memmap: dict[str, dict[str, str]] = {}
    for name, text in files.items():
        path = name.replace(os.sep, "/")
        base = path.rsplit("/", 1)[-1]
        m = _NODE_FILE.search(path)
        if m:
            kind = m[2]
            parser = {"meminfo": parse_node_meminfo, "numastat": parse_node_numastat,
                      "vmstat": parse_node_vmstat}[kind]
            df = parser(text, name) if kind == "meminfo" else parser(text, name, int(m[1]))
            per_node.setdefault(f"node_{kind}", []).append(df)
            continue
        m = _MEMMAP_FILE.search(path)
        if m:
            memmap.setdefault(m[1], {})[m[2]] = text
            continue
        if base in _CLOCK_FILES:
            continue
        if base == "zoneinfo":
            z = parse_zoneinfo(text, name)
            out["zoneinfo"] = z.zones
            out["zoneinfo.node_stats"] = z.node_stats
            out["zoneinfo.pagesets"] = z.pagesets
            out["zoneinfo.regions"] = z.regions
        elif base == "buddyinfo":
            out["buddyinfo"] = parse_buddyinfo(text, name)
        elif base == "pagetypeinfo":
            p = parse_pagetypeinfo(text, name)
            out["pagetypeinfo.free"] = p.free
            out["pagetypeinfo.blocks"] = p.blocks
            out["pagetypeinfo.mixed"] = p.mixed
        elif base == "vmstat":
            out["vmstat"] = parse_vmstat(text, name)
        elif base in ("dmesg", "dmesg.txt", "dmesg.log", "console.log"):
            out["dmesg.e820"] = parse_e820(text, name)
            for field, df in parse_numa_layout(text, name)._asdict().items():
                out[f"dmesg.{field}"] = df
        elif base == "regions":
            out["mem_regions.regions"] = parse_mem_regions(text, name)
        elif base == "free_blocks":
            out["mem_regions.free_blocks"] = parse_mem_free_blocks(text, name)
        elif base == "config" and "mem_regions" in path or base == "mem_regions-config":
            out["mem_regions.config"] = pd.DataFrame([parse_mem_regions_config(text, name)])
        else:
            log.warning("no parser for captured file %s: skipped", name)
    for key, frames in per_node.items():
        out[key] = pd.concat(frames).sort_index()
    if memmap:
        out["firmware_memmap"] = parse_firmware_memmap(memmap, "firmware-memmap")
    return out


def read_capture_dir(path: str) -> dict[str, str]:
    """Read every regular file under a capture directory: {relative path: text}."""
    files = {}
    for root, _dirs, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            with open(full, encoding="utf-8", errors="replace") as fh:
                files[os.path.relpath(full, path).replace(os.sep, "/")] = fh.read()
    return files


def load_capture(path: str) -> dict[str, pd.DataFrame]:
    """read_capture_dir + parse_snapshot."""
    return parse_snapshot(read_capture_dir(path))
