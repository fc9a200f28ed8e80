"""The thp-challenge workload on a real guest, and the extfrag counts every snapshot carries.

thp-challenge writes page cache over more than the guest's memory onto the scratch disk
the harness attaches to every guest, while THP faults run over most of each node. The test
shows that the workload does what it claims (every fault it makes is a THP fault the
kernel counts, the page cache outgrows free memory so reclaim runs) and that the guest's
fallback histogram (kmem/mm_page_alloc_extfrag by fallback order, set at boot by the
guest's init) counts exactly the events the same tracepoint records in a trace buffer.
"""

import re

import pytest

from harness import topology, workloads
from harness.metrics.registry import REGISTRY
from harness.metrics.tracehist import parse_extfrag_hist

from scenarios import vmstat
from variants import REGIONS

pytestmark = pytest.mark.spot

SECONDS = 20
INSTANCE = "/sys/kernel/tracing/instances/rh-extfrag"
EVENT = f"{INSTANCE}/events/kmem/mm_page_alloc_extfrag"
COUNTERS = ("thp_fault_alloc", "thp_fault_fallback", "pgsteal_kswapd", "pgsteal_direct")


#: the histogram file every snapshot reads
HIST = next(e.guest_path for e in REGISTRY if "extfrag_events" in e.frames)


def _histogram(vm):
    return parse_extfrag_hist(vm.run(f"cat {HIST}", check=True).stdout, HIST).iloc[0]


def test_thp_challenge_faults_huge_pages_over_reclaimed_page_cache(rh_guest, rh_topology):
    vm = rh_guest(REGIONS, rh_topology)
    topo = topology.load(rh_topology)
    # a trace buffer of its own records every event of the tracepoint while the workload
    # runs: the histogram's counts must match it
    vm.run(f"mkdir -p {INSTANCE} && echo 8192 > {INSTANCE}/buffer_size_kb && echo 1 > {EVENT}/enable", check=True)
    try:
        hist_before, before = _histogram(vm), vmstat(vm, COUNTERS)
        res = vm.run(workloads.get("thp-challenge").command(topo, SECONDS), timeout=SECONDS + 600)
        vm.run(f"echo 0 > {EVENT}/enable", check=True)
        after, hist_after = vmstat(vm, COUNTERS), _histogram(vm)
        trace = vm.run(f"cat {INSTANCE}/trace; echo @@; cat {INSTANCE}/per_cpu/cpu*/stats", check=True).stdout
    finally:
        vm.run(f"echo 0 > {EVENT}/enable; rmdir {INSTANCE}; rm -rf /mnt/scratch/node*; "
               "echo 3 > /proc/sys/vm/drop_caches")
    assert res.status == 0, res.stderr[-2000:]

    faults = sum(int(n) for n in re.findall(r"thpchallenge fault .* faults=(\d+) ", res.stdout))
    written = sum(int(n) for n in re.findall(r"thpchallenge write .* written_mib=(\d+)", res.stdout))
    nodes = sum(1 for n in topo.nodes if n.memory_bytes)
    assert len(re.findall(r"thpchallenge (?:write|fault) ", res.stdout)) == 2 * nodes, res.stdout
    delta = {k: after[k] - before[k] for k in COUNTERS}
    # each 2 MiB touch is one THP fault: a huge page or a counted fallback
    assert faults > 0 and delta["thp_fault_alloc"] + delta["thp_fault_fallback"] >= faults, (faults, delta)
    # the page cache did not fit: the kernel reclaimed it while the writers ran
    assert written << 20 > topo.memory_bytes // 4, f"the writers wrote only {written} MiB"
    assert delta["pgsteal_kswapd"] + delta["pgsteal_direct"] > 0, delta

    text, stats = trace.split("@@\n")
    overrun = sum(int(n) for n in re.findall(r"^overrun: (\d+)$", stats, re.M))
    assert overrun == 0, "the trace buffer overflowed: make it larger to compare"
    traced = [int(o) for o in re.findall(r"mm_page_alloc_extfrag: .* fallback_order=(\d+) ", text)]
    counted = hist_after.drop("total") - hist_before.drop("total")
    by_order = {int(c.removeprefix("order")): int(n) for c, n in counted.items() if n}
    assert by_order == {o: traced.count(o) for o in set(traced)}
    assert int(hist_after["total"] - hist_before["total"]) == len(traced)
