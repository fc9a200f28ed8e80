"""The consolidation optimum on real region captures, contiguous and interleaved."""

import pandas as pd
import pytest

from harness.metrics import parse_mem_regions
from harness.model.consolidation import FIXED_TYPES, observed_free_regions, optimum_free_regions, pinned_pages


@pytest.mark.parametrize("capture", ["6.12-regions-two-node", "6.12-regions-interleaved",
                                     "6.12-regions-four-node"])
def test_the_optimum_bounds_what_was_observed(data_dir, capture):
    regions = parse_mem_regions((data_dir / "captures" / capture / "mem_regions" / "regions").read_text())
    opt, seen = optimum_free_regions(regions), observed_free_regions(regions)
    assert list(opt.index) == list(seen.index)
    assert (seen <= opt).all()
    # packing never frees more regions than the zone has beyond its used pages
    flat = regions.reset_index()
    for (node, zone), zr in flat[flat["present"] > 0].groupby(["node", "zone"]):
        used = int((zr["present"] - zr["free"]).sum())
        assert opt[(node, zone)] <= len(zr) - (used > 0)
        region_pages = int(zr["present"].max())
        assert opt[(node, zone)] >= len(zr) - -(-used // region_pages) - 1


def test_packing_and_pinned_pages():
    regions = pd.DataFrame({"node": [0] * 4, "zone": ["Normal"] * 4, "region": [0, 1, 2, 3],
                            "present": [100] * 4, "free": [50, 100, 90, 60]})   # 100 pages used
    assert optimum_free_regions(regions)[(0, "Normal")] == 3      # all of it fits in region 0
    # 10 unmovable pages in region 3 keep it; the other 90 still fit in region 0
    assert optimum_free_regions(regions, {(0, "Normal", 3): 10})[(0, "Normal")] == 2
    assert observed_free_regions(regions)[(0, "Normal")] == 1


def test_pages_of_unmovable_pageblocks_stay_where_they_are(data_dir):
    # after churn plus stragglers with evacuation on: some regions hold unmovable or
    # reclaimable pageblocks (the kernel's own and the file tree's slab)
    regions = parse_mem_regions((data_dir / "captures" / "6.12-evacuate-two-node" / "mem_regions" /
                                 "regions").read_text())
    pinned = pinned_pages(regions)
    flat = regions.reset_index()
    fixed = flat[(flat[list(FIXED_TYPES)].sum(axis=1) > 0) & (flat["present"] > flat["free"])]
    assert len(pinned) == len(fixed) > 0
    assert all(n == int(flat.set_index(["node", "zone", "region"]).loc[k].pipe(lambda r: r["present"] - r["free"]))
               for k, n in pinned.items())
    bound, best, seen = optimum_free_regions(regions), optimum_free_regions(regions, pinned), \
        observed_free_regions(regions)
    # regions that must stay take nothing from what was seen free, and only lower the bound
    assert (seen <= best).all() and (best <= bound).all()
    assert best.sum() < bound.sum()  # here a region above the fill line keeps a reclaimable block
    # a kernel without pageblock types per region: no pins, the upper bound
    assert pinned_pages(regions.drop(columns=list(FIXED_TYPES))) == {}
