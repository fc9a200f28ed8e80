"""Workloads that change the machine under the allocator, on the regions kernel.

`hotplug` offlines and onlines memory blocks in turn while the stress workload allocates
(kernel-patches 0006 keeps region present counts across it). The guest is its own, not
the shared one of the other VM tests: its blocks move, and the next test must not see it.
The debug kernel runs it on every topology in the nightly job (RH_STRESS_WORKLOADS).
"""

import re

from harness import checks, topology, workloads
from harness.metrics import parse_zoneinfo
from harness.session import guest

from variants import REGIONS

SECONDS = 20
TOPOLOGY = "two-node"


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
