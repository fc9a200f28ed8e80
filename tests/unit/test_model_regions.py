"""Region geometry on the measured interleaved layout (sorted allocation: test_model_allocator.py)."""

import pytest

from harness.model import ModelInputError
from harness.model.regions import predict_regions
from harness.units import MiB as M


@pytest.fixture(scope="module")
def layout(interleaved_layout):
    return interleaved_layout


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


def test_region_size_must_be_a_power_of_two_of_at_least_4m(layout):
    for bad in (0, 3 * M, 384 * M):
        with pytest.raises(ModelInputError, match="power of two"):
            predict_regions(layout, bad)
