"""Shared helpers of the VM tests: snapshots and model inputs of a booted guest."""

import os

import pytest

from harness import topology
from harness.metrics import parse_model_inputs, parse_snapshot
from harness.model.inputs import declared_nodes
from harness.variant import Variant
from harness.vm.snapshots import take_snapshot

#: topologies of the spot checks (RH_SPOT_TOPOLOGIES, comma-separated, or "all"): tests
#: marked `spot` (the debug kernel's bank scenarios and stress, the policies-off kernel)
#: run in CI on the three topologies whose layouts differ most (nodes of two ranges, four
#: nodes on four CPUs, a memoryless node) and in the nightly job on every topology; pytest
#: reports the others as deselected. The layout, region and bank tests of the regions
#: kernel run on every topology either way.
SPOT_TOPOLOGIES = os.environ.get("RH_SPOT_TOPOLOGIES", "interleaved,four-node,memoryless")


def pytest_configure(config):
    config.addinivalue_line("markers", "spot: a spot check, run only on RH_SPOT_TOPOLOGIES (conftest.py)")


def _spot_elsewhere(item) -> bool:
    if SPOT_TOPOLOGIES == "all" or item.get_closest_marker("spot") is None:
        return False
    topo = item.callspec.params.get("rh_topology") if hasattr(item, "callspec") else None
    return topo is not None and topo not in SPOT_TOPOLOGIES.split(",")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/vm/" in str(item.fspath):
            item.add_marker(pytest.mark.vm)
    deselected = [item for item in items if _spot_elsewhere(item)]
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
