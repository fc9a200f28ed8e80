"""Workloads that change the machine under the allocator, on the regions kernel.

`hotplug` offlines and onlines memory blocks in turn while the stress workload allocates
(kernel-patches 0006 keeps region present counts across it). The guest is its own, not
the shared one of the other VM tests: its blocks move, and the next test must not see it.
The debug kernel runs it on every topology in the nightly job (RH_STRESS_WORKLOADS).

A block can come back in another zone: on four-node, node 2's DMA32 zone starts at 1.5G,
and once its first block is offline the zone no longer spans it, so onlining it puts it
in the node's Normal zone, whose regions cover [4G, 5.5G). Such memory is untracked by
the regions (kernel-patches README), and the second test shows what that means.
"""

import re

import pandas as pd

from harness import checks, topology, workloads
from harness.metrics import parse_mem_regions, parse_zoneinfo
from harness.metrics.region_alloc_test import CONTROL
from harness.session import guest

from variants import DEBUG, REGIONS

SECONDS = 20
TOPOLOGY = "two-node"
#: x86_64 memory blocks are 128 MiB
BLOCK_PAGES = 32768
REGIONS_FILE = "/sys/kernel/debug/mem_regions/regions"


def _present(vm):
    zones = parse_zoneinfo(vm.run("cat /proc/zoneinfo", check=True).stdout, "zoneinfo").zones
    return zones["present"].to_dict()


def test_hotplug_cycles_blocks_and_the_regions_stay_exact(rh_build, guest_facts, tmp_path):
    topo = topology.load(TOPOLOGY)
    flavor, _, append = REGIONS.partition("+")
    with guest(rh_build(flavor).bzimage, topo, tmp_path / "vm", append=append, name="hotplug") as vm:
        before = _present(vm)
        res = vm.run(workloads.get("hotplug").command(topo, SECONDS), timeout=SECONDS + 300)
        assert res.status == 0, res.stderr[-2000:]
        m = re.search(r"hotplug: (\d+) offline-online cycles, (\d+) refused or given up", res.stdout)
        assert m, res.stdout[-2000:]
        assert int(m[1]) >= 1, m[0]
        vm.check_console(settle=2.0)
        # every block is back: the zones hold what they held, and the regions agree with the model
        assert _present(vm) == before
        frames, inputs, declared = guest_facts(vm, REGIONS, TOPOLOGY)
        table = checks.check_capture(frames, inputs, declared)
        assert not checks.failed(table), "\n" + checks.render(table, only_failures=True)


def _zones_and_regions(vm):
    out = vm.run(f"echo drain > {CONTROL} && cat /proc/zoneinfo; echo @@; cat {REGIONS_FILE}", check=True).stdout
    zoneinfo, regions = out.split("@@\n")
    zones = parse_zoneinfo(zoneinfo, "zoneinfo").zones
    summed = ["present", "managed"]
    return zones, parse_mem_regions(regions, "regions").groupby(level=["node", "zone"])[summed].sum()


def test_a_block_onlined_into_another_zone_is_untracked(rh_build, guest_facts, tmp_path):
    """four-node: node 2's first DMA32 block, offlined and onlined, comes back in Normal,
    outside Normal's regions. The zones count it, the regions do not, and the debug
    kernel's sorted-list checks hold while the node allocates from it."""
    topo = topology.load("four-node")
    flavor, _, append = DEBUG.partition("+")
    with guest(rh_build(flavor).bzimage, topo, tmp_path / "vm", append=append, name="hotplug-zone") as vm:
        zones, regions = _zones_and_regions(vm)
        dma32, normal = (2, "DMA32"), (2, "Normal")
        start = int(zones.loc[dma32, "start_pfn"])
        assert start % BLOCK_PAGES == 0 and zones.loc[normal, "start_pfn"] >= start + zones.loc[dma32, "spanned"]
        state = f"/sys/devices/system/memory/memory{start // BLOCK_PAGES}/state"
        vm.run(f"echo offline > {state} && echo online > {state}", check=True, timeout=120)
        now, now_regions = _zones_and_regions(vm)
        # the zones: the block left DMA32 and joined Normal, whose span now reaches down to it
        assert now.loc[dma32, "present"] == zones.loc[dma32, "present"] - BLOCK_PAGES
        assert now.loc[normal, "present"] == zones.loc[normal, "present"] + BLOCK_PAGES
        assert now.loc[normal, "start_pfn"] == start
        # the regions: DMA32's lost the block (0006), Normal's did not gain it (untracked);
        # managed pages alike (0008): the zones' follow the block, the regions' do not
        for field in ("present", "managed"):
            assert now_regions.loc[dma32, field] == regions.loc[dma32, field] - BLOCK_PAGES, field
            assert now_regions.loc[normal, field] == regions.loc[normal, field], field
        assert now.loc[normal, "managed"] == zones.loc[normal, "managed"] + BLOCK_PAGES
        # what the regions do not count is free memory of the zone all the same: at most the
        # block, give or take the per-cpu deltas zoneinfo's free count has not folded in yet.
        # zoneinfo's regions line sums the regions' free pages in the same read as its free
        # count (0002); the debugfs file, read apart, was 128-145 pages off it on four-node
        untracked = now.loc[normal, "pages_free"] - now.loc[normal, "regions_free"]
        slack = checks.unfolded_vmstat_bound(now)
        assert slack < untracked <= BLOCK_PAGES + slack, (untracked, slack)
        # the model follows the block (harness.model.hotplug): every check of a snapshot holds
        frames, inputs, declared = guest_facts(vm, DEBUG, "four-node")
        assert frames["memory_blocks"].loc[start // BLOCK_PAGES, "zone"] == "Normal"
        table = checks.check_capture(frames, inputs, declared)
        assert not checks.failed(table), "\n" + checks.render(table, only_failures=True)
        # allocations on the node take from both kinds of block; the sorted lists must stay sound
        res = vm.run(workloads.get("stress").command(topo, 10), timeout=300)
        assert res.status == 0, res.stderr[-2000:]
        vm.run("echo 1 > /proc/sys/vm/compact_memory", check=True, timeout=300)
        vm.check_console(settle=2.0)
        after = _zones_and_regions(vm)[1]
        pd.testing.assert_frame_equal(after[["present", "managed"]], now_regions[["present", "managed"]])
