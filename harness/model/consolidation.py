"""The best consolidation possible: how many regions could be wholly free if used memory were packed low.

Per zone, the used pages (present - free) are packed into the lowest regions, region by
region; every region above the fill line is then wholly free. Pages that cannot move
(unmovable and reclaimable pageblocks) stay where they are: ``pinned`` gives them per
region, and a region holding any is never counted free. ``pinned_pages`` reads them from
the pageblock types debugfs shows per region (kernel-patches 0008): every page in use in
a region with an unmovable, reclaimable or high-atomic pageblock stays. Without them
(older kernels, zoneinfo region lines) every used page counts as movable and the figure
is an upper bound. Either way pages the kernel reserved at boot inside movable pageblocks
count as movable: no file says where they are. The observed free regions as a share of
the optimum is what a consolidation policy achieved of what was possible.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

#: the region frame's index levels and columns this model reads (harness.metrics mem_regions)
KEYS = ("node", "zone")


def optimum_free_regions(regions: pd.DataFrame,
                         pinned: Mapping[tuple[int, str, int], int] | None = None) -> pd.Series:
    """Per (node, zone): the largest number of regions that could be wholly free.

    regions: one row per region with columns node, zone, region, present, free (pages),
    as parsed from mem_regions/regions or the zoneinfo region lines (a plain or a
    (node, zone, region) index). Regions with no present page are not regions to free.
    pinned: (node, zone, region) -> pages there that cannot move.
    """
    df = regions.reset_index() if not isinstance(regions.index, pd.RangeIndex) else regions
    pinned = pinned or {}
    out: dict[tuple[int, str], int] = {}
    for key, zr in df.sort_values(["node", "zone", "region"]).groupby(list(KEYS), sort=False):
        node, zone = int(key[0]), str(key[1])  # type: ignore[call-overload]  # group keys are (int, str)
        zr = zr[zr["present"] > 0]
        fixed = {int(r): int(pinned.get((node, zone, int(r)), 0)) for r in zr["region"]}
        movable = int((zr["present"] - zr["free"]).sum()) - sum(fixed.values())
        room_below = 0
        free = 0
        for r, present in zip(zr["region"], zr["present"], strict=True):
            r, present = int(r), int(present)
            if movable > room_below:
                room_below += present - fixed[r]   # this region takes movable pages
            elif fixed[r] == 0:
                free += 1                          # above the fill line and nothing pinned
        out[(node, zone)] = free
    return pd.Series(out, name="optimum_free_regions", dtype="int64").rename_axis(list(KEYS))


#: pageblock types whose pages stay where they are (mem_regions/regions columns)
FIXED_TYPES = ("pageblocks_Unmovable", "pageblocks_Reclaimable", "pageblocks_HighAtomic")


def pinned_pages(regions: pd.DataFrame) -> dict[tuple[int, str, int], int]:
    """(node, zone, region) -> pages in use that cannot move: all of a region's used pages
    when it has an unmovable, reclaimable or high-atomic pageblock; {} without the columns."""
    df = regions.reset_index() if not isinstance(regions.index, pd.RangeIndex) else regions
    if not set(FIXED_TYPES) <= set(df.columns):
        return {}
    held = df[(df[list(FIXED_TYPES)].sum(axis=1) > 0) & (df["present"] > df["free"])]
    used = (held["present"] - held["free"]).astype("int64").tolist()
    keys = zip(held["node"].astype("int64"), held["zone"].astype(str), held["region"].astype("int64"), strict=True)
    return {(int(n), z, int(r)): u for (n, z, r), u in zip(keys, used, strict=True)}


def observed_free_regions(regions: pd.DataFrame) -> pd.Series:
    """Per (node, zone): regions whose every present page is free."""
    df = regions.reset_index() if not isinstance(regions.index, pd.RangeIndex) else regions
    df = df[df["present"] > 0]
    return (df["free"] == df["present"]).groupby([df["node"], df["zone"]]).sum().astype("int64").rename(
        "free_regions")
