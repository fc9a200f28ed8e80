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

Units are pages except: ``start_pfn`` (a pfn), ``node_unreclaimable`` (0/1), ``pcp_cpus``
(CPUs), ``regions`` (a count), ``numa_*`` (allocations), and in ``node_stats``
``nr_kernel_stack``/``nr_shadow_call_stack`` (KiB) and the ``*_hugepages``/``*_pmdmapped``
counters (THPs).

An unpopulated zone ends after its protection line: the kernel omits its counters and
pagesets because they are 0 by construction (a zone with no pages holds no free, LRU
or pcp pages and served no allocation), so they are reported as 0 and ``pcp_cpus`` is 0;
``start_pfn`` is not knowable and is <NA>; ``node_unreclaimable`` is a node property
and is copied from the node's populated zones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd

from ._common import ParseError, fast_index, int_frame, lines_of

__all__ = ["ZoneInfo", "parse_zoneinfo"]

# Zone fields printed for every zone; a zone block lacking one is truncated.
_ALWAYS = ("pages_free", "min", "low", "high", "spanned", "present", "managed")
# Pageset sub-fields end at these zone-level keys.
_ZONE_COLON_KEYS = frozenset(("node_unreclaimable", "start_pfn"))

# (node, zone, cpu, that CPU's pageset fields)
_PagesetRow = tuple[int, str, int, dict[str, int]]
# (node, zone, region, start_pfn, end_pfn, present, free)
_RegionRow = tuple[int, str, int, int, int, int, int]


class ZoneInfo(NamedTuple):
    zones: pd.DataFrame
    node_stats: pd.DataFrame
    pagesets: pd.DataFrame
    regions: pd.DataFrame


class _Zone:
    """One "Node N, zone NAME" block while it is read: its header and its "name value" fields."""

    __slots__ = ("node", "name", "header_line", "fields")

    def __init__(self, node: int, name: str, header_line: int):
        self.node = node
        self.name = name
        self.header_line = header_line
        self.fields: dict[str, int] = {}

    def __str__(self) -> str:
        return f"Node {self.node}, zone {self.name}"


def _bad(source: str, lineno: int, msg: str) -> ParseError:
    return ParseError(source, lineno, msg)


def _before_header(source: str, lineno: int, line: str) -> ParseError:
    return _bad(source, lineno, f"{line.strip()!r} before any 'Node N, zone NAME' header")


def _close_zone(zone: _Zone, pcps: list[dict[str, int]], source: str, last_line: int,
                regions_seen: int) -> None:
    """Check a finished zone block for truncation and fill its pageset summary."""
    fields = zone.fields
    for key in _ALWAYS:
        if key not in fields:
            raise _bad(source, last_line,
                       f"{zone} (line {zone.header_line}) ends without its '{key}' field: truncated or garbled")
    if "protection" not in fields:
        raise _bad(source, last_line, f"{zone} has no protection line")
    if fields["present"]:
        if "start_pfn" not in fields:
            raise _bad(source, last_line,
                       f"{zone} (line {zone.header_line}) is populated but ends before start_pfn: truncated")
        if not pcps:
            raise _bad(source, last_line, f"{zone} has no pagesets")
    if "regions" in fields and fields["regions"] != regions_seen:
        raise _bad(source, last_line, f"{zone} announces {fields['regions']} regions but lists {regions_seen}")
    count = high = batch = thr = 0
    for p in pcps:
        count += p.get("count", 0)
        high += p.get("high", 0)
        batch = max(batch, p.get("batch", 0))
        thr = max(thr, p.get("vm_stats_threshold", 0))
    fields["pcp_cpus"] = len(pcps)
    fields["pcp_count"] = count
    fields["pcp_high"] = high
    fields["pcp_batch"] = batch
    fields["vm_stats_threshold"] = thr


def parse_zoneinfo(text: str, source: str = "zoneinfo") -> ZoneInfo:
    """Parse the text of /proc/zoneinfo; raise ParseError(source, line) on bad input."""
    lines = lines_of(text, source)
    zones: list[_Zone] = []
    node_stats: dict[int, dict[str, int]] = {}
    pageset_rows: list[_PagesetRow] = []
    region_rows: list[_RegionRow] = []

    zone: _Zone | None = None
    pcps: list[dict[str, int]] = []
    pcp: dict[str, int] | None = None
    nstats: dict[str, int] | None = None  # non-None while inside a "per-node stats" block
    regions_seen = 0
    node = -1
    zname = ""

    lineno = 0
    try:
        for lineno, line in enumerate(lines, 1):
            parts = line.split()
            if len(parts) == 2:
                # "name value" lines are three quarters of the file: test them first
                if zone is None:
                    raise _before_header(source, lineno, line)
                key, val = parts
                if key[-1] != ":":
                    if nstats is not None:
                        nstats[key] = int(val)
                    elif key == "per-node":
                        if val != "stats" or node in node_stats:
                            raise _bad(source, lineno, f"unexpected {line.strip()!r}")
                        nstats = node_stats[node] = {}
                    else:
                        zone.fields[key] = int(val)
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
                    zone.fields[name] = int(val)
                continue
            if not parts:
                raise _bad(source, lineno, "blank line inside zoneinfo")
            key = parts[0]
            n = len(parts)
            if key == "Node":
                if zone is not None:
                    _close_zone(zone, pcps, source, lineno - 1, regions_seen)
                if n != 4 or parts[2] != "zone" or parts[1][-1:] != ",":
                    raise _bad(source, lineno, f"garbled zone header {line!r}")
                node = int(parts[1][:-1])
                zname = parts[3]
                zone = _Zone(node, zname, lineno)
                zones.append(zone)
                pcps = []
                pcp = None
                nstats = None
                regions_seen = 0
                continue
            if zone is None:
                raise _before_header(source, lineno, line)
            fields = zone.fields
            if key == "pages" and n == 3 and parts[1] == "free":
                nstats = None
                fields["pages_free"] = int(parts[2])
            elif key == "protection:":
                if line[-1] != ")" or parts[1][0] != "(":
                    raise _bad(source, lineno, f"garbled protection line {line.strip()!r}")
                inner = line[line.index("(") + 1:-1].split(",")
                for i, tok in enumerate(inner):
                    fields[f"protection_{i}"] = int(tok)
                fields["protection"] = len(inner)
            elif key == "pagesets" and n == 1:
                pcp = None
            elif key == "vm" and n == 4 and parts[1] == "stats" and parts[2] == "threshold:":
                if pcp is None:
                    raise _bad(source, lineno, "vm stats threshold outside a cpu pageset")
                pcp["vm_stats_threshold"] = int(parts[3])
            elif key == "regions:" and n in (4, 6) and parts[2] == "size" and (n == 4 or parts[4] == "free"):
                if "regions" in fields:
                    raise _bad(source, lineno, "second regions header in one zone")
                fields["regions"] = int(parts[1])
                fields["region_size"] = int(parts[3])
                if n == 6:
                    # the regions' free pages summed under the zone lock that printed
                    # nr_free_pages (series 0002): one instant, unlike the region lines
                    fields["regions_free"] = int(parts[5])
            elif key == "region" and n == 10:
                if "regions" not in fields:
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
        # every int() above: a garbled or cut-off number
        raise _bad(source, lineno, f"expected a number in {lines[lineno - 1].strip()!r}") from None
    if zone is None:
        raise _bad(source, len(lines), "no 'Node N, zone NAME' header")
    _close_zone(zone, pcps, source, len(lines), regions_seen)
    try:
        return ZoneInfo(_zones_frame(zones), _node_frame(node_stats),
                        _pagesets_frame(pageset_rows), _regions_frame(region_rows))
    except OverflowError:
        # counters wider than int64 are kept (int_frame); a pfn or pageset field that wide is garbled
        raise ParseError(source, None, "a pfn or pageset number beyond 64 bits: the capture is garbled") from None


def _columns(dicts: Iterable[Mapping[str, int]]) -> list[str]:
    """Every key of the dicts, in first-seen order (the kernel's print order)."""
    seen: dict[str, None] = {}
    for d in dicts:
        for k in d:
            if k not in seen:
                seen[k] = None
    return list(seen)


def _zones_frame(zones: list[_Zone]) -> pd.DataFrame:
    cols = [c for c in _columns(z.fields for z in zones)
            if c not in ("protection", "start_pfn", "node_unreclaimable")]
    cols.append("node_unreclaimable")
    unreclaimable = {z.node: z.fields["node_unreclaimable"] for z in zones if "node_unreclaimable" in z.fields}
    rows = []
    starts = np.zeros(len(zones), dtype=np.int64)
    missing = np.ones(len(zones), dtype=bool)
    for i, z in enumerate(zones):
        z.fields["node_unreclaimable"] = unreclaimable.get(z.node, 0)
        get = z.fields.get
        rows.append([get(c, 0) for c in cols])
        if "start_pfn" in z.fields:
            starts[i] = z.fields["start_pfn"]
            missing[i] = False
    index = fast_index([[z.node for z in zones], [z.name for z in zones]], ["node", "zone"])
    df = int_frame(rows, index, cols)
    # nullable: an unpopulated zone does not print it and it is not always 0
    df["start_pfn"] = pd.arrays.IntegerArray(starts, missing)
    return df


def _node_frame(node_stats: dict[int, dict[str, int]]) -> pd.DataFrame:
    cols = _columns(node_stats.values())
    rows = [[d.get(c, 0) for c in cols] for d in node_stats.values()]
    return int_frame(rows, fast_index([list(node_stats)], ["node"]), cols)


def _pagesets_frame(rows: list[_PagesetRow]) -> pd.DataFrame:
    cols = _columns(r[3] for r in rows) or ["count", "high", "batch", "vm_stats_threshold"]
    data = [[r[3].get(c, 0) for c in cols] for r in rows]
    index = fast_index([[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]],
                       ["node", "zone", "cpu"])
    return int_frame(data, index, cols)


def _regions_frame(rows: list[_RegionRow]) -> pd.DataFrame:
    index = fast_index([[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]],
                       ["node", "zone", "region"])
    return int_frame([list(r[3:]) for r in rows], index, ["start_pfn", "end_pfn", "present", "free"])
