"""Shared helpers of the VM tests: snapshots and model inputs of a booted guest."""

import pytest

from harness import topology
from harness.metrics import parse_model_inputs, parse_snapshot
from harness.model.inputs import declared_nodes
from harness.variant import Variant
from harness.vm.snapshots import take_snapshot


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/vm/" in str(item.fspath):
            item.add_marker(pytest.mark.vm)


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
