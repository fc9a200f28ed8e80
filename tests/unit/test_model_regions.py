"""Region geometry and sorted-allocation prediction on the measured interleaved layout."""

import pytest

from harness.model import ModelInputError
from harness.model.layout import compute_layout
from harness.model.regions import predict_alloc_regions, predict_regions

from test_model_layout import DEFCONFIG_ZONES, INTERLEAVED, Q35_2G, M


@pytest.fixture(scope="module")
def layout():
    return compute_layout(Q35_2G, INTERLEAVED, DEFCONFIG_ZONES)


def rows(df, node, zone):
    return [tuple(r) for r in df.loc[(node, zone)].reset_index().itertuples(index=False)]


def test_interleaved_regions_count_only_own_pages(layout):
    r = predict_regions(layout)
    assert list(r.columns) == ["start_pfn", "end_pfn", "present"]
    assert r.index.names == ["node", "zone", "region"]
    assert rows(r, 0, "DMA") == [(0, 1, 4096, 3998)]
    # node0's DMA32 span [4096, 393216) covers node1's 512M-1G: region 1 has nothing of node0
    assert rows(r, 0, "DMA32") == [(0, 4096, 131072, 126976), (1, 131072, 262144, 0), (2, 262144, 393216, 131072)]
    assert rows(r, 1, "DMA32") == [(0, 131072, 262144, 131072), (1, 262144, 393216, 0), (2, 393216, 524255, 131039)]
    # unpopulated zones get no regions
    assert set(r.index.droplevel("region")) == {(0, "DMA"), (0, "DMA32"), (1, "DMA32")}


def test_region_present_adds_up_to_zone_present(layout):
    for size in (4 * M, 128 * M, 512 * M, 1 << 30):
        r = predict_regions(layout, size)
        sums = r.groupby(level=[0, 1])["present"].sum()
        populated = layout.zones[layout.zones["present"] > 0]["present"]
        assert sums.to_dict() == populated.to_dict()
        # clipped ranges tile each zone span exactly
        for (node, zone), z in layout.zones[layout.zones["present"] > 0].iterrows():
            rr = r.loc[(node, zone)]
            assert rr["start_pfn"].iloc[0] == z["start_pfn"] and rr["end_pfn"].iloc[-1] == z["end_pfn"]
            assert (rr["start_pfn"].iloc[1:].values == rr["end_pfn"].iloc[:-1].values).all()


def test_small_regions_are_aligned(layout):
    r = predict_regions(layout, 128 * M)
    assert len(r.loc[(0, "DMA32")]) == 3 * 4  # 4096..393216 meets 12 aligned 128M regions
    assert rows(r, 0, "DMA32")[0] == (0, 4096, 32768, 28672)
    assert rows(r, 0, "DMA32")[4] == (4, 131072, 163840, 0)


def test_sorted_allocation_takes_lowest_region_with_room(layout):
    r = predict_regions(layout)
    free = {0: 1024, 1: 0, 2: 5000}
    assert predict_alloc_regions(r, 0, "DMA32", free, order=9, count=3) == [0, 0, 2]
    assert predict_alloc_regions(r, 0, "DMA32", free, order=0, count=2) == [0, 0]
    assert free == {0: 1024, 1: 0, 2: 5000}  # the caller's mapping is not consumed
    with pytest.raises(ModelInputError, match="only 1 of 2"):
        predict_alloc_regions(r, 0, "DMA32", {0: 0, 1: 0, 2: 1024}, order=10, count=2)
    with pytest.raises(ModelInputError, match="order"):
        predict_alloc_regions(r, 0, "DMA32", free, order=11, count=1)
    with pytest.raises(ModelInputError, match="no regions"):
        predict_alloc_regions(r, 1, "DMA", free, order=0, count=1)
    with pytest.raises(ModelInputError, match="no region"):
        predict_alloc_regions(r, 1, "DMA32", {7: 10}, order=0, count=1)


def test_allocation_uses_free_column_when_given(layout):
    r = predict_regions(layout).copy()
    r["free"] = [5, 10, 0, 2048, 3, 1, 2]
    assert predict_alloc_regions(r, 0, "DMA32", None, order=10, count=2) == [2, 2]
