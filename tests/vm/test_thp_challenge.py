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
from harness.vm.tracing import record

from scenarios import vmstat
from variants import REGIONS

pytestmark = pytest.mark.spot

#: the writers need time in proportion to memory to outgrow it (about 30 MiB/s under TCG):
#: 20 s on 2 GiB guests, 96 s on interleaved's 8 GiB
SECONDS_PER_GIB = 12
EVENT = "kmem/mm_page_alloc_extfrag"
COUNTERS = ("thp_fault_alloc", "thp_fault_fallback", "pgsteal_kswapd", "pgsteal_direct")


#: the histogram file every snapshot reads
HIST = next(e.guest_path for e in REGISTRY if "extfrag_events" in e.frames)


def _histogram(vm):
    return parse_extfrag_hist(vm.run(f"cat {HIST}", check=True).stdout, HIST).iloc[0]


def test_thp_challenge_faults_huge_pages_over_reclaimed_page_cache(rh_guest, rh_topology):
    vm = rh_guest(REGIONS, rh_topology)
    topo = topology.load(rh_topology)
    seconds = max(20, SECONDS_PER_GIB * topo.memory_bytes >> 30)
    # a trace buffer of its own records every event of the tracepoint while the workload
    # runs: the histogram's counts must match it (a buffer that wrapped is an error)
    try:
        with record(vm, [EVENT], name="rh-extfrag") as rec:
            hist_before, before = _histogram(vm), vmstat(vm, COUNTERS)
            res = vm.run(workloads.get("thp-challenge").command(topo, seconds), timeout=seconds + 600)
        after, hist_after = vmstat(vm, COUNTERS), _histogram(vm)
    finally:
        vm.run("rm -rf /mnt/scratch/node*; echo 3 > /proc/sys/vm/drop_caches")
    assert res.status == 0, res.stderr[-2000:]

    faults = sum(int(n) for n in re.findall(r"thpchallenge fault .* faults=(\d+) ", res.stdout))
    written = sum(int(n) for n in re.findall(r"thpchallenge write .* written_mib=(\d+)", res.stdout))
    nodes = sum(1 for n in topo.nodes if n.memory_bytes)
    assert len(re.findall(r"thpchallenge (?:write|fault) ", res.stdout)) == 2 * nodes, res.stdout
    delta = {k: after[k] - before[k] for k in COUNTERS}
    # each 2 MiB touch is one THP fault: a huge page or a counted fallback
    assert faults > 0 and delta["thp_fault_alloc"] + delta["thp_fault_fallback"] >= faults, (faults, delta)
    # the page cache did not fit: the kernel reclaimed it while the writers ran
    assert written << 20 > topo.memory_bytes // 4, f"the writers wrote only {written} MiB in {seconds} s"
    assert delta["pgsteal_kswapd"] + delta["pgsteal_direct"] > 0, delta

    traced = rec.events["fallback_order"].tolist() if len(rec.events) else []
    counted = hist_after.drop("total") - hist_before.drop("total")
    by_order = {int(c.removeprefix("order")): int(n) for c, n in counted.items() if n}
    assert by_order == {o: traced.count(o) for o in set(traced)}
    assert int(hist_after["total"] - hist_before["total"]) == len(traced)
