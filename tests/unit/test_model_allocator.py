"""The sorted-allocator model replayed on real free_blocks captures of the regions kernel."""

from pathlib import Path

import pytest

from harness.metrics import parse_mem_free_blocks
from harness.model import ModelInputError
from harness.model.allocator import predict_sorted_allocs

CAPTURE = Path(__file__).resolve().parents[1] / "data" / "captures" / "6.12-regions-interleaved-small"


@pytest.fixture
def free_blocks():
    return parse_mem_free_blocks((CAPTURE / "mem_regions" / "free_blocks").read_text(), "free_blocks")


def test_lowest_region_first_then_the_next(free_blocks):
    # node 0: region 0 has 114 free order-10 Movable blocks, region 2 has 123, region 1
    # (node 1's stripe) none; no order-9 block anywhere, so each order-10 block is split
    # and its other half serves the next order-9 request from the same region
    assert predict_sorted_allocs(free_blocks, 0, "DMA32", "Movable", 9, 4) == [0, 0, 0, 0]
    served = predict_sorted_allocs(free_blocks, 0, "DMA32", "Movable", 9, 2 * 114 + 3)
    assert served[:228] == [0] * 228 and served[228:] == [2, 2, 2]


def test_smallest_order_list_wins_over_lower_region(free_blocks):
    # node 1: region 2 holds two order-8 blocks, region 0 only order-10 blocks. The buddy
    # takes the smallest order that has a block, so the first two order-8 requests come
    # from region 2 even though region 0 is lower (what v4's "split lower" would change)
    assert predict_sorted_allocs(free_blocks, 1, "DMA32", "Movable", 8, 3) == [2, 2, 0]


def test_exhaustion_and_unknown_zone_are_errors(free_blocks):
    with pytest.raises(ModelInputError, match="no Movable block of order >= 10 left"):
        predict_sorted_allocs(free_blocks, 0, "DMA32", "Movable", 10, 114 + 123 + 1)
    with pytest.raises(ModelInputError, match="no rows for node 0 zone Normal"):
        predict_sorted_allocs(free_blocks, 0, "Normal", "Movable", 9, 1)


def test_bank_is_withdrawn_lowest_region_first_when_the_lists_run_dry(free_blocks):
    # node 0 lists 114 + 123 order-10 Movable blocks; with regions 5 and 3 banked (4 and 2
    # blocks), the next requests take region 3 whole, then region 5: lowest first
    bank = {5: 4, 3: 2}
    served = predict_sorted_allocs(free_blocks, 0, "DMA32", "Movable", 10, 114 + 123 + 6, bank)
    assert served[:237] == [0] * 114 + [2] * 123
    assert served[237:] == [3, 3, 5, 5, 5, 5]
    with pytest.raises(ModelInputError, match="no Movable block of order >= 10 left"):
        predict_sorted_allocs(free_blocks, 0, "DMA32", "Movable", 10, 114 + 123 + 7, bank)
    # only movable requests withdraw before falling back to other migratetypes
    with pytest.raises(ModelInputError, match="no Unmovable block"):
        predict_sorted_allocs(free_blocks, 0, "DMA32", "Unmovable", 10, 1000, bank)


def test_lower_bias_splits_a_lower_region_before_a_higher_exact_fit(free_blocks):
    # node 1: region 2 holds the only order-8 blocks, region 0 order-10 blocks; with the
    # bias region 0's larger blocks are split first, and the halves serve the next requests
    assert predict_sorted_allocs(free_blocks, 1, "DMA32", "Movable", 8, 3, lower_bias=True) == [0, 0, 0]
    # without a lower region there is nothing to prefer: same as the plain policy
    plain = predict_sorted_allocs(free_blocks, 0, "DMA32", "Movable", 9, 5)
    assert predict_sorted_allocs(free_blocks, 0, "DMA32", "Movable", 9, 5, lower_bias=True) == plain
