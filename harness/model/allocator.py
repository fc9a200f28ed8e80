"""Allocator policy model: where a region-sorted buddy allocator serves a run of allocations.

Replays __rmqueue_smallest() and expand() of 6.12 on per-region free block counts
(debugfs mem_regions/free_blocks) for one zone and migratetype: an allocation of
order o takes the head of the smallest non-empty free list of order >= o; with
sorted lists that head is a block of the lowest region on that list. Splitting a
larger block leaves one block of each order o..k-1 in the same region.
With the lower-region bias (mem_region_bias=1, patch 0007) the order is not the
smallest with a block but the one whose lowest block lies in the lowest region, the
smaller order winning ties. With the region bank (patch 0005) a movable allocation that finds no block withdraws
the lowest banked region first: its max-order blocks join the lists (``bank``).
Fallback to other migratetypes and per-cpu lists are not modelled: callers drain the
per-cpu lists first and ask for less than the migratetype (and the bank) has free.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from harness.model import ModelInputError


def predict_sorted_allocs(free_blocks: pd.DataFrame, node: int, zone: str, migratetype: str,
                          order: int, count: int, bank: Mapping[int, int] | None = None,
                          lower_bias: bool = False) -> list[int]:
    """Region id of each of `count` blocks of `order` taken from (node, zone, migratetype).

    free_blocks: index (node, zone, region, migratetype, order), column free_blocks,
    as harness.metrics.parse_mem_free_blocks returns it. bank: the zone's banked regions
    and their max-order blocks, withdrawn lowest first when the lists run dry (only
    movable allocations withdraw before falling back). lower_bias: mem_region_bias=1.
    """
    try:
        sub = free_blocks.xs((node, zone, migratetype), level=("node", "zone", "migratetype"))
    except KeyError:
        raise ModelInputError(f"free_blocks has no rows for node {node} zone {zone} "
                              f"migratetype {migratetype}") from None
    levels = sub.index.get_level_values
    counts: dict[tuple[int, int], int] = {
        (int(region), int(o)): int(n)
        for region, o, n in zip(levels("region").tolist(), levels("order").tolist(),
                                sub["free_blocks"].tolist(), strict=True) if n
    }
    max_order = int(sub.index.get_level_values("order").max())
    regions_of: dict[int, list[int]] = {}
    for region, o in counts:
        regions_of.setdefault(o, []).append(region)

    banked = sorted((bank or {}).items()) if migratetype == "Movable" else []
    served: list[int] = []
    for i in range(count):
        candidates = [(min(r for r in regions_of.get(o, []) if counts.get((r, o))), o)
                      for o in range(order, max_order + 1)
                      if any(counts.get((r, o)) for r in regions_of.get(o, []))]
        if not candidates:
            current = None
        elif lower_bias:
            current = min(candidates)[1]      # lowest region, then smallest order
        else:
            current = candidates[0][1]        # smallest order with a block
        if current is None and banked:
            region, blocks = banked.pop(0)    # __rmqueue(): the lowest banked region comes back
            counts[(region, max_order)] = counts.get((region, max_order), 0) + blocks
            regions_of.setdefault(max_order, []).append(region)
            current = max_order
        if current is None:
            raise ModelInputError(f"allocation {i + 1} of {count}: node {node} zone {zone} has no "
                                  f"{migratetype} block of order >= {order} left")
        region = min(r for r in regions_of[current] if counts.get((r, current)))
        counts[(region, current)] -= 1
        for split in range(order, current):   # expand(): the halves stay in the region
            counts[(region, split)] = counts.get((region, split), 0) + 1
            if region not in regions_of.setdefault(split, []):
                regions_of[split].append(region)
        served.append(region)
    return served
