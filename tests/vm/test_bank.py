"""The region bank (kernel-patches 0005, 0006): what it holds, what it gives back, and in which order.

Each scenario runs on every selected topology on the regions kernel, and on the debug
kernel (DEBUG_VM, DEBUG_LIST, DEBUG_PAGEALLOC, PROVE_LOCKING), whose console watcher
fails the test on any WARNING, BUG or lockdep report, on the spot-check topologies
(RH_SPOT_TOPOLOGIES, conftest.py), like the policies-off kernel. Allocations go through
the test interface (region_alloc_test/control) and are freed before the test ends.
"""

import pytest

from harness import checks
from harness.metrics import (
    parse_alloc_pfns,
    parse_mem_free_blocks,
    parse_mem_regions,
    parse_mem_zones,
    parse_pagetypeinfo,
)
from harness.metrics.region_alloc_test import CONTROL
from harness.metrics.vmstat import parse_name_values
from harness.model.allocator import predict_sorted_allocs
from harness.model.bank import MAX_ORDER, MAX_ORDER_PAGES, bank_state, lowest_banked
from harness.vm.tracing import record

from variants import BASELINE, DEBUG, REGIONS

DEBUGFS = "/sys/kernel/debug/mem_regions"
FLAVORS = (REGIONS, pytest.param(DEBUG, marks=pytest.mark.spot, id=DEBUG))
#: x86_64 memory blocks are 128 MiB
BLOCK_PAGES = 32768


def _snapshot(vm):
    """Drain the per-cpu lists, then regions and free_blocks in one round trip."""
    out = vm.run(f"echo drain > {CONTROL} && cat {DEBUGFS}/regions; echo @@; cat {DEBUGFS}/free_blocks",
                 check=True).stdout
    regions, free_blocks = out.split("@@\n")
    return parse_mem_regions(regions, "regions"), parse_mem_free_blocks(free_blocks, "free_blocks")


def _events(vm):
    return parse_name_values(vm.run("grep ^region_bank_ /proc/vmstat", check=True).stdout, "/proc/vmstat")


def _zone_with_bank(state, min_banked=1):
    """(node, zone) with the most banked regions; skips nothing: the topology must have one."""
    counts = state["banked"].groupby(level=["node", "zone"]).sum()
    (node, zone), n = max(counts.items(), key=lambda kv: kv[1])
    assert n >= min_banked, f"no zone has {min_banked} banked regions:\n{counts}"
    return int(node), str(zone)


def _listed(free_blocks, node, zone, types):
    fb = free_blocks.xs((node, zone), level=("node", "zone"))
    fb = fb[fb.index.get_level_values("order") == MAX_ORDER]
    return int(fb[fb.index.get_level_values("migratetype").isin(types)]["free_blocks"].sum())


def _region_of(regions, node, zone, pfn):
    z = regions.xs((node, zone), level=("node", "zone"))
    hit = z[(z["start_pfn"] <= pfn) & (pfn < z["end_pfn"])]
    assert len(hit) == 1, f"pfn {pfn} is in no region of node {node} {zone}"
    return int(hit.index[0])


def _alloc(vm, node, count, mt):
    out = vm.run(f"echo 'alloc nid={node} order={MAX_ORDER} count={count} mt={mt} drain=0' > {CONTROL} "
                 f"&& cat {CONTROL}", check=True).stdout
    return parse_alloc_pfns(out, "control")["pfn"].tolist()


@pytest.fixture(params=FLAVORS)
def bank_vm(request, rh_guest, rh_topology):
    vm = rh_guest(request.param, rh_topology)
    yield vm
    vm.run(f"echo free > {CONTROL}", check=True)
    vm.check_console()


def test_bank_holds_the_wholly_free_regions(bank_vm):
    regions, free_blocks = _snapshot(bank_vm)
    table = checks.check_bank(regions, free_blocks, bank_on=True)
    assert not checks.failed(table), "\n" + checks.render(table, only_failures=True)
    state = bank_state(regions, free_blocks)
    assert state["banked"].any(), "a freshly booted guest has wholly free regions: none is banked"
    zones = parse_mem_zones(bank_vm.run(f"cat {DEBUGFS}/zones", check=True).stdout, "zones")
    banked = state[state["banked"]].groupby(level=["node", "zone"])["free"].agg(["count", "sum"])
    banked = banked.reindex(zones.index, fill_value=0)
    assert zones["banked_regions"].tolist() == banked["count"].tolist()
    assert zones["banked_pages"].tolist() == banked["sum"].tolist()
    assert "bank 1" in bank_vm.run(f"cat {DEBUGFS}/config", check=True).stdout


@pytest.mark.spot
def test_policies_off_banks_nothing(rh_guest, rh_topology):
    vm = rh_guest(BASELINE, rh_topology)
    assert "bank 0" in vm.run(f"cat {DEBUGFS}/config", check=True).stdout
    regions, free_blocks = _snapshot(vm)
    table = checks.check_bank(regions, free_blocks, bank_on=False)
    assert not checks.failed(table), "\n" + checks.render(table, only_failures=True)


def test_withdrawals_take_the_lowest_banked_region_first(bank_vm):
    """Movable max-order allocations empty the lists, then withdraw banked regions lowest first."""
    regions, free_blocks = _snapshot(bank_vm)
    state = bank_state(regions, free_blocks)
    node, zone = _zone_with_bank(state, min_banked=2)
    lowest = lowest_banked(state, node, zone)[:2]
    bank = {r: int(state.loc[(node, zone, r), "free"]) // MAX_ORDER_PAGES for r in lowest}
    count = _listed(free_blocks, node, zone, ["Movable"]) + bank[lowest[0]] + 1
    before = _events(bank_vm)
    pfns = _alloc(bank_vm, node, count, "movable")
    after = _events(bank_vm)
    observed = [_region_of(regions, node, zone, p) for p in pfns]
    expected = predict_sorted_allocs(free_blocks, node, zone, "Movable", MAX_ORDER, count, bank)
    assert observed == expected
    assert after["region_bank_withdraw"] - before["region_bank_withdraw"] >= 2
    now = bank_state(*_snapshot(bank_vm))
    assert not now.loc[[(node, zone, r) for r in lowest], "banked"].any()


BANK_EVENTS = [f"kmem/mm_region_bank_{a}" for a in ("deposit", "withdraw", "return")]


def _counted_between_marks(vm, rec, tag):
    """The bank's vm events, read between two markers in the recording (TAG0, TAG1)."""
    out = vm.run(f"{rec.mark(tag + '0')}; grep ^region_bank_ /proc/vmstat; {rec.mark(tag + '1')}", check=True).stdout
    return parse_name_values(out, "/proc/vmstat")


def _between(ev, first, last):
    """The events strictly between the marker events ``first`` and ``last``."""
    texts = ev["text"].tolist() if "text" in ev else []
    return ev.iloc[texts.index(first) + 1:texts.index(last)]


def test_bank_tracepoints_name_every_region_the_counters_count(bank_vm):
    """Withdrawals, then the free (which may bank regions again, or leave the one wholly free
    region as the zone's cache): one event per counted move (0011), each naming a whole
    region, the withdrawals lowest first, banked_pages a running total."""
    with record(bank_vm, BANK_EVENTS, name="rh-bank") as rec:
        # the snapshot after the recording's own ring buffer is allocated: 8 MiB per CPU of
        # unmovable pages, which can withdraw banked regions themselves
        regions, free_blocks = _snapshot(bank_vm)
        state = bank_state(regions, free_blocks)
        node, zone = _zone_with_bank(state, min_banked=2)
        lowest = lowest_banked(state, node, zone)[:2]
        count = _listed(free_blocks, node, zone, ["Movable"]) + int(state.loc[(node, zone, lowest[0]), "free"]) \
            // MAX_ORDER_PAGES + 1
        before = _counted_between_marks(bank_vm, rec, "before")
        _alloc(bank_vm, node, count, "movable")
        bank_vm.run(f"echo free > {CONTROL}", check=True)
        after = _counted_between_marks(bank_vm, rec, "after")
    # the guest's own allocations move regions too: a move between a marker pair may or may
    # not be in the counters read there, one between the pairs is in them for sure
    surely, maybe = _between(rec.events, "before1", "after0"), _between(rec.events, "before0", "after1")
    for action in ("deposit", "withdraw", "return"):
        counted = after[f"region_bank_{action}"] - before[f"region_bank_{action}"]
        name = f"mm_region_bank_{action}"
        assert (surely["event"] == name).sum() <= counted <= (maybe["event"] == name).sum(), action
    ev = surely.astype({"node": int, "region": int, "start_pfn": int, "pages": int, "banked_pages": int})
    mine = ev[(ev["node"] == node) & (ev["zone"] == zone)]
    withdrawn = mine[mine["event"] == "mm_region_bank_withdraw"]["region"].tolist()
    assert withdrawn[:2] == lowest, \
        f"withdrawn {withdrawn} in node {node} {zone}, the lowest banked were {lowest}:\n{rec.events.to_string()}"
    # every event moves a whole region: its start and every present page
    where = regions.loc[list(zip(ev["node"], ev["zone"], ev["region"], strict=True))]
    assert ev["start_pfn"].tolist() == where["start_pfn"].tolist()
    assert ev["pages"].tolist() == where["present"].tolist()
    # banked_pages is the zone's running total after each event
    for _, z in ev.groupby(["node", "zone"]):
        sign = z["event"].map({"mm_region_bank_deposit": 1}).fillna(-1)
        steps = z["banked_pages"].diff().iloc[1:]
        assert steps.tolist() == (sign * z["pages"]).iloc[1:].tolist()


def test_unmovable_claim_returns_a_banked_region_whole(bank_vm):
    """An unmovable request that finds no free max-order block in the lists takes a banked
    region back whole, and only then claims a pageblock of it."""
    regions, free_blocks = _snapshot(bank_vm)
    state = bank_state(regions, free_blocks)
    node, zone = _zone_with_bank(state)
    target = lowest_banked(state, node, zone)[0]
    count = _listed(free_blocks, node, zone, ["Unmovable", "Movable", "Reclaimable"]) + 1
    before = _events(bank_vm)
    pfns = _alloc(bank_vm, node, count, "unmovable")
    after = _events(bank_vm)
    assert _region_of(regions, node, zone, pfns[-1]) == target
    assert after["region_bank_withdraw"] - before["region_bank_withdraw"] >= 1
    now_regions, now_blocks = _snapshot(bank_vm)
    now = bank_state(now_regions, now_blocks)
    row = now.loc[(node, zone, target)]
    assert not row["banked"]
    # the rest of the region is back on the free lists, not lost: present - the claimed block,
    # less what the guest allocated since. The region is now the lowest with free blocks, so
    # the snapshot's own processes take pages from it (4 on the regions kernel, 91 on the debug
    # one); the bank moves whole max-order blocks, so a lost one is 1024 pages missing
    assert row["listed"] == row["free"]
    assert row["present"] - 2 * MAX_ORDER_PAGES < row["free"] <= row["present"] - MAX_ORDER_PAGES


def _block_in_banked_regions(vm, state):
    """A memory block (sysfs memoryN) wholly inside banked regions of one zone, or None."""
    listing = vm.run("ls /sys/devices/system/memory | grep '^memory[0-9]' | sed s/memory//",
                     check=True).stdout.split()
    regions = state.reset_index()
    for n in sorted(int(x) for x in listing):
        lo, hi = n * BLOCK_PAGES, (n + 1) * BLOCK_PAGES
        inside = regions[(regions["start_pfn"] < hi) & (regions["end_pfn"] > lo)]
        if len(inside) and inside["banked"].all() and inside["start_pfn"].min() <= lo \
                and inside["end_pfn"].max() >= hi and inside[["node", "zone"]].drop_duplicates().shape[0] == 1:
            return n, inside
    return None


def test_offlining_a_block_of_a_banked_region(bank_vm):
    """Memory hot-remove takes a banked region back first; present follows offline and online."""
    regions, free_blocks = _snapshot(bank_vm)
    state = bank_state(regions, free_blocks).join(regions[["start_pfn", "end_pfn"]])
    found = _block_in_banked_regions(bank_vm, state)
    assert found, "no memory block lies wholly in banked regions"
    block, inside = found
    ids = [tuple(k) for k in inside[["node", "zone", "region"]].itertuples(index=False)]
    present = {k: int(state.loc[k, "present"]) for k in ids}
    before = _events(bank_vm)
    state_file = f"/sys/devices/system/memory/memory{block}/state"
    bank_vm.run(f"echo offline > {state_file}", check=True)
    try:
        assert bank_vm.run(f"cat {state_file}", check=True).stdout.strip() == "offline"
        assert _events(bank_vm)["region_bank_return"] > before["region_bank_return"]
        off = parse_mem_regions(bank_vm.run(f"cat {DEBUGFS}/regions", check=True).stdout)
        for k in ids:
            lo = max(int(off.loc[k, "start_pfn"]), block * BLOCK_PAGES)
            hi = min(int(off.loc[k, "end_pfn"]), (block + 1) * BLOCK_PAGES)
            assert off.loc[k, "present"] == present[k] - (hi - lo), k
            assert off.loc[k, "banked"] == 0, k
    finally:
        bank_vm.run(f"echo online > {state_file}", check=True)
    back = parse_mem_regions(bank_vm.run(f"cat {DEBUGFS}/regions", check=True).stdout)
    assert {k: int(back.loc[k, "present"]) for k in ids} == present


def test_region_pageblocks_add_up_to_pagetypeinfo(bank_vm):
    """Per zone the regions' pageblocks by type are pagetypeinfo's block counts; a banked region's are all movable."""
    out = bank_vm.run(f"echo drain > {CONTROL} && cat {DEBUGFS}/regions; echo @@; cat /proc/pagetypeinfo",
                      check=True).stdout
    regions_text, pagetypeinfo = out.split("@@\n")
    regions = parse_mem_regions(regions_text, "regions")
    blocks = parse_pagetypeinfo(pagetypeinfo, "pagetypeinfo").blocks["pageblocks"]
    columns = [c for c in regions.columns if c.startswith("pageblocks_")]
    sums = regions[columns].groupby(level=["node", "zone"]).sum()
    sums.columns = [c.removeprefix("pageblocks_") for c in columns]
    per_type = sums.stack()
    per_type.index.names = ["node", "zone", "migratetype"]
    assert per_type.reindex(blocks.index).tolist() == blocks.tolist()
    banked = regions[regions["banked"] != 0]
    assert len(banked)
    assert (banked["pageblocks_Movable"] * 512 == banked["present"]).all()
    assert (banked[[c for c in columns if c != "pageblocks_Movable"]] == 0).all().all()
    assert (regions["index"] == regions["start_pfn"] // (regions["end_pfn"] - regions["start_pfn"]).max()).all()
