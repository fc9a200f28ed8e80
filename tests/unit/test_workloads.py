"""Workload commands rendered per topology: one bound stressor per node with memory."""

import re

import pytest

from harness import topology, workloads
from harness.errors import UserError


def test_one_stressor_per_node_sized_from_the_node():
    cmd = workloads.get("stress").command(topology.load("four-node"), 10)
    jobs = re.findall(r"numactl (--membind=(\d+)(?: --cpunodebind=\d+)?) stress-ng --vm 1 --vm-bytes (\d+)M", cmd)
    assert [int(n) for _, n, _ in jobs] == [0, 1, 2, 3]
    sizes = {int(n): int(mb) for _, n, mb in jobs}
    topo = topology.load("four-node")
    assert sizes == {n.id: n.memory_bytes // 4 >> 20 for n in topo.nodes}
    assert "--timeout 10s" in cmd and cmd.endswith("exit $rc")


def test_memoryless_and_cpuless_nodes():
    topo = topology.load("memoryless")
    cmd = workloads.get("stress").command(topo, 5)
    memless = [n.id for n in topo.nodes if not n.ranges]
    cpuless = [n.id for n in topo.nodes if n.ranges and not n.cpus]
    for n in memless:
        assert f"--membind={n}" not in cmd
    for n in cpuless:
        assert f"--membind={n} stress-ng" in cmd   # memory binding only: the node has no CPU


def test_pagecache_variant_and_errors():
    cmd = workloads.get("stress-pagecache").command(topology.load("two-node"), 5)
    assert "dd if=/dev/zero of=/tmp/pagecache" in cmd
    with pytest.raises(UserError, match="unknown workload 'nope'; known: soak, stress"):
        workloads.get("nope")
    with pytest.raises(UserError, match="duration must be positive"):
        workloads.get("stress").command(topology.load("two-node"), 0)
