"""Stress on every topology under the debug flavor: no kernel report, region counts still exact.

The guest has targeted evacuation on (variants.DEBUG_EVACUATE), so kcompactd isolates and
migrates regions while the workload runs; everything else of the series is on as well. Full
compaction runs after the workload.

RH_STRESS_SECONDS sets the duration per topology (CI: 20 s; the nightly job: 300 s),
RH_STRESS_WORKLOADS the workloads (CI: stress-pagecache; the nightly job adds
churn-pagecache-compact, the consolidation experiment's workload with full compaction
beside it, thp-challenge and hotplug: every kind of workload) and
RH_SPOT_TOPOLOGIES (conftest.py) the topologies (CI: three; the nightly job: all).
"""

import os

import pytest

from harness import checks, topology, workloads
from harness.metrics import parse_mem_free_blocks, parse_mem_regions
from harness.metrics.region_alloc_test import CONTROL

from variants import DEBUG_EVACUATE

SECONDS = int(os.environ.get("RH_STRESS_SECONDS", "20"))
WORKLOADS = [w for w in os.environ.get("RH_STRESS_WORKLOADS", "stress-pagecache").split(",") if w]


@pytest.mark.slow
@pytest.mark.spot
@pytest.mark.parametrize("workload", WORKLOADS)
def test_debug_kernel_survives_stress(rh_guest, rh_topology, guest_facts, workload):
    vm = rh_guest(DEBUG_EVACUATE, rh_topology)
    cmd = workloads.get(workload).command(topology.load(rh_topology), SECONDS)
    res = vm.run(cmd, timeout=SECONDS + 900)
    assert res.status == 0, res.stderr[-2000:]
    # then full compaction over what the workload left: its free scanner moves blocks between
    # the sorted lists (a same-type move once dereferenced NULL in part 1), under DEBUG_VM
    vm.run("echo 1 > /proc/sys/vm/compact_memory", check=True, timeout=600)
    # WARNING, BUG, lockdep, KASAN, hung task: vm.run already checked; once more after settling
    vm.check_console(settle=3.0)
    frames, inputs, declared = guest_facts(vm, DEBUG_EVACUATE, rh_topology)
    # after hotplug, blocks may be in other zones than at boot: the snapshot's memory blocks
    # tell the model where (harness.model.hotplug), and every zone is checked exactly
    table = checks.check_capture(frames, inputs, declared)
    assert not checks.failed(table), "\n" + checks.render(table, only_failures=True)
    # quiet again: after a drain the bank holds every wholly free region but the cache
    out = vm.run(f"echo drain > {CONTROL} && cat /sys/kernel/debug/mem_regions/regions; echo @@; "
                 "cat /sys/kernel/debug/mem_regions/free_blocks", check=True).stdout
    regions, free_blocks = out.split("@@\n")
    bank = checks.check_bank(parse_mem_regions(regions), parse_mem_free_blocks(free_blocks), bank_on=True)
    assert not checks.failed(bank), "\n" + checks.render(bank, only_failures=True)

