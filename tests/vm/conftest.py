"""Shared helpers of the VM tests: snapshots and model inputs of a booted guest."""

import pytest

from harness import checks, topology
from harness.metrics import parse_snapshot
from harness.metrics.collect import take_snapshot


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/vm/" in str(item.fspath):
            item.add_marker(pytest.mark.vm)


@pytest.fixture
def guest_facts(rh_build):
    """facts(vm, flavor, topo_name) -> (frames of a fresh snapshot, model inputs, declared).

    declared is (node ranges, memoryless nodes) of the topology, for checks.check_capture.
    """
    def facts(vm, flavor, topo_name):
        dmesg = vm.run("dmesg", check=True).stdout
        config = rh_build(flavor.split("+")[0]).config_path.read_text()
        inputs = checks.model_inputs(dmesg, config, f"{vm.name}:dmesg")
        topo = topology.load(topo_name)
        declared = ({n.id: list(n.ranges) for n in topo.nodes if n.ranges},
                    [n.id for n in topo.nodes if not n.ranges])
        frames = parse_snapshot(take_snapshot(vm, "test").files)
        return frames, inputs, declared
    return facts
