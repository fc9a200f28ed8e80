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
of 256 pages (the file's region holds the writer's other pages too). While full compaction
scanned its free pages from the zone's end down, mem_region_fill=0 showed that the test can
fail: the free scanner then took targets in the drained region, in 38 of 38 runs over the
seven topologies (BENCHMARKS.md). Full compaction now fills from the bottom (below), and
its free scanner passes a drained region outside the per-cpu frontier (_pcp_frontier,
left out of the check) only where the scanners meet above one: with mem_region_fill=0 the
old control found no target in a drained region on interleaved (1 run of 1: the scanners
met above the file's region) and, counting the frontier, on four-node and memoryless. This
test therefore has no control of its own any more; the second one has, on every topology.

Full compaction is compaction of a whole zone for no order, and while regions are on it runs
its scanners the other way round (0010): the migration scanner from the zone's end down,
the free scanner from its start up. The second test writes a file over the threshold
into a fresh high region (so that its region is not drained and the free scanner may use
it) above the same sparse one-page files, and traces both scanners: in every zone every
target lies below every source, and the file reads back intact. Under mem_region_fill=0
some target lies above a source: the control, which doubles the test's guests, so it runs
in the nightly job (RH_FILL_VARIANTS="fill,nofill"); CI runs "fill". Where the scanners
meet depends on the whole guest's memory, so the test does not ask which regions empty:
the consolidation experiment measures that (BENCHMARKS.md).
"""

import os
import re

import pytest

from harness.metrics import parse_zoneinfo

from scenarios import FILE, MNT, file_in_a_fresh_region, in_use, regions, target_zone, vmstat
from variants import FILL, NO_FILL

pytestmark = pytest.mark.spot

EVENTS = "/sys/kernel/debug/tracing/events/compaction/mm_compaction_isolate_"
TRACE = "/sys/kernel/debug/tracing/trace"
COMPACTION = ("compact_isolated", "pgmigrate_success")
#: one-page files written, half of them removed: half a region's worth of sparse sources
HOLES = 2000
#: the second test's file: over FILL's threshold of 256 pages in use, so not drained
BIG_FILE = 1024
#: "mm_compaction_isolate_freepages: range=(0x1f000 ~ 0x1f200) nr_scanned=512 nr_taken=3"
TAKEN = re.compile(r"mm_compaction_isolate_(freepages|migratepages): range=\((0x[0-9a-f]+) ~ 0x[0-9a-f]+\) "
                   r"nr_scanned=\d+ nr_taken=(\d+)")


def _compact_traced(vm, scanners=("freepages",)):
    """Run full compaction with the scanners' tracepoints on (freepages: the free scanner,
    migratepages: the migration scanner); {scanner: [(pfn, pages taken)]}."""
    events = [EVENTS + s for s in scanners]
    off = "; ".join(f"echo 0 > {e}/enable" for e in events)
    on = "; ".join(f"echo 'nr_taken > 0' > {e}/filter; echo 1 > {e}/enable" for e in events)
    vm.run(f"{off}; echo > {TRACE}; {on}", check=True)
    try:
        vm.run("echo 1 > /proc/sys/vm/compact_memory", check=True, timeout=600)
    finally:
        vm.run(off, check=True)
    out = {s: [] for s in scanners}
    for scanner, pfn, n in TAKEN.findall(vm.run(f"cat {TRACE}", check=True).stdout):
        out[scanner].append((int(pfn, 16), int(n)))
    return out


def _write_holes(vm, node):
    """Sources for compaction, written before the test's file so that their slab (inodes,
    dentries) lies below it too: one-page files in the node's lowest free memory, every
    other one removed (shell builtins only: no process exits in between)."""
    vm.run(f"mkdir -p {MNT} && (grep -q ' {MNT} ' /proc/mounts || mount -t tmpfs none {MNT}) && "
           f"numactl --membind={node} sh -c 'for i in $(seq {HOLES}); do printf x > {MNT}/h$i; done' "
           f"&& rm -f {MNT}/h*[02468]", check=True, timeout=600)


def _regions_holding(frame, pfn):
    """The (node, zone, region) keys of a regions frame whose range holds pfn."""
    return frame[(frame["start_pfn"] <= pfn) & (pfn < frame["end_pfn"])].index


def _pages_by_region(taken, frame):
    """{(node, zone, region): pages} of the (pfn, pages) compaction took, over a regions frame."""
    out = {}
    for pfn, n in taken:
        for key in _regions_holding(frame, pfn):
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


def test_compaction_takes_no_target_in_a_drained_region(rh_guest, rh_topology):
    vm = rh_guest(FILL, rh_topology)
    config = vm.run("cat /sys/kernel/debug/mem_regions/config", check=True).stdout
    assert "fill 1" in config and "evacuate 0" in config, config
    threshold = int(re.search(r"evacuate_pages (\d+)", config).group(1))
    node, _ = target_zone(regions(vm))
    try:
        # more sources than the regions above the file's one offer targets
        _write_holes(vm, node)
        with file_in_a_fresh_region(vm, node) as placed:
            zone, fresh = placed.zone, placed.fresh
        before = regions(vm)
        z = before.xs((node, zone), level=("node", "zone"))
        assert any(in_use(z)[r] <= threshold for r in fresh), \
            f"the file's regions {fresh} are not drained: in use {in_use(z)[fresh].tolist()}"
        frontier = _pcp_frontier(before, vm.run("cat /proc/zoneinfo", check=True).stdout)
        start = vmstat(vm, COMPACTION)
        taken = _compact_traced(vm)["freepages"]
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
    assert not in_drained, f"compaction took targets in drained regions (region: pages) {in_drained}; {moved}"
    vm.check_console()


def _by_zone(taken, frame):
    """{(node, zone): (lowest pfn, highest pfn)} of the (pfn, pages) ranges a scanner took,
    over a regions frame; ranges outside every region are left out."""
    out = {}
    for pfn, _ in taken:
        for node, zone, _ in _regions_holding(frame, pfn):
            low, high = out.get((node, zone), (pfn, pfn))
            out[(node, zone)] = (min(low, pfn), max(high, pfn))
    return out


@pytest.mark.parametrize("variant", [VARIANTS[v] for v in CHOSEN], ids=CHOSEN)
def test_whole_zone_compaction_fills_from_the_bottom(rh_guest, rh_topology, variant):
    vm = rh_guest(variant, rh_topology)
    fill = variant == FILL
    node, _ = target_zone(regions(vm))
    try:
        _write_holes(vm, node)
        with file_in_a_fresh_region(vm, node, pages=BIG_FILE) as placed:
            pass
        before = regions(vm)
        start = vmstat(vm, COMPACTION)
        traced = _compact_traced(vm, ("freepages", "migratepages"))
        moved = {k: v - start[k] for k, v in vmstat(vm, COMPACTION).items()}
        digest = vm.run(f"md5sum {FILE}", check=True).stdout.split()[0]
    finally:
        vm.run(f"rm -f {FILE} {MNT}/h*", check=True)
    assert digest == placed.digest, "the file changed in compaction"
    assert moved["pgmigrate_success"] > 0, moved
    live = before[before["present"] > 0]
    targets, sources = _by_zone(traced["freepages"], live), _by_zone(traced["migratepages"], live)
    both = sorted(set(targets) & set(sources))
    assert both, f"no zone where compaction both took targets and isolated sources: {moved}"
    # (node, zone): (highest target pfn, lowest source pfn), where a target lies above a source
    crossed = {k: (hex(targets[k][1]), hex(sources[k][0])) for k in both if targets[k][1] >= sources[k][0]}
    if fill:
        assert not crossed, f"targets above sources in {crossed} (zones compacted: {both}); {moved}"
    else:
        assert crossed, f"with mem_region_fill=0 every target lay below every source in {both}; {moved}"
    vm.check_console()
