"""Predict memory-region geometry per (node, zone): the regions the patch series reports for a layout.

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
``present`` equals the zone's present pages, less what memory hotplug onlined into the zone
from another one (``Layout.untracked``: in no region of it).

Where a region-sorted allocator serves blocks is modelled in harness.model.allocator.
"""

from __future__ import annotations

import pandas as pd

from harness.model import ModelInputError
from harness.model.layout import MIN_REGION_SIZE, Layout, overlap
from harness.units import PAGE_SHIFT

__all__ = ["REGION_COLUMNS", "predict_regions"]

REGION_COLUMNS = ["start_pfn", "end_pfn", "present"]


def predict_regions(layout: Layout, region_size: int | None = None) -> pd.DataFrame:
    """Return regions per populated zone: index (node, zone, region), columns start_pfn, end_pfn, present.

    region_size in bytes overrides the layout's mem_region_size. end_pfn is exclusive;
    every quantity is in pages.
    """
    if region_size is None:
        r = layout.region_size_pages
    else:
        if region_size <= 0 or region_size & (region_size - 1) or region_size < MIN_REGION_SIZE:
            raise ModelInputError(f"region_size: {region_size} is not a power of two >= 4 MiB")
        r = region_size >> PAGE_SHIFT
    # the kernel sets regions up at boot: after hotplug their geometry is the boot zones',
    # and the memory that left a zone (harness.model.hotplug) is no region's present
    booted = layout.zones if layout.region_zones is None else layout.region_zones
    zones = booted[booted["present"] > 0]
    rows: list[tuple[int, str, int, int, int, int]] = []
    for (node, zone), zs, ze in zip(zones.index.tolist(), zones["start_pfn"].tolist(),
                                    zones["end_pfn"].tolist(), strict=True):
        ranges, away = layout.memory[node], layout.away.get(node, [])
        for k, g in enumerate(range(zs // r, (ze - 1) // r + 1)):
            s, e = max(g * r, zs), min((g + 1) * r, ze)
            rows.append((node, zone, k, s, e, overlap(ranges, s, e) - overlap(away, s, e)))
    df = pd.DataFrame(rows, columns=["node", "zone", "region", *REGION_COLUMNS])
    return df.set_index(["node", "zone", "region"]).astype("int64")
