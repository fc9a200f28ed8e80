"""Stress on every topology under the debug flavor: no kernel report, region counts still exact.

RH_STRESS_SECONDS sets the duration per topology (CI: 60 s; the nightly job: 300 s).
"""

import os

import pytest

from harness import checks, topology, workloads

from variants import DEBUG

SECONDS = int(os.environ.get("RH_STRESS_SECONDS", "60"))


@pytest.mark.slow
def test_debug_kernel_survives_stress(rh_guest, rh_topology, guest_facts):
    vm = rh_guest(DEBUG, rh_topology)
    cmd = workloads.get("stress-pagecache").command(topology.load(rh_topology), SECONDS)
    res = vm.run(cmd, timeout=SECONDS + 900)
    assert res.status == 0, res.stderr[-2000:]
    # WARNING, BUG, lockdep, KASAN, hung task: vm.run already checked; once more after settling
    vm.check_console(settle=3.0)
    frames, inputs, declared = guest_facts(vm, DEBUG, rh_topology)
    table = checks.check_capture(frames, inputs, declared)
    assert not checks.failed(table), "\n" + checks.render(table, only_failures=True)
