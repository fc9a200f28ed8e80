"""The layout after memory hotplug: boot layout plus where each memory block is now.

A memory block (harness.metrics.memory_blocks) that was offlined and onlined again can come
back in another zone of its node: on four-node, node 2's DMA32 zone starts at 1.5G, and
once its first block is offline the zone no longer spans it, so onlining puts it in the
node's Normal zone. ``apply_memory_blocks`` is a pure function of the boot layout and the
blocks' current states and zones; it replays what mm/memory_hotplug.c does to zones and
nodes, and what the series (kernel-patches 0006, 0008) does to regions:

- a block that left its boot zone (offline, or online in another zone) takes its pages out
  of the zone's present and managed counts and out of its regions (whose geometry stays
  the boot one: the kernel sets regions up once);
- a block onlined into another zone adds its pages to that zone's present and managed
  counts, outside every region of that zone (untracked: ``Layout.untracked``);
- zone spans (shrink_zone_span): when the removed block starts at the zone's first pfn,
  the zone then starts at the first subsection (2 MiB) after it that is online in the
  zone on this node; likewise at the end; a zone left with nothing is empty (start 0).
  An onlined block widens the span of its zone (resize_zone_range). Node spans are
  recomputed from the zones (update_pgdat_span) on every node a block left;
- an offline block's pages leave the node's present pages and MemTotal.

Removals are applied before additions, which is the order of an offline followed by an
online. Not modelled: hot-added memory (a block with no boot memory is an error), a
block returned to its boot zone after that zone's span had shrunk past a boot edge that
was not block-aligned, and holes inside a section (the kernel's scan may stop on a hole's
subsection; the model only on memory).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from harness.model import ModelInputError
from harness.model.inputs import Range
from harness.model.layout import KIB_PER_PAGE, Layout, overlap

__all__ = ["PAGES_PER_SUBSECTION", "Move", "apply_memory_blocks", "block_moves"]

#: include/linux/mmzone.h SUBSECTION_SHIFT 21: the step of shrink_zone_span's scans
PAGES_PER_SUBSECTION = 512


@dataclass(frozen=True)
class Move:
    """A memory block that is not where it booted."""

    block: int
    start_pfn: int
    end_pfn: int
    node: int
    #: the node's boot memory in the block
    pages: int
    #: the zone it booted in
    from_zone: str
    #: the zone it is online in now; None when offline
    to_zone: str | None


def _records(frame: pd.DataFrame) -> dict[Any, dict[str, int]]:
    """{index: {column: int}} of an all-integer frame."""
    return {key: {str(c): int(v) for c, v in row.items()} for key, row in frame.to_dict("index").items()}


def _zone_memories(layout: Layout) -> dict[tuple[int, str], list[Range]]:
    """(node, zone) -> the node's memory inside the zone's boot span, for every populated zone."""
    out = {}
    for (node, zone), row in _records(layout.zones).items():
        if row["present"] > 0:
            zs, ze = row["start_pfn"], row["end_pfn"]
            out[(int(node), str(zone))] = [(max(s, zs), min(e, ze)) for s, e in layout.memory.get(node, [])
                                           if max(s, zs) < min(e, ze)]
    return out


def block_moves(layout: Layout, blocks: pd.DataFrame) -> list[Move]:
    """The blocks (a harness.metrics.memory_blocks frame) not where they booted, by block."""
    memories = _zone_memories(layout)
    moves = []
    for block, start, end, state, zone in zip(blocks.index.tolist(), blocks["start_pfn"].tolist(),
                                              blocks["end_pfn"].tolist(), blocks["state"].tolist(),
                                              blocks["zone"].tolist(), strict=True):
        zone = None if pd.isna(zone) else str(zone)
        # {(node, zone): pages} of the block at boot
        owners = {key: n for key, ranges in memories.items() if (n := overlap(ranges, start, end))}
        if state == "online" and (zone == "none" or (len(owners) > 1 and zone in {z for _, z in owners})
                                  or (len(owners) == 1 and next(iter(owners))[1] == zone)):
            # where it booted; a block across zones can never have been offlined (valid_zones
            # names one of them, or "none")
            continue
        if len(owners) != 1:
            what = "no memory at boot (hot-added memory is not modelled)" if not owners else \
                f"boot memory in {sorted(owners)}"
            raise ModelInputError(f"memory{block}: {state} in {zone or 'no zone'}, but the block had {what}")
        (node, boot_zone), pages = next(iter(owners.items()))
        if state == "online" and (node, zone) not in layout.zones.index:
            raise ModelInputError(f"memory{block}: online in zone {zone!r}, which node {node} does not have")
        moves.append(Move(int(block), int(start), int(end), node, pages, boot_zone,
                          zone if state == "online" else None))
    return moves


def _scan(start: int, stop: int, step: int, inside: Callable[[int], bool]) -> int | None:
    """The first pfn from start towards stop (exclusive) in steps of step for which inside() holds."""
    for pfn in range(start, stop, step):
        if inside(pfn):
            return pfn
    return None


def apply_memory_blocks(layout: Layout, blocks: pd.DataFrame | None) -> Layout:
    """The layout with the blocks' current zones (harness.metrics.memory_blocks frame); the
    boot layout itself when no block moved."""
    moves = block_moves(layout, blocks) if blocks is not None and not blocks.empty else []
    if not moves:
        return layout
    zones = _records(layout.zones)
    nodes = _records(layout.nodes)
    away: dict[int, list[Range]] = {}
    untracked = dict.fromkeys(zones, 0)
    counted = ("present", "managed_min", "managed_max")
    for m in moves:
        away.setdefault(m.node, []).append((m.start_pfn, m.end_pfn))
        # an offlined block had no reserved page (offlining would have failed): all managed
        for c in counted:
            zones[(m.node, m.from_zone)][c] = max(0, zones[(m.node, m.from_zone)][c] - m.pages)
        if m.to_zone is None:
            nodes[m.node]["node_present"] -= m.pages
            for c in ("memtotal_kb_min", "memtotal_kb_max"):
                nodes[m.node][c] = max(0, nodes[m.node][c] - m.pages * KIB_PER_PAGE)

    memories = _zone_memories(layout)

    def online_in(node: int, zone: str) -> Callable[[int], bool]:
        # a pfn is in the zone when it is the node's memory there and its block did not leave
        memory = memories[(node, zone)]
        gone = away.get(node, [])
        return lambda pfn: overlap(memory, pfn, pfn + 1) > 0 and overlap(gone, pfn, pfn + 1) == 0

    # removals: shrink_zone_span at either edge, repeated while a removed block sits on one
    for node, zone in sorted({(m.node, m.from_zone) for m in moves}):
        z = zones[(node, zone)]
        start, end = z["start_pfn"], z["end_pfn"]
        inside = online_in(node, zone)
        removed = [(m.start_pfn, m.end_pfn) for m in moves if (m.node, m.from_zone) == (node, zone)]
        changed = True
        while changed and start < end:
            changed = False
            for s, e in removed:
                if s == start:
                    found = _scan(e, end, PAGES_PER_SUBSECTION, inside)
                    start, end = (found, end) if found is not None else (0, 0)
                    changed = True
                elif e == end:
                    found = _scan(s - 1, start - 1, -PAGES_PER_SUBSECTION, inside)
                    start, end = (start, found + 1) if found is not None else (0, 0)
                    changed = True
                if changed:
                    break
        z["start_pfn"], z["end_pfn"] = start, end
    # additions: the onlined block widens its new zone's span (resize_zone_range)
    for m in moves:
        if m.to_zone is None:
            continue
        z = zones[(m.node, m.to_zone)]
        if z["start_pfn"] == z["end_pfn"]:
            z["start_pfn"], z["end_pfn"] = m.start_pfn, m.end_pfn
        else:
            z["start_pfn"], z["end_pfn"] = min(z["start_pfn"], m.start_pfn), max(z["end_pfn"], m.end_pfn)
        for c in counted:
            z[c] += m.pages
        untracked[(m.node, m.to_zone)] += m.pages
    for z in zones.values():
        z["spanned"] = z["end_pfn"] - z["start_pfn"]
    # update_pgdat_span on the nodes a block left: the union of their zones' spans
    for node in sorted({m.node for m in moves}):
        spans = [z for (n, _), z in zones.items() if n == node and z["spanned"] > 0]
        first = min((z["start_pfn"] for z in spans), default=0)
        last = max((z["end_pfn"] for z in spans), default=0)
        nodes[node]["node_start_pfn"], nodes[node]["node_spanned"] = first, last - first
    zones_df = pd.DataFrame.from_dict(zones, orient="index")[list(layout.zones.columns)]
    zones_df.index = layout.zones.index
    nodes_df = pd.DataFrame.from_dict(nodes, orient="index")[list(layout.nodes.columns)]
    nodes_df.index = layout.nodes.index
    return replace(layout, zones=zones_df.astype("int64"), nodes=nodes_df.astype("int64"),
                   region_zones=layout.region_zones if layout.region_zones is not None else layout.zones,
                   away={n: sorted(r) for n, r in away.items()},
                   untracked=pd.Series(untracked, dtype="int64").reindex(layout.zones.index))
