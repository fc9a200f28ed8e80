"""Parse our debugfs files /sys/kernel/debug/mem_regions/{regions,free_blocks,zones,config} (kernel-patches/README.md).

``parse_mem_regions``      index (node, zone, region); start_pfn, end_pfn (exclusive),
                           present, free: all pages; then whatever numeric columns the
                           kernel's header names (``banked`` 0/1 since the region bank).
``parse_mem_zones``        index (node, zone); regions, free_regions (wholly free, in the
                           buddy lists), banked_regions, banked_pages.
``parse_mem_free_blocks``  index (node, zone, region, migratetype, order); ``free_blocks``
                           (blocks of 2**order pages).
``parse_mem_regions_config``  dict ``{key: int}`` (region_size_pages, sorted 0/1).
"""

from __future__ import annotations

from collections.abc import Hashable

import pandas as pd

from ._common import ParseError, fast_index, int_frame, lines_of

__all__ = ["parse_mem_regions", "parse_mem_free_blocks", "parse_mem_regions_config", "parse_mem_zones"]

_REGIONS_HEADER = ["node", "zone", "region", "start_pfn", "end_pfn", "present", "free"]
_ZONES_HEADER = ["node", "zone", "regions", "free_regions", "banked_regions", "banked_pages"]


def _header(lines: list[str], source: str, first: list[str]) -> list[str]:
    if not lines:
        raise ParseError(source, None, "empty input")
    head = lines[0].split()
    if head[:len(first)] != first:
        raise ParseError(source, 1, f"header should start {' '.join(first)!r}, got {lines[0]!r}")
    return head


def _table(lines: list[str], source: str, head: list[str], index: list[str]) -> pd.DataFrame:
    """Rows of whitespace-separated fields under ``head``: the ``index`` columns first (zone a
    name, the others numbers), then numeric columns named by the header."""
    keys: list[list[Hashable]] = [[] for _ in index]
    rows: list[list[int]] = []
    for lineno, line in enumerate(lines[1:], 2):
        parts = line.split()
        if len(parts) != len(head):
            raise ParseError(source, lineno, f"expected {len(head)} fields, got {len(parts)}: {line!r}")
        try:
            for column, name, part in zip(keys, index, parts, strict=False):
                column.append(part if name == "zone" else int(part))
            rows.append([int(p) for p in parts[len(index):]])
        except ValueError:
            raise ParseError(source, lineno, f"expected numbers in {line!r}") from None
    return int_frame(rows, fast_index(keys, index), head[len(index):])


def parse_mem_regions(text: str, source: str = "regions") -> pd.DataFrame:
    """Parse mem_regions/regions: the seven columns every version prints, then any the header adds."""
    lines = lines_of(text, source)
    head = _header(lines, source, _REGIONS_HEADER)
    if len(set(head)) != len(head):
        raise ParseError(source, 1, f"duplicate columns in {lines[0]!r}")
    return _table(lines, source, head, ["node", "zone", "region"])


def parse_mem_zones(text: str, source: str = "zones") -> pd.DataFrame:
    """Parse mem_regions/zones: per zone, wholly free regions in the buddy lists and the bank."""
    lines = lines_of(text, source)
    return _table(lines, source, _header(lines, source, _ZONES_HEADER), ["node", "zone"])


def parse_mem_free_blocks(text: str, source: str = "free_blocks") -> pd.DataFrame:
    """Parse mem_regions/free_blocks (header "node zone region migratetype order0 ... orderN")."""
    lines = lines_of(text, source)
    head = _header(lines, source, ["node", "zone", "region", "migratetype"])
    orders = head[4:]
    if not orders or orders != [f"order{i}" for i in range(len(orders))]:
        raise ParseError(source, 1, f"garbled order columns in {lines[0]!r}")
    width = 4 + len(orders)
    keys: list[list[Hashable]] = [[], [], [], [], []]
    values: list[list[int]] = []
    for lineno, line in enumerate(lines[1:], 2):
        parts = line.split()
        if len(parts) != width:
            raise ParseError(source, lineno, f"expected {width} fields, got {len(parts)}: {line!r}")
        try:
            node, region = int(parts[0]), int(parts[2])
            values.extend([int(p)] for p in parts[4:])
        except ValueError:
            raise ParseError(source, lineno, f"expected numbers in {line!r}") from None
        for order in range(len(orders)):
            keys[0].append(node)
            keys[1].append(parts[1])
            keys[2].append(region)
            keys[3].append(parts[3])
            keys[4].append(order)
    return int_frame(values, fast_index(keys, ["node", "zone", "region", "migratetype", "order"]),
                     ["free_blocks"])


def parse_mem_regions_config(text: str, source: str = "config") -> dict[str, int]:
    """Parse mem_regions/config ("key value" lines) into a dict of ints."""
    out: dict[str, int] = {}
    for lineno, line in enumerate(lines_of(text, source), 1):
        parts = line.split()
        if len(parts) != 2:
            raise ParseError(source, lineno, f"expected 'key value', got {line!r}")
        try:
            out[parts[0]] = int(parts[1])
        except ValueError:
            raise ParseError(source, lineno, f"{parts[0]}: expected a number, got {parts[1]!r}") from None
    return out
