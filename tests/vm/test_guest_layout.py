"""Every shipped topology boots, and the guest reports exactly the declared NUMA layout."""

import dataclasses

import pytest

from harness import checks, topology
from harness.metrics import parse_numa_layout
from harness.model.inputs import declared_nodes
from harness.session import guest

from variants import REGIONS

FLAVORS = ["vanilla", REGIONS]


@pytest.mark.parametrize("flavor", FLAVORS)
def test_guest_sees_declared_nodes(rh_guest, rh_topology, flavor):
    topo = topology.load(rh_topology)
    vm = rh_guest(flavor, rh_topology)
    out = vm.run("for n in /sys/devices/system/node/node[0-9]*; do "
                 "echo ${n##*node} $(cat $n/cpulist); done", check=True).stdout
    cpulists = {int(f[0]): (f[1] if len(f) > 1 else "") for f in (ln.split() for ln in out.splitlines())}
    expected = {n.id: topology.format_cpus(n.cpus) for n in topo.nodes}
    # a node with neither CPUs nor memory is never onlined; ours all have one or the other
    assert cpulists == expected

    layout = parse_numa_layout(vm.run("dmesg", check=True).stdout, f"{vm.name}:dmesg")
    seen = sorted((int(r.node), int(r.start), int(r.end)) for r in layout.srat_memory.itertuples())
    declared = sorted((n.id, s, e) for n in topo.nodes for s, e in n.ranges)
    assert seen == declared


@pytest.mark.parametrize("flavor", FLAVORS)
def test_layout_matches_model_exactly(rh_guest, rh_topology, guest_facts, flavor):
    vm = rh_guest(flavor, rh_topology)
    frames, inputs, declared = guest_facts(vm, flavor, rh_topology)
    table = checks.check_capture(frames, inputs, declared)
    layout_rows = table[table["check"] == "layout"]
    assert set(layout_rows["field"]) >= {"start_pfn", "spanned", "present"}
    assert not checks.failed(table), "\n" + checks.render(table, only_failures=True)


def test_shifted_srat_is_reported(rh_build, tmp_path, guest_facts):
    """The check can fail: boot with the node boundary moved by one 128 MiB section."""
    topo = topology.load("two-node")
    n0, n1 = topo.nodes
    shift = topology.SECTION_SIZE
    (s0, e0), = n0.ranges
    (s1, e1), = n1.ranges
    shifted = dataclasses.replace(topo, nodes=(
        dataclasses.replace(n0, ranges=((s0, e0 + shift),)),
        dataclasses.replace(n1, ranges=((s1 + shift, e1),))))
    build = rh_build("vanilla")
    with guest(build.bzimage, shifted, tmp_path / "vm", name="shifted-two-node") as vm:
        frames, inputs, _ = guest_facts(vm, "vanilla", "two-node")
    table = checks.check_capture(frames, inputs, declared_nodes(topo))
    diffs = table[table["verdict"] != "ok"]
    assert set(diffs["field"]) >= {"spanned", "present"}, checks.render(table)
