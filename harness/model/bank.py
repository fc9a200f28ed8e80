"""The region bank (kernel-patches 0005): which regions it must hold, and in which order it gives them back.

The kernel moves a region out of the buddy lists when a freed max-order block makes it
wholly free, unless it is the zone's only wholly free region left in the buddy lists (the
cache). Only regions made of max-order blocks of the unmovable, movable or reclaimable
types are banked. An allocation the buddy lists cannot serve withdraws the lowest banked
region. From a snapshot of mem_regions/regions (``banked`` column) and free_blocks this
module says, per region, whether it could be banked and, per zone, what the bank must
look like: every banked region wholly free and absent from the free lists, and at most
one bankable region left outside the bank.
"""

from __future__ import annotations

import pandas as pd

#: pages in a max-order block on x86_64 (MAX_PAGE_ORDER 10, 4 KiB pages)
MAX_ORDER = 10
MAX_ORDER_PAGES = 1 << MAX_ORDER
#: the pageblock types a wholly free region may have and still be banked (made movable)
BANKABLE_TYPES = ("Unmovable", "Movable", "Reclaimable")

__all__ = ["BANKABLE_TYPES", "MAX_ORDER", "MAX_ORDER_PAGES", "bank_state", "lowest_banked", "withdrawn"]


def bank_state(regions: pd.DataFrame, free_blocks: pd.DataFrame) -> pd.DataFrame:
    """Per region: ``whole`` (every present page free), ``listed`` (free pages on the buddy lists),
    ``bankable`` and ``banked``, indexed (node, zone, region) like the regions frame.

    regions: parse_mem_regions with a ``banked`` column; free_blocks: parse_mem_free_blocks.
    A banked region's blocks are on its bank list, not on the free lists, so free_blocks
    shows none of them; an unbanked region is bankable when all its free pages are in
    max-order blocks of BANKABLE_TYPES.
    """
    if "banked" not in regions.columns:
        raise ValueError("mem_regions/regions has no banked column: a kernel without the region bank")
    fb = free_blocks.reset_index()
    pages = fb["free_blocks"].astype("int64") * (2 ** fb["order"].astype("int64"))
    listed = pages.groupby([fb["node"], fb["zone"], fb["region"]]).sum()
    max_ok = fb[(fb["order"] == MAX_ORDER) & fb["migratetype"].isin(BANKABLE_TYPES)]
    max_pages = (max_ok["free_blocks"].astype("int64") * MAX_ORDER_PAGES).groupby(
        [max_ok["node"], max_ok["zone"], max_ok["region"]]).sum()
    out = pd.DataFrame(index=regions.index)
    present = regions["present"].astype("int64")
    free = regions["free"].astype("int64")
    out["present"] = present
    out["free"] = free
    out["banked"] = regions["banked"].astype("int64") != 0
    out["listed"] = listed.reindex(regions.index, fill_value=0).astype("int64")
    out["whole"] = (present > 0) & (free == present)
    whole_blocks = (present % MAX_ORDER_PAGES) == 0
    out["bankable"] = out["whole"] & whole_blocks & (
        out["banked"] | (max_pages.reindex(regions.index, fill_value=0).astype("int64") == free))
    return out


def lowest_banked(state: pd.DataFrame, node: int, zone: str) -> list[int]:
    """The banked regions of one zone, lowest first: the order withdrawals must take them."""
    zs = state.xs((node, zone), level=("node", "zone"))
    return sorted(int(r) for r in zs.index[zs["banked"]])


def withdrawn(before: pd.DataFrame, after: pd.DataFrame, node: int, zone: str) -> list[int]:
    """Regions of one zone that were banked in ``before`` and are not in ``after``, lowest first."""
    was = set(lowest_banked(before, node, zone))
    now = set(lowest_banked(after, node, zone))
    return sorted(was - now)
