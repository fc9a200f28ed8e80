"""Predict memory-region geometry per (node, zone) and where a region-sorted allocator serves blocks.

A region is an aligned physical range [k*R, (k+1)*R) of R = mem_region_size bytes. For a
populated zone (present > 0; the patch series reports nothing for the others) the
regions are every aligned region that intersects the zone span [start_pfn, end_pfn),
each clipped to that span. Numbering is 0-based within the zone in pfn order, and counts
every intersecting region whether or not it holds present pages: region k of a zone is
the k-th aligned region meeting the zone span. That is the numbering the kernel patch
prints, so the frames line up row by row.

``present`` counts only this node's memblock pages inside the clipped range: in an
interleaved layout (node0 = 0-512M + 1G-1.5G) a zone's span covers another node's memory
(bootmem2's trap), and those pages are not the zone's. Summed over a zone's regions,
``present`` equals the zone's present pages.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from harness.model import ModelInputError
from harness.model.layout import PAGE_SHIFT, Layout, _overlap

REGION_COLUMNS = ["start_pfn", "end_pfn", "present"]
# include/linux/mmzone.h: MAX_PAGE_ORDER is 10 on x86_64 (4 MiB blocks)
MAX_PAGE_ORDER = 10
# the test module's limit for one command (kernel-patches/README.md)
MAX_ALLOC_COUNT = 65536


def predict_regions(layout: Layout, region_size: int | None = None) -> pd.DataFrame:
    """Return regions per populated zone: index (node, zone, region), columns start_pfn, end_pfn, present.

    region_size in bytes overrides the layout's mem_region_size. end_pfn is exclusive;
    every quantity is in pages.
    """
    if region_size is None:
        r = layout.region_size_pages
    else:
        if region_size <= 0 or region_size & (region_size - 1) or region_size < (4 << 20):
            raise ModelInputError(f"region_size: {region_size} is not a power of two >= 4 MiB")
        r = region_size >> PAGE_SHIFT
    rows = []
    for (node, zone), z in layout.zones.iterrows():
        if z["present"] == 0:
            continue
        zs, ze = int(z["start_pfn"]), int(z["end_pfn"])
        ranges = layout.memory[node]
        for k, g in enumerate(range(zs // r, (ze - 1) // r + 1)):
            s, e = max(g * r, zs), min((g + 1) * r, ze)
            rows.append((node, zone, k, s, e, _overlap(ranges, s, e)))
    df = pd.DataFrame(rows, columns=["node", "zone", "region", *REGION_COLUMNS])
    return df.set_index(["node", "zone", "region"]).astype("int64")


def predict_alloc_regions(
    regions_df: pd.DataFrame,
    node: int,
    zone: str,
    free_per_region: Mapping[int, int] | pd.Series | None,
    order: int,
    count: int,
) -> list[int]:
    """Return the region id serving each of `count` blocks of `order`, in allocation order.

    The contract of the sorted allocator: each block comes from the lowest region of the
    zone that still has free memory for it. free_per_region maps region id -> free pages
    (None: take regions_df's ``free`` column). Only counts are modelled, so a region is
    taken to serve a block when its free pages reach 2**order; fragmentation inside a
    region and blocks parked on per-cpu lists (orders <= 3, the THP order) are not modelled,
    so compare with the test module after draining pcp lists or at order > 3.
    Raises ModelInputError when the zone cannot serve the request.
    """
    if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= MAX_PAGE_ORDER:
        raise ModelInputError(f"order: {order!r} is not in 0..{MAX_PAGE_ORDER}")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_ALLOC_COUNT:
        raise ModelInputError(f"count: {count!r} is not in 1..{MAX_ALLOC_COUNT}")
    try:
        zone_regions = regions_df.loc[(node, zone)]
    except KeyError:
        raise ModelInputError(f"no regions for node {node} zone {zone} (unpopulated or unknown)") from None
    if free_per_region is None:
        if "free" not in zone_regions.columns:
            raise ModelInputError("free_per_region is None and regions_df has no 'free' column")
        free_per_region = zone_regions["free"]
    free = {int(k): int(v) for k, v in dict(free_per_region).items()}
    unknown = set(free) - {int(k) for k in zone_regions.index}
    if unknown:
        raise ModelInputError(f"free_per_region: node {node} zone {zone} has no region(s) {sorted(unknown)}")
    block = 1 << order
    served = []
    for i in range(count):
        region = next((k for k in sorted(free) if free[k] >= block), None)
        if region is None:
            raise ModelInputError(
                f"node {node} zone {zone}: only {i} of {count} order-{order} blocks fit in the free memory given"
            )
        free[region] -= block
        served.append(region)
    return served
