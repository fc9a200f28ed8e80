"""Compaction leaves drained regions alone (kernel-patches 0010, mem_region_fill=1).

The scenario of scenarios.py puts a small file into a fresh region of the top zone's highest
free run and then frees the hold: that region is drained (at most the threshold of pages in
use), and evacuation, off in these guests, leaves it so. Full compaction
(/proc/sys/vm/compact_memory) then runs on every zone, with the tracepoint
compaction:mm_compaction_isolate_freepages on: each event names the pfn range where the
free scanner took pages as migration targets. None of them may lie in a region that was
drained (banked, or at most the threshold in use) when compaction started.

Before the file, one-page files fill the node's lowest free memory, and every other one is
removed: sparse movable pages below the file's region for compaction to migrate, more than
the free pages of the regions above the file's one (the top of a node holds boot-time
reservations) can take. Written first, their inodes and dentries do not take slab pages in
the file's region (written after it, they once pushed it to 438 pages in use, CI on
four-node).

The guests boot with the lower-region bias, so that the guest's own small allocations split
blocks of the lowest regions instead of taking exact fits next to the file, and a threshold
of 256 pages (the file's region holds the writer's other pages too). The control,
mem_region_fill=0, shows that the test can fail: compaction's free scanner then takes
targets in the drained region (in 38 of 38 runs over the seven topologies, BENCHMARKS.md). It
doubles the test's guests, so it runs in the nightly job (RH_FILL_VARIANTS="fill,nofill");
CI runs "fill".
"""

import os
import re

import pytest

from harness.metrics import parse_zoneinfo

from scenarios import FILE, MNT, file_in_a_fresh_region, in_use, regions, target_zone, vmstat
from variants import FILL, NO_FILL

pytestmark = pytest.mark.spot

EVENT = "/sys/kernel/debug/tracing/events/compaction/mm_compaction_isolate_freepages"
TRACE = "/sys/kernel/debug/tracing/trace"
COMPACTION = ("compact_isolated", "pgmigrate_success")
#: one-page files written, half of them removed: half a region's worth of sparse sources
HOLES = 2000
#: "range=(0x1f000 ~ 0x1f200) nr_scanned=512 nr_taken=3"
TAKEN = re.compile(r"mm_compaction_isolate_freepages: range=\((0x[0-9a-f]+) ~ 0x[0-9a-f]+\) "
                   r"nr_scanned=\d+ nr_taken=(\d+)")


def _compact_traced(vm):
    """Run full compaction with the free scanner's tracepoint on; [(pfn, pages taken)]."""
    vm.run(f"echo 0 > {EVENT}/enable; echo > {TRACE}; echo 'nr_taken > 0' > {EVENT}/filter; "
           f"echo 1 > {EVENT}/enable", check=True)
    try:
        vm.run("echo 1 > /proc/sys/vm/compact_memory", check=True, timeout=600)
    finally:
        vm.run(f"echo 0 > {EVENT}/enable", check=True)
    trace = vm.run(f"cat {TRACE}", check=True).stdout
    return [(int(pfn, 16), int(n)) for pfn, n in TAKEN.findall(trace)]


def _pages_by_region(taken, frame):
    """{(node, zone, region): pages} of the (pfn, pages) compaction took, over a regions frame."""
    out = {}
    for pfn, n in taken:
        for key in frame[(frame["start_pfn"] <= pfn) & (pfn < frame["end_pfn"])].index:
            out[key] = out.get(key, 0) + n
    return out


def _pcp_frontier(frame, zoneinfo_text):
    """The regions whose free pages the per-cpu lists may hold while compaction runs.

    A page on a per-cpu list is in use to its region (the kernel's drained test counts
    free pages in the buddy lists), and lists refill from the lowest free blocks: per zone,
    the lowest regions holding free pages, up to the sum of the CPUs' list limits ("high"),
    can be over the threshold to the kernel while drained to a drained snapshot. In CI the
    lowest free region of memoryless took 481 targets so.
    """
    pagesets = parse_zoneinfo(zoneinfo_text, "zoneinfo").pagesets
    room = pagesets.groupby(level=["node", "zone"])["high"].sum().to_dict()
    out = set()
    for (node, zone), z in frame.groupby(level=["node", "zone"]):
        left = room.get((node, zone), 0)
        for key, free in z["free"].items():
            if left <= 0:
                break
            if free > 0:
                out.add(key)
                left -= free
    return out


VARIANTS = {"fill": FILL, "nofill": NO_FILL}
CHOSEN = [v for v in os.environ.get("RH_FILL_VARIANTS", "fill").split(",") if v]


@pytest.mark.parametrize("variant", [VARIANTS[v] for v in CHOSEN], ids=CHOSEN)
def test_compaction_takes_no_target_in_a_drained_region(rh_guest, rh_topology, variant):
    vm = rh_guest(variant, rh_topology)
    config = vm.run("cat /sys/kernel/debug/mem_regions/config", check=True).stdout
    fill = variant == FILL
    assert f"fill {int(fill)}" in config and "evacuate 0" in config, config
    threshold = int(re.search(r"evacuate_pages (\d+)", config).group(1))
    node, _ = target_zone(regions(vm))
    try:
        # sources for compaction, written before the file so that their slab (inodes, dentries)
        # lies below it too: one-page files in the node's lowest free memory, every other one
        # removed, so compaction wants more targets than the regions above the file's one
        # offer (shell builtins only: no process exits in between)
        vm.run(f"mkdir -p {MNT} && (grep -q ' {MNT} ' /proc/mounts || mount -t tmpfs none {MNT}) && "
               f"numactl --membind={node} sh -c 'for i in $(seq {HOLES}); do printf x > {MNT}/h$i; done' "
               f"&& rm -f {MNT}/h*[02468]", check=True, timeout=600)
        with file_in_a_fresh_region(vm, node) as placed:
            zone, fresh = placed.zone, placed.fresh
        before = regions(vm)
        z = before.xs((node, zone), level=("node", "zone"))
        assert any(in_use(z)[r] <= threshold for r in fresh), \
            f"the file's regions {fresh} are not drained: in use {in_use(z)[fresh].tolist()}"
        frontier = _pcp_frontier(before, vm.run("cat /proc/zoneinfo", check=True).stdout)
        start = vmstat(vm, COMPACTION)
        taken = _compact_traced(vm)
        moved = {k: v - start[k] for k, v in vmstat(vm, COMPACTION).items()}
        after = regions(vm)
    finally:
        vm.run(f"rm -f {FILE} {MNT}/h*", check=True)
    # compaction did migrate pages, or the test shows nothing
    assert moved["compact_isolated"] > 0 and moved["pgmigrate_success"] > 0 and taken, (moved, taken)
    live = before[before["present"] > 0]
    where = _pages_by_region(taken, live)
    drained = live[(live["banked"] > 0) | (in_use(live) <= threshold)].index.difference(list(frontier))
    # a region the guest's own allocations pushed over the threshold while compaction ran
    # stopped being drained then, and compaction may take targets there: in use after,
    # less what compaction put there, tells
    still = in_use(after)
    in_drained = {key: n for key, n in where.items() if key in drained and still[key] - n <= threshold}
    if fill:
        assert not in_drained, f"compaction took targets in drained regions (region: pages) {in_drained}; {moved}"
    else:
        assert in_drained, (f"with mem_region_fill=0 compaction took no target in a drained region; {moved}; "
                            f"the file's regions {fresh} of node {node} {zone}; targets (region: pages) {where}")
    vm.check_console()
