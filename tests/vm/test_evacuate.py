"""Targeted region evacuation (kernel-patches 0009): the alloc/free handshake and kcompactd.

The scenario of issue 15: in a node's top zone the test interface holds every free movable
block outside the zone's highest run of wholly free regions (and the run's lowest region,
room for the evacuation later), so the next user allocations must take a fresh region of
that run (the allocation half of the handshake notes it). A process writes a small file
into tmpfs there: movable page cache in a high region. Freeing what the test interface held is the
free half; within a few kcompactd periods the fresh region must be wholly free again and
banked, its pages moved below, the file intact, and the counters must account for it.

The guest is its own (the evacuation switch is a boot parameter): the debug kernel's, whose
console watcher fails the test on any kernel report (the stress test shares that guest),
and in the nightly job also the regions kernel's (RH_EVACUATE_FLAVORS, default "debug";
nightly "regions,debug"); on the spot-check topologies in CI and on all of them nightly.
"""

import os

import pytest

from scenarios import FILE, FILE_PAGES, OUTCOMES, file_in_a_fresh_region, in_use, region_events, regions, settle
from variants import DEBUG_EVACUATE, EVACUATE, EVACUATE_PAGES

pytestmark = pytest.mark.spot

VARIANTS = {"regions": EVACUATE, "debug": DEBUG_EVACUATE}
FLAVORS = [f for f in os.environ.get("RH_EVACUATE_FLAVORS", "debug").split(",") if f]


def _evacuable(used, r):
    """Few pages in use, and no pageblock an unmovable allocation claimed (with every movable
    block held, the guest's own unmovable allocations may take one in the run)."""
    return (in_use(used)[r] <= EVACUATE_PAGES
            and used.loc[r, "pageblocks_Unmovable"] + used.loc[r, "pageblocks_Reclaimable"] == 0)


@pytest.mark.parametrize("variant", [VARIANTS[f] for f in FLAVORS], ids=FLAVORS)
def test_a_sparse_fresh_region_is_evacuated_and_banked(rh_guest, rh_topology, variant):
    vm = rh_guest(variant, rh_topology)
    assert "evacuate 1" in vm.run("cat /sys/kernel/debug/mem_regions/config", check=True).stdout
    settle(vm)   # a fresh guest's kcompactd may still be evacuating what boot left behind
    start = region_events(vm)
    # the allocation half: the writer's pages can only come from a fresh region of the run;
    # leaving the block frees the hold, the free half of the handshake
    with file_in_a_fresh_region(vm, usable=_evacuable) as placed:
        used = placed.held
        sparse = [r for r in placed.fresh if _evacuable(used, r)]
        pages = int(sum(in_use(used)[r] for r in sparse))
        events = region_events(vm)
        node, zone, digest, fresh = placed.node, placed.zone, placed.digest, placed.fresh
    # kcompactd polls every 500 ms; an attempt made before the free found no room below
    # and backs the region off for 2 s, then 4: give it those periods
    success = events["region_evac_success"]
    vm.run(f"for i in $(seq 60); do [ $(grep '^region_evac_success ' /proc/vmstat | cut -d' ' -f2) -gt {success} ] "
           f"&& break; sleep 0.25; done", check=True, timeout=120)
    vm.run("sleep 1")
    after = region_events(vm)
    now = regions(vm).xs((node, zone), level=("node", "zone"))
    delta = {k: after[k] - events.get(k, 0) for k in after}
    placing = {k: v - start[k] for k, v in events.items() if v != start[k]}

    for r in sparse:
        row = now.loc[r]
        assert row["free"] == row["present"], \
            f"region {r} still has {row['present'] - row['free']} pages in use: {row.to_dict()}\n" \
            f"after the free {delta}\nwhile placing {placing}"
        assert row["evac_attempts"] >= 1 and row["evac_errno"] == 0, row.to_dict()
    # at most one wholly free region stays in the buddy lists as the cache: the rest are banked
    assert sum(int(now.loc[r, "banked"]) for r in sparse) >= len(sparse) - 1, now.loc[sparse]
    assert delta["region_evac_success"] >= len(sparse), delta
    assert delta["region_evac_pages_failed"] == 0, delta
    # no attempt after the free moves more than the threshold; over the whole test (an
    # attempt before the free may have moved a few pages before it found no room) the
    # writer's file moved out of the fresh regions, which now are wholly free
    assert delta["region_evac_pages_migrated"] <= EVACUATE_PAGES * delta["region_evac_success"], delta
    moved = after["region_evac_pages_migrated"] - start["region_evac_pages_migrated"]
    assert moved >= FILE_PAGES or set(sparse) != set(fresh), (moved, pages)
    # every region kcompactd took up ended one way (kcompactd is idle by now)
    outcomes = sum(after[f"region_evac_{k}"] for k in OUTCOMES)
    assert outcomes == after["region_evac_queued"], after
    assert vm.run(f"md5sum {FILE}", check=True).stdout.split()[0] == digest
    vm.run(f"rm -f {FILE}", check=True)
    vm.check_console()
