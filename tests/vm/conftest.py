"""Shared helpers of the VM tests: snapshots and model inputs of a booted guest."""

import os

import pytest

from harness import topology
from harness.metrics import parse_model_inputs, parse_snapshot
from harness.model.inputs import declared_nodes
from harness.variant import Variant
from harness.vm.snapshots import take_snapshot

#: topologies the debug kernel boots on (RH_DEBUG_TOPOLOGIES, comma-separated, or "all"):
#: the CI takes the three whose layouts differ most (nodes of two ranges, four nodes on four
#: CPUs, a memoryless node); the nightly job takes every topology. Tests marked debug_kernel
#: (the bank scenarios on the debug flavor, the stress) are deselected elsewhere, and pytest
#: reports them as deselected.
DEBUG_TOPOLOGIES = os.environ.get("RH_DEBUG_TOPOLOGIES", "interleaved,four-node,memoryless")


def pytest_configure(config):
    config.addinivalue_line("markers", "debug_kernel: boots the debug flavor (only on RH_DEBUG_TOPOLOGIES)")


def _debug_elsewhere(item) -> bool:
    if DEBUG_TOPOLOGIES == "all" or item.get_closest_marker("debug_kernel") is None:
        return False
    topo = item.callspec.params.get("rh_topology") if hasattr(item, "callspec") else None
    return topo is not None and topo not in DEBUG_TOPOLOGIES.split(",")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/vm/" in str(item.fspath):
            item.add_marker(pytest.mark.vm)
    deselected = [item for item in items if _debug_elsewhere(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


@pytest.fixture
def guest_facts(rh_build):
    """facts(vm, flavor, topo_name) -> (frames of a fresh snapshot, model inputs, declared).

    declared is what the topology declares (a DeclaredNodes), for checks.check_capture.
    """
    def facts(vm, flavor, topo_name):
        dmesg = vm.run("dmesg", check=True).stdout
        config = rh_build(Variant.parse(flavor).flavor).config_path.read_text()
        inputs = parse_model_inputs(dmesg, config, f"{vm.name}:dmesg")
        declared = declared_nodes(topology.load(topo_name))
        frames = parse_snapshot(take_snapshot(vm, "test").files)
        return frames, inputs, declared
    return facts
