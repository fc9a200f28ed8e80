"""Parse /proc/zoneinfo (mm/vmstat.c zoneinfo_show_print) into zone, node, pageset and region frames.

Output of :func:`parse_zoneinfo` is a :class:`ZoneInfo` of four DataFrames:

``zones``       index (node, zone); one row per zone the kernel lists, populated or not.
                Columns are the kernel's names: ``pages_free`` ("pages free"), ``boost``,
                ``min``, ``low``, ``high``, ``promo``, ``spanned``, ``present``,
                ``managed``, ``cma``, ``protection_0`` .. ``protection_K`` (lowmem_reserve
                against the zone with index K, in the node's zone order), every
                ``nr_*``/``numa_*`` counter, ``node_unreclaimable`` (0/1),
                ``start_pfn`` (nullable Int64), a per-CPU pageset summary ``pcp_cpus``
                (CPUs listed), ``pcp_count`` and ``pcp_high`` (summed over CPUs),
                ``pcp_batch`` and ``vm_stats_threshold`` (largest over CPUs), the region
                header ``regions`` and ``region_size`` when the region series is applied.
                A zone is populated (full block printed) exactly when ``present`` > 0.
                Any ``name value`` line this module does not know becomes a column too.
``node_stats``  index node; the "per-node stats" block printed under a node's first
                populated zone, one column per counter.
``pagesets``    index (node, zone, cpu); ``count``, ``high``, ``batch`` (and ``high_min``,
                ``high_max`` on kernels >= 6.7), ``vm_stats_threshold``.
``regions``     index (node, zone, region); ``start_pfn``, ``end_pfn`` (exclusive),
                ``present``, ``free``: the lines the region patch series adds
                (kernel-patches/README.md).

An unpopulated zone ends after its protection line: the kernel omits its counters and
pagesets because they are 0 by construction (a zone with no pages holds no free, LRU
or pcp pages and served no allocation), so they are reported as 0 and ``pcp_cpus`` is 0;
``start_pfn`` is not knowable and is <NA>; ``node_unreclaimable`` is a node property
and is copied from the node's populated zones.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from ._common import ParseError, fast_index, int_frame, lines_of

__all__ = ["ZoneInfo", "parse_zoneinfo", "UNITS"]

#: Units of the zones columns; any column not listed is in pages.
UNITS: dict[str, str] = {
    "start_pfn": "pfn",
    "node_unreclaimable": "flag 0/1",
    "pcp_cpus": "CPUs",
    "vm_stats_threshold": "pages (per-CPU counter drift allowed before folding)",
    "regions": "count",
    "region_size": "pages",
    "numa_hit": "allocations", "numa_miss": "allocations", "numa_foreign": "allocations",
    "numa_interleave": "allocations", "numa_local": "allocations", "numa_other": "allocations",
    # node_stats exceptions (vmstat_item_print_in_thp and the *_KB items of mmzone.h)
    "nr_kernel_stack": "KiB", "nr_shadow_call_stack": "KiB",
    "nr_anon_transparent_hugepages": "THPs", "nr_shmem_hugepages": "THPs",
    "nr_shmem_pmdmapped": "THPs", "nr_file_hugepages": "THPs", "nr_file_pmdmapped": "THPs",
}

# Zone fields printed for every zone; a zone block lacking one is truncated.
_ALWAYS = ("pages_free", "min", "low", "high", "spanned", "present", "managed")
# Pageset sub-fields end at these zone-level keys.
_ZONE_COLON_KEYS = frozenset(("node_unreclaimable", "start_pfn"))


class ZoneInfo(NamedTuple):
    zones: pd.DataFrame
    node_stats: pd.DataFrame
    pagesets: pd.DataFrame
    regions: pd.DataFrame


def _bad(source: str, lineno: int, msg: str) -> ParseError:
    return ParseError(source, lineno, msg)


def _close_zone(zone: dict, pcps: list[dict], source: str, header_line: int, last_line: int,
                regions_seen: int) -> None:
    """Check a finished zone block for truncation and fill its pageset summary."""
    for key in _ALWAYS:
        if key not in zone:
            raise _bad(source, last_line,
                       f"Node {zone['_node']}, zone {zone['_zone']} (line {header_line}) ends without "
                       f"its '{key}' field: truncated or garbled")
    if "protection" not in zone:
        raise _bad(source, last_line, f"Node {zone['_node']}, zone {zone['_zone']} has no protection line")
    if zone["present"]:
        if "start_pfn" not in zone:
            raise _bad(source, last_line,
                       f"Node {zone['_node']}, zone {zone['_zone']} (line {header_line}) is populated "
                       "but ends before start_pfn: truncated")
        if not pcps:
            raise _bad(source, last_line, f"Node {zone['_node']}, zone {zone['_zone']} has no pagesets")
    if "regions" in zone and zone["regions"] != regions_seen:
        raise _bad(source, last_line,
                   f"Node {zone['_node']}, zone {zone['_zone']} announces {zone['regions']} regions "
                   f"but lists {regions_seen}")
    count = high = batch = thr = 0
    for p in pcps:
        count += p.get("count", 0)
        high += p.get("high", 0)
        batch = max(batch, p.get("batch", 0))
        thr = max(thr, p.get("vm_stats_threshold", 0))
    zone["pcp_cpus"] = len(pcps)
    zone["pcp_count"] = count
    zone["pcp_high"] = high
    zone["pcp_batch"] = batch
    zone["vm_stats_threshold"] = thr


def parse_zoneinfo(text: str, source: str = "zoneinfo") -> ZoneInfo:
    """Parse the text of /proc/zoneinfo; raise ParseError(source, line) on bad input."""
    lines = lines_of(text, source)
    zones: list[dict] = []
    node_stats: dict[int, dict] = {}
    pageset_rows: list[tuple[int, str, dict]] = []
    region_rows: list[tuple] = []

    zone: dict | None = None
    pcps: list[dict] = []
    pcp: dict | None = None
    nstats: dict | None = None  # non-None while inside a "per-node stats" block
    header_line = 0
    regions_seen = 0
    node = -1
    zname = ""

    lineno = 0
    try:
        for lineno, line in enumerate(lines, 1):
            parts = line.split()
            if len(parts) == 2:
                # "name value" lines are three quarters of the file: test them first
                key, val = parts
                if key[-1] != ":":
                    if nstats is not None:
                        nstats[key] = int(val)
                    elif key == "per-node":
                        if zone is None:
                            raise TypeError
                        if val != "stats" or node in node_stats:
                            raise _bad(source, lineno, f"unexpected {line.strip()!r}")
                        nstats = node_stats[node] = {}
                    else:
                        zone[key] = int(val)  # TypeError when no zone header came yet
                    continue
                name = key[:-1]
                if name == "cpu":
                    pcp = {}
                    pcps.append(pcp)
                    pageset_rows.append((node, zname, int(val), pcp))
                elif pcp is not None and name not in _ZONE_COLON_KEYS:
                    pcp[name] = int(val)
                else:
                    pcp = None
                    zone[name] = int(val)
                continue
            if not parts:
                raise _bad(source, lineno, "blank line inside zoneinfo")
            key = parts[0]
            n = len(parts)
            if key == "Node":
                if zone is not None:
                    _close_zone(zone, pcps, source, header_line, lineno - 1, regions_seen)
                if n != 4 or parts[2] != "zone" or parts[1][-1:] != ",":
                    raise _bad(source, lineno, f"garbled zone header {line!r}")
                node = int(parts[1][:-1])
                zname = parts[3]
                zone = {"_node": node, "_zone": zname}
                zones.append(zone)
                pcps = []
                pcp = None
                nstats = None
                header_line = lineno
                regions_seen = 0
            elif zone is None:
                raise TypeError
            elif key == "pages" and n == 3 and parts[1] == "free":
                nstats = None
                zone["pages_free"] = int(parts[2])
            elif key == "protection:":
                if line[-1] != ")" or parts[1][0] != "(":
                    raise _bad(source, lineno, f"garbled protection line {line.strip()!r}")
                inner = line[line.index("(") + 1:-1].split(",")
                for i, tok in enumerate(inner):
                    zone[f"protection_{i}"] = int(tok)
                zone["protection"] = len(inner)
            elif key == "pagesets" and n == 1:
                pcp = None
            elif key == "vm" and n == 4 and parts[1] == "stats" and parts[2] == "threshold:":
                if pcp is None:
                    raise _bad(source, lineno, "vm stats threshold outside a cpu pageset")
                pcp["vm_stats_threshold"] = int(parts[3])
            elif key == "regions:" and n == 4 and parts[2] == "size":
                if "regions" in zone:
                    raise _bad(source, lineno, "second regions header in one zone")
                zone["regions"] = int(parts[1])
                zone["region_size"] = int(parts[3])
            elif key == "region" and n == 10:
                if "regions" not in zone:
                    raise _bad(source, lineno, "region line before the 'regions:' header")
                if (parts[1][-1:] != ":" or parts[2] != "start_pfn" or parts[4] != "end_pfn"
                        or parts[6] != "present" or parts[8] != "free"):
                    raise _bad(source, lineno, f"garbled region line {line.strip()!r}")
                idx = int(parts[1][:-1])
                if idx != regions_seen:
                    raise _bad(source, lineno, f"region {idx} out of order (expected {regions_seen})")
                regions_seen += 1
                region_rows.append((node, zname, idx, int(parts[3]), int(parts[5]),
                                    int(parts[7]), int(parts[9])))
            else:
                raise _bad(source, lineno, f"unrecognised line {line.strip()!r}")
    except ValueError:
        raise _bad(source, lineno, f"expected a number in {lines[lineno - 1].strip()!r}") from None
    except TypeError:
        raise _bad(source, lineno,
                   f"{lines[lineno - 1].strip()!r} before any 'Node N, zone NAME' header") from None
    if zone is None:
        raise _bad(source, len(lines), "no 'Node N, zone NAME' header")
    _close_zone(zone, pcps, source, header_line, len(lines), regions_seen)
    return ZoneInfo(_zones_frame(zones), _node_frame(node_stats),
                    _pagesets_frame(pageset_rows), _regions_frame(region_rows))


def _columns(dicts) -> list[str]:
    seen: dict[str, None] = {}
    for d in dicts:
        for k in d:
            if k not in seen:
                seen[k] = None
    return list(seen)


def _zones_frame(zones: list[dict]) -> pd.DataFrame:
    cols = [c for c in _columns(zones)
            if c[0] != "_" and c not in ("protection", "start_pfn", "node_unreclaimable")]
    cols.append("node_unreclaimable")
    unreclaimable = {z["_node"]: z["node_unreclaimable"] for z in zones if "node_unreclaimable" in z}
    rows = []
    starts = np.zeros(len(zones), dtype=np.int64)
    missing = np.ones(len(zones), dtype=bool)
    for i, z in enumerate(zones):
        z["node_unreclaimable"] = unreclaimable.get(z["_node"], 0)
        get = z.get
        rows.append([get(c, 0) for c in cols])
        if "start_pfn" in z:
            starts[i] = z["start_pfn"]
            missing[i] = False
    index = fast_index([[z["_node"] for z in zones], [z["_zone"] for z in zones]], ["node", "zone"])
    df = int_frame(rows, index, cols)
    # nullable: an unpopulated zone does not print it and it is not always 0
    df["start_pfn"] = pd.arrays.IntegerArray(starts, missing)
    return df


def _node_frame(node_stats: dict[int, dict]) -> pd.DataFrame:
    cols = _columns(node_stats.values())
    rows = [[d.get(c, 0) for c in cols] for d in node_stats.values()]
    return int_frame(rows, fast_index([list(node_stats)], ["node"]), cols)


def _pagesets_frame(rows: list[tuple[int, str, int, dict]]) -> pd.DataFrame:
    cols = _columns(r[3] for r in rows) or ["count", "high", "batch", "vm_stats_threshold"]
    data = [[r[3].get(c, 0) for c in cols] for r in rows]
    index = fast_index([[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]],
                       ["node", "zone", "cpu"])
    return int_frame(data, index, cols)


def _regions_frame(rows: list[tuple]) -> pd.DataFrame:
    index = fast_index([[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]],
                       ["node", "zone", "region"])
    return int_frame([list(r[3:]) for r in rows], index, ["start_pfn", "end_pfn", "present", "free"])
