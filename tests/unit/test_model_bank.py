"""The region bank model and checks on real captures of the regions kernel (16M regions, after a drain)."""

from pathlib import Path

import pytest

from harness import checks
from harness.errors import ParseError
from harness.metrics import parse_mem_free_blocks, parse_mem_regions, parse_mem_zones
from harness.model.bank import bank_state, lowest_banked, withdrawn

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"
BANKED = ["6.12-bank-two-node", "6.12-bank-interleaved-small"]


def _load(name):
    d = CAPTURES / name / "mem_regions"
    return (parse_mem_regions((d / "regions").read_text(), "regions"),
            parse_mem_free_blocks((d / "free_blocks").read_text(), "free_blocks"),
            parse_mem_zones((d / "zones").read_text(), "zones"))


@pytest.mark.parametrize("name", BANKED)
def test_capture_agrees_with_the_bank_model(name):
    regions, free_blocks, zones = _load(name)
    table = checks.check_bank(regions, free_blocks, bank_on=True)
    assert not checks.failed(table), checks.render(table, only_failures=True)
    state = bank_state(regions, free_blocks)
    # a freshly booted 2 GiB guest banks most of its memory, region by region
    assert state["banked"].sum() > 50
    per_zone = state[state["banked"]].groupby(level=["node", "zone"])["free"].agg(["count", "sum"])
    per_zone = per_zone.reindex(zones.index, fill_value=0)
    assert zones["banked_regions"].tolist() == per_zone["count"].tolist()
    assert zones["banked_pages"].tolist() == per_zone["sum"].tolist()
    assert (zones["free_regions"] <= 1).all()


def test_interleaved_regions_of_the_other_node_are_never_banked():
    regions, free_blocks, _ = _load("6.12-bank-interleaved-small")
    state = bank_state(regions, free_blocks)
    empty = state[state["present"] == 0]
    assert len(empty) > 0 and not empty["banked"].any() and not empty["bankable"].any()


def test_a_banked_region_that_is_not_wholly_free_is_a_diff():
    regions, free_blocks, _ = _load("6.12-bank-two-node")
    state = bank_state(regions, free_blocks)
    victim = state.index[state["banked"]][0]
    regions.loc[victim, "free"] -= 1024
    table = checks.check_bank(regions, free_blocks, bank_on=True)
    bad = table[table["verdict"] != checks.OK]
    assert bad["key"].tolist() == [f"node{victim[0]}/{victim[1]}/region{victim[2]}"]
    assert checks.failed(checks.check_banked_whole(regions))


def test_two_bankable_regions_outside_the_bank_is_a_diff():
    regions, free_blocks, _ = _load("6.12-bank-two-node")
    state = bank_state(regions, free_blocks)
    node, zone = state.index[state["banked"]][0][:2]
    first, second = lowest_banked(state, node, zone)[:2]
    for r in (first, second):   # as if both had stayed in the buddy lists as max-order movable blocks
        regions.loc[(node, zone, r), "banked"] = 0
        blocks = int(regions.loc[(node, zone, r), "free"]) // 1024
        free_blocks.loc[(node, zone, r, "Movable", 10), "free_blocks"] = blocks
    table = checks.check_bank(regions, free_blocks, bank_on=True)
    bad = table[table["verdict"] != checks.OK]
    assert bad["field"].tolist() == ["bankable_outside_bank"]
    # with the bank off, the same capture is wrong for the opposite reason
    off = checks.check_bank(regions, free_blocks, bank_on=False)
    assert set(off[off["verdict"] != checks.OK]["field"]) == {"banked_regions"}


def test_withdrawn_regions_are_the_difference_lowest_first():
    regions, free_blocks, _ = _load("6.12-bank-two-node")
    before = bank_state(regions, free_blocks)
    node, zone = before.index[before["banked"]][0][:2]
    taken = lowest_banked(before, node, zone)[:2]
    for r in taken:
        regions.loc[(node, zone, r), "banked"] = 0
    assert withdrawn(before, bank_state(regions, free_blocks), node, zone) == taken


def test_regions_without_a_banked_column_and_bad_zones_files():
    with pytest.raises(ValueError, match="no banked column"):
        regions = parse_mem_regions((CAPTURES / "6.12-regions-two-node" / "mem_regions" / "regions").read_text())
        bank_state(regions, parse_mem_free_blocks(
            (CAPTURES / "6.12-regions-two-node" / "mem_regions" / "free_blocks").read_text()))
    with pytest.raises(ParseError, match="expected 6 fields"):
        parse_mem_zones("node zone regions free_regions banked_regions banked_pages\n0 DMA32 64 1 59\n")
    with pytest.raises(ParseError, match="header should start"):
        parse_mem_zones("node zone regions\n0 DMA32 64\n")
