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
import re

import pytest

from harness.metrics import parse_mem_regions
from harness.metrics.region_alloc_test import CONTROL

from variants import DEBUG_EVACUATE, EVACUATE, EVACUATE_PAGES

REGIONS = "/sys/kernel/debug/mem_regions/regions"
#: the file the process writes: well under the evacuation threshold
FILE_PAGES = 16
MNT = "/mnt/evac"
FILE = f"{MNT}/f"
ZONE_ORDER = ["DMA", "DMA32", "Normal", "Movable"]

pytestmark = pytest.mark.spot


def _regions(vm):
    out = vm.run(f"echo drain > {CONTROL} && cat {REGIONS}", check=True).stdout
    return parse_mem_regions(out, "regions")


def _events(vm):
    out = vm.run("grep ^region_ /proc/vmstat", check=True).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


def _target_zone(regions):
    """(node, zone): the highest zone of a node, the one its user allocations take first,
    with the most banked regions among the nodes."""
    best = None
    for node, frame in regions.groupby(level="node"):
        zones = sorted(set(frame.index.get_level_values("zone")), key=ZONE_ORDER.index)
        zone = zones[-1]
        z = frame.xs(zone, level="zone")
        banked = int(z["banked"].sum())
        if best is None or banked > best[2]:
            best = (int(node), zone, banked)
    assert best and best[2] >= 2, f"no node's top zone has 2 banked regions:\n{regions}"
    return best[0], best[1]


def _free_run(z):
    """(first, last) region of the zone's highest run of wholly free regions, at least 2 long."""
    whole = ((z["free"] == z["present"]) & (z["present"] > 0)).tolist()
    last = len(whole) - 1
    while last >= 0:
        if whole[last]:
            first = last
            while first > 0 and whole[first - 1]:
                first -= 1
            if last - first >= 1:
                return first, last
            last = first
        last -= 1
    raise AssertionError(f"no two adjacent wholly free regions:\n{z}")


def _hold_around_then_write(node, windows):
    """One guest command: hold every free movable block in each [low, high) window through
    the test interface, largest first, each request after draining the per-cpu lists (a
    parked page outside the free run would take the writer's first allocation); then
    write the file and print its digest. One command, so that no process of the test
    exits in between and frees pages outside the run."""
    holds = "; ".join(
        f"for o in 10 9 8 7 6 5 4 3 2 1 0; do n=0; "
        f"while echo 'alloc nid={node} order='$o' count=1 mt=movable low_pfn={low} high_pfn={high}' "
        f"> {CONTROL} 2>/dev/null; do n=$((n+1)); done; echo held order $o: $n; done"
        for low, high in windows)
    return (f"{holds}; numactl --membind={node} dd if=/dev/urandom of={FILE} bs=4096 count={FILE_PAGES} "
            f"2>/dev/null && md5sum {FILE}")


VARIANTS = {"regions": EVACUATE, "debug": DEBUG_EVACUATE}
FLAVORS = [f for f in os.environ.get("RH_EVACUATE_FLAVORS", "debug").split(",") if f]


@pytest.mark.parametrize("variant", [VARIANTS[f] for f in FLAVORS], ids=FLAVORS)
def test_a_sparse_fresh_region_is_evacuated_and_banked(rh_guest, rh_topology, variant):
    vm = rh_guest(variant, rh_topology)
    assert "evacuate 1" in vm.run("cat /sys/kernel/debug/mem_regions/config", check=True).stdout
    before = _regions(vm)
    node, zone = _target_zone(before)
    z = before.xs((node, zone), level=("node", "zone"))
    # the run's lowest region is held too: once freed it is room below for the evacuation
    held_free, last = _free_run(z)
    first = held_free + 1
    run_start, run_end = int(z.loc[first, "start_pfn"]), int(z.loc[last, "end_pfn"])
    windows = [(lo, hi) for lo, hi in ((int(z["start_pfn"].iloc[0]), run_start),
                                       (run_end, int(z["end_pfn"].iloc[-1]))) if lo < hi]
    vm.run(f"mkdir -p {MNT} && (grep -q ' {MNT} ' /proc/mounts || mount -t tmpfs none {MNT})", check=True)
    start = _events(vm)
    try:
        # the allocation half: the writer's pages can only come from a fresh region of the run
        out = vm.run(_hold_around_then_write(node, windows), check=True, timeout=900).stdout
        held = sum(int(n) for n in re.findall(r"held order \d+: (\d+)", out))
        assert held > 0, out
        digest = out.split()[-2]
        used = _regions(vm).xs((node, zone), level=("node", "zone"))
        fresh = [r for r in range(first, last + 1)
                 if z.loc[r, "free"] == z.loc[r, "present"] > used.loc[r, "free"]]
        assert fresh, f"the writer's pages went to no region of the free run {first}-{last}:\n{used}"
        # evacuable: few pages in use, and no pageblock an unmovable allocation claimed (with
        # every movable block held, the guest's own unmovable allocations may take one there)
        sparse = [r for r in fresh if used.loc[r, "present"] - used.loc[r, "free"] <= EVACUATE_PAGES
                  and used.loc[r, "pageblocks_Unmovable"] + used.loc[r, "pageblocks_Reclaimable"] == 0]
        assert sparse, f"no fresh region is sparse and all movable:\n{used.loc[fresh]}"
        in_use = int(sum(used.loc[r, "present"] - used.loc[r, "free"] for r in sparse))
        events = _events(vm)
    finally:
        # the free half of the handshake
        vm.run(f"echo free > {CONTROL}", check=True)
    # kcompactd polls every 500 ms; an attempt made before the free found no room below
    # and backs the region off for 2 s, then 4: give it those periods
    success = events["region_evac_success"]
    vm.run(f"for i in $(seq 60); do [ $(grep '^region_evac_success ' /proc/vmstat | cut -d' ' -f2) -gt {success} ] "
           f"&& break; sleep 0.25; done", check=True, timeout=120)
    vm.run("sleep 1")
    after = _events(vm)
    regions = _regions(vm).xs((node, zone), level=("node", "zone"))
    delta = {k: after[k] - events.get(k, 0) for k in after}

    for r in sparse:
        row = regions.loc[r]
        assert row["free"] == row["present"], \
            f"region {r} still has {row['present'] - row['free']} pages in use: {row.to_dict()}\n{delta}"
        assert row["evac_attempts"] >= 1 and row["evac_errno"] == 0, row.to_dict()
    # at most one wholly free region stays in the buddy lists as the cache: the rest are banked
    assert sum(int(regions.loc[r, "banked"]) for r in sparse) >= len(sparse) - 1, regions.loc[sparse]
    assert delta["region_evac_success"] >= len(sparse), delta
    assert delta["region_evac_pages_failed"] == 0, delta
    # no attempt after the free moves more than the threshold; over the whole test (an
    # attempt before the free may have moved a few pages before it found no room) the
    # writer's file moved out of the fresh regions, which now are wholly free
    assert delta["region_evac_pages_migrated"] <= EVACUATE_PAGES * delta["region_evac_success"], delta
    moved = after["region_evac_pages_migrated"] - start["region_evac_pages_migrated"]
    assert moved >= FILE_PAGES or set(sparse) != set(fresh), (moved, in_use)
    # every region kcompactd took up ended one way (kcompactd is idle by now)
    outcomes = sum(after[f"region_evac_{k}"] for k in ("skipped", "success", "fail", "busy", "abort"))
    assert outcomes == after["region_evac_queued"], after
    assert vm.run(f"md5sum {FILE}", check=True).stdout.split()[0] == digest
    vm.run(f"rm -f {FILE}", check=True)
    vm.check_console()
