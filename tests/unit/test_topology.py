"""Unit tests for harness.topology (YAML loading, validation messages, placement) and harness.vm.numa (QEMU args)."""

from __future__ import annotations

import itertools
import re
import textwrap
from pathlib import Path

import pytest

from harness import topology as topo_mod
from harness import units
from harness.errors import TopologyError, UserError
from harness.paths import TOPOLOGY_DIR
from harness.topology import list_topologies, load
from harness.units import GiB, MiB
from harness.vm.numa import describe, qemu_args

SHIPPED = ["four-node", "high-normal", "interleaved", "interleaved-small", "memoryless", "one-node", "two-node"]


def write(tmp_path: Path, body: str, name: str = "x") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def load_error(tmp_path: Path, body: str) -> tuple[Path, str]:
    path = write(tmp_path, body)
    with pytest.raises(TopologyError) as info:
        load(path)
    return path, str(info.value)


# ---------------------------------------------------------------- shipped topologies


def test_list_topologies_has_every_shipped_one():
    assert set(SHIPPED) <= set(list_topologies())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_topology_loads_and_is_consistent(name):
    topo = load(name)
    assert topo.name == name
    assert topo.path == TOPOLOGY_DIR / f"{name}.yaml"
    assert topo.description, "every shipped topology explains itself"
    # Independent of the loader's own checks: the node ranges tile the real RAM map exactly.
    ranges = sorted(r for node in topo.nodes for r in node.ranges)
    merged: list[list[int]] = []
    for start, end in ranges:
        if merged and merged[-1][1] == start:
            merged[-1][1] = end
        else:
            assert not merged or merged[-1][1] < start, f"overlap at {start:#x}"
            merged.append([start, end])
    assert [tuple(r) for r in merged] == list(topo.ram_map())
    assert sum(node.memory_bytes for node in topo.nodes) == topo.memory_bytes
    assert sorted(c for node in topo.nodes for c in node.cpus) == list(range(topo.cpus))
    for start, end in ranges:
        assert start % (128 * MiB) == 0 and end % (128 * MiB) == 0


def test_interleaved_mapping_is_exact():
    topo = load("interleaved")
    assert topo.memory_bytes == 8 * GiB
    assert topo.ram_map() == ((0, 2 * GiB), (4 * GiB, 10 * GiB))
    n0, n1 = topo.nodes
    assert n0.ranges == ((0, 2 * GiB), (6 * GiB, 8 * GiB))
    assert n1.ranges == ((4 * GiB, 6 * GiB), (8 * GiB, 10 * GiB))
    assert (n0.cpus, n1.cpus) == ((0,), (1,))
    assert topo.node_of(0) == 0
    assert topo.node_of(2 * GiB - 1) == 0
    assert topo.node_of(2 * GiB) is None  # PCI hole
    assert topo.node_of(4 * GiB) == 1
    assert topo.node_of(6 * GiB) == 0
    assert topo.node_of(10 * GiB - 1) == 1
    assert topo.node_of(10 * GiB) is None


@pytest.mark.parametrize(
    "name, expected",
    [
        ("one-node", [((0, 1), [(0, 2 * GiB)])]),
        ("two-node", [((0,), [(0, GiB)]), ((1,), [(GiB, 2 * GiB)])]),
        (
            "interleaved-small",
            [
                ((0,), [(0, 512 * MiB), (GiB, 1536 * MiB)]),
                ((1,), [(512 * MiB, GiB), (1536 * MiB, 2 * GiB)]),
            ],
        ),
        (
            "four-node",
            [
                ((0,), [(0, 512 * MiB)]),
                ((1,), [(512 * MiB, 1536 * MiB)]),
                ((2,), [(1536 * MiB, 2 * GiB), (4 * GiB, 5632 * MiB)]),  # goes around the hole
                ((3,), [(5632 * MiB, 6 * GiB)]),
            ],
        ),
        ("memoryless", [((0,), [(0, GiB)]), ((1,), []), ((), [(GiB, 2 * GiB)])]),
        ("high-normal", [((0,), [(0, 2 * GiB)]), ((1,), [(4 * GiB, 6 * GiB)])]),
    ],
)
def test_shipped_layouts(name, expected):
    topo = load(name)
    got = [(node.cpus, list(node.ranges)) for node in topo.nodes]
    assert got == expected


def test_four_node_distances_symmetric_and_unequal():
    d = load("four-node").distances
    assert all(d[i][i] == 10 for i in range(4))
    assert all(d[i][j] == d[j][i] for i in range(4) for j in range(4))
    off = [d[i][j] for i in range(4) for j in range(i + 1, 4)]
    assert len(set(off)) == len(off)


def test_default_distances(tmp_path):
    path = write(
        tmp_path,
        """
        memory: 2G
        cpus: 2
        nodes:
          - {id: 0, cpus: [0], memory: 1G}
          - {id: 1, cpus: "1", memory: 1G}
        """,
    )
    topo = load(path)
    assert topo.distances == ((10, 20), (20, 10))
    assert topo.name == "x" and topo.machine == "q35"


def test_memoryless_spellings(tmp_path):
    path = write(
        tmp_path,
        """
        memory: 2G
        cpus: 3
        nodes:
          - {id: 0, cpus: [0], ranges: [{start: 0, size: 2G}]}
          - {id: 1, cpus: [1], ranges: []}
          - {id: 2, cpus: [2]}
        """,
    )
    topo = load(path)
    assert [n.ranges for n in topo.nodes] == [((0, 2 * GiB),), (), ()]
    assert topo.node_of_cpu(2) == 2


# ---------------------------------------------------------------- memory map and parsing


@pytest.mark.parametrize(
    "total, expected",
    [
        (2 * GiB, ((0, 2 * GiB),)),
        (0xB0000000 - 128 * MiB, ((0, 0xB0000000 - 128 * MiB),)),  # just under 2.75G: all low
        (0xB0000000, ((0, 2 * GiB), (4 * GiB, 4 * GiB + 0xB0000000 - 2 * GiB))),
        (4 * GiB, ((0, 2 * GiB), (4 * GiB, 6 * GiB))),
        (8 * GiB, ((0, 2 * GiB), (4 * GiB, 10 * GiB))),
    ],
)
def test_q35_ram_map(total, expected):
    assert topo_mod.ram_map("q35", total) == expected


@pytest.mark.parametrize(
    "text, expected",
    [("8G", 8 * GiB), ("512M", 512 * MiB), ("1024K", MiB), ("1.5G", 1536 * MiB), (4096, 4096),
     ("0x80000000", 2 * GiB), ("2GiB", 2 * GiB), ("0", 0)],
)  # fmt: skip
def test_parse_size(text, expected):
    assert units.parse_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "-1G", "1.0000000001K", True, [1], "2X"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        units.parse_size(text)


@pytest.mark.parametrize(
    "value, expected",
    [("0-1", [0, 1]), ("0,2-3", [0, 2, 3]), ("", []), ([], []), (None, []), ([3, 1], [3, 1]), (2, [2])],
)
def test_parse_cpus(value, expected):
    assert topo_mod.parse_cpus(value) == expected


@pytest.mark.parametrize("value", ["3-1", "a", [0, "1"], True, 1.5])
def test_parse_cpus_rejects(value):
    with pytest.raises(ValueError):
        topo_mod.parse_cpus(value)


# ---------------------------------------------------------------- validation errors

TWO_NODE_RANGES = """
memory: 2G
cpus: 2
nodes:
  - id: 0
    cpus: [0]
    ranges:
      - {start: 0, size: 1G}
  - id: 1
    cpus: [1]
    ranges:
      - {start: 1G, size: 1G}
"""

BAD = {
    "unknown top-level key": (
        "memory: 2G\ncpus: 1\nmemroy: 2G\nnodes: [{id: 0, cpus: [0], memory: 2G}]\n",
        "memroy",
        "unknown key",
    ),
    "unknown node key": (
        "memory: 2G\ncpus: 1\nnodes: [{id: 0, cpu: [0], memory: 2G}]\n",
        "nodes[0].cpu",
        "unknown key",
    ),
    "unknown range key": (
        TWO_NODE_RANGES.replace("{start: 1G, size: 1G}", "{start: 1G, length: 1G}"),
        "nodes[1].ranges[0].length",
        "unknown key",
    ),
    "missing required key": ("cpus: 1\nnodes: [{id: 0, cpus: [0], memory: 2G}]\n", "memory", "missing"),
    "overlapping ranges": (
        """
        memory: 2G
        cpus: 2
        nodes:
          - id: 0
            cpus: [0]
            ranges:
              - {start: 0, size: 1G}
          - id: 1
            cpus: [1]
            ranges:
              - {start: 896M, size: 1G}
        """,
        "nodes[1].ranges[0]",
        "overlaps nodes[0].ranges[0]",
    ),
    "overlap inside one node": (
        """
        memory: 2G
        cpus: 1
        nodes:
          - id: 0
            cpus: [0]
            ranges:
              - {start: 0, size: 1G}
              - {start: 512M, size: 1G}
        """,
        "nodes[0].ranges[1]",
        "overlaps nodes[0].ranges[0]",
    ),
    "range in the PCI hole": (
        """
        memory: 8G
        cpus: 1
        nodes:
          - id: 0
            cpus: [0]
            ranges:
              - {start: 0, size: 2G}
              - {start: 2G, size: 2G}
              - {start: 4G, size: 4G}
        """,
        "nodes[0].ranges[1]",
        "is not RAM in the guest",
    ),
    "range crossing into the hole": (
        """
        memory: 4G
        cpus: 1
        nodes:
          - id: 0
            cpus: [0]
            ranges:
              - {start: 0, size: 3G}
              - {start: 4G, size: 1G}
        """,
        "nodes[0].ranges[0]",
        "is not RAM in the guest",
    ),
    "range past the end of RAM": (
        TWO_NODE_RANGES.replace("{start: 1G, size: 1G}", "{start: 2G, size: 1G}"),
        "nodes[1].ranges[0]",
        "is not RAM in the guest",
    ),
    "misaligned range start": (
        TWO_NODE_RANGES.replace("{start: 1G, size: 1G}", "{start: 1088M, size: 960M}"),
        "nodes[1].ranges[0].start",
        "multiple of 128M",
    ),
    "misaligned range size": (
        TWO_NODE_RANGES.replace("{start: 0, size: 1G}", "{start: 0, size: 1000M}"),
        "nodes[0].ranges[0].size",
        "multiple of 128M",
    ),
    "misaligned node size": (
        "memory: 2G\ncpus: 1\nnodes: [{id: 0, cpus: [0], memory: 2047M}]\n",
        "nodes[0].memory",
        "multiple of 128M",
    ),
    "misaligned total": (
        "memory: 2000M\ncpus: 1\nnodes: [{id: 0, cpus: [0], memory: 2000M}]\n",
        "memory",
        "multiple of 128M",
    ),
    "sizes do not add up": (
        "memory: 2G\ncpus: 2\nnodes: [{id: 0, cpus: [0], memory: 1G}, {id: 1, cpus: [1], memory: 512M}]\n",
        "nodes",
        "adds up to 1536M",
    ),
    "ranges do not add up": (
        TWO_NODE_RANGES.replace("{start: 1G, size: 1G}", "{start: 1G, size: 512M}"),
        "nodes",
        "adds up to 1536M",
    ),
    "sizes mixed with ranges": (
        TWO_NODE_RANGES.replace("ranges:\n      - {start: 0, size: 1G}", "memory: 1G"),
        "nodes[1].ranges",
        "use ranges for every node",
    ),
    "memory and ranges on one node": (
        TWO_NODE_RANGES.replace("cpus: [0]\n", "cpus: [0]\n    memory: 1G\n"),
        "nodes[0]",
        "not both",
    ),
    "cpu given twice": (
        "memory: 2G\ncpus: 2\nnodes: [{id: 0, cpus: 0-1, memory: 1G}, {id: 1, cpus: [1], memory: 1G}]\n",
        "nodes[1].cpus",
        "cpu 1 is already given to node 0",
    ),
    "cpu given twice in one node": (
        "memory: 2G\ncpus: 2\nnodes: [{id: 0, cpus: [0, 1, 0], memory: 2G}]\n",
        "nodes[0].cpus",
        "cpu 0 is already given to this node",
    ),
    "cpu never given": (
        "memory: 2G\ncpus: 3\nnodes: [{id: 0, cpus: [0], memory: 1G}, {id: 1, cpus: [2], memory: 1G}]\n",
        "nodes",
        "cpus [1] belong to no node",
    ),
    "cpu out of range": (
        "memory: 2G\ncpus: 2\nnodes: [{id: 0, cpus: [0], memory: 1G}, {id: 1, cpus: [2], memory: 1G}]\n",
        "nodes[1].cpus",
        "cpu 2 does not exist",
    ),
    "node ids not 0..N-1": (
        "memory: 2G\ncpus: 2\nnodes: [{id: 0, cpus: [0], memory: 1G}, {id: 2, cpus: [1], memory: 1G}]\n",
        "nodes[1].id",
        "node ids must be 0..N-1",
    ),
    "node id missing": (
        "memory: 2G\ncpus: 1\nnodes: [{cpus: [0], memory: 2G}]\n",
        "nodes[0].id",
        "node ids must be 0..N-1",
    ),
    "distances too few rows": (
        TWO_NODE_RANGES + "distances: [[10, 20]]\n",
        "distances",
        "expected 2 rows",
    ),
    "distances row too short": (
        TWO_NODE_RANGES + "distances: [[10, 20], [20]]\n",
        "distances[1]",
        "2x2",
    ),
    "distance diagonal not 10": (
        TWO_NODE_RANGES + "distances: [[10, 20], [20, 11]]\n",
        "distances[1][1]",
        "must be 10",
    ),
    "distance off-diagonal too small": (
        TWO_NODE_RANGES + "distances: [[10, 10], [10, 10]]\n",
        "distances[0][1]",
        "11..254",
    ),
    "distance off-diagonal too large": (
        TWO_NODE_RANGES + "distances: [[10, 255], [255, 10]]\n",
        "distances[0][1]",
        "11..254",
    ),
    "distance asymmetric": (
        TWO_NODE_RANGES + "distances: [[10, 20], [30, 10]]\n",
        "distances[1][0]",
        "symmetric",
    ),
    "cpu-less node before a node with cpus": (
        "memory: 2G\ncpus: 1\nnodes: [{id: 0, cpus: [], memory: 1G}, {id: 1, cpus: [0], memory: 1G}]\n",
        "nodes[0].cpus",
        "list CPU-less nodes last",
    ),
    "node with nothing": (
        "memory: 2G\ncpus: 1\nnodes: [{id: 0, cpus: [0], memory: 2G}, {id: 1, cpus: []}]\n",
        "nodes[1]",
        "neither cpus nor memory",
    ),
    "node with zero memory and no cpus": (
        "memory: 2G\ncpus: 1\nnodes: [{id: 0, cpus: [0], memory: 2G}, {id: 1, cpus: '', memory: 0}]\n",
        "nodes[1]",
        "neither cpus nor memory",
    ),
    "name differs from file": (
        "name: other\nmemory: 2G\ncpus: 1\nnodes: [{id: 0, cpus: [0], memory: 2G}]\n",
        "name",
        "differs from the file name",
    ),
    "unsupported machine": (
        "machine: pc\nmemory: 2G\ncpus: 1\nnodes: [{id: 0, cpus: [0], memory: 2G}]\n",
        "machine",
        "use machine: q35",
    ),
    "bad size": (
        "memory: lots\ncpus: 1\nnodes: [{id: 0, cpus: [0], memory: 2G}]\n",
        "memory",
        "512M or 2G",
    ),
    "bad cpu count": (
        "memory: 2G\ncpus: 0\nnodes: [{id: 0, cpus: [], memory: 2G}]\n",
        "cpus",
        "vCPU count",
    ),
    "nodes not a list": ("memory: 2G\ncpus: 1\nnodes: {id: 0}\n", "nodes", "non-empty list"),
}


@pytest.mark.parametrize("body, field, hint", BAD.values(), ids=BAD.keys())
def test_validation_error_names_file_and_field(tmp_path, body, field, hint):
    path, message = load_error(tmp_path, body)
    assert message.startswith(f"{path}: {field}: "), message
    assert hint in message, message


def test_errors_are_user_errors(tmp_path):
    path, _ = load_error(tmp_path, "memory: 2G\n")
    with pytest.raises(UserError) as info:
        load(path)
    assert info.value.exit_code == 2


def test_bad_yaml(tmp_path):
    path, message = load_error(tmp_path, "memory: [2G\n")
    assert message.startswith(f"{path}: not valid YAML")


def test_unknown_name_lists_known_topologies():
    with pytest.raises(TopologyError) as info:
        load("no-such-topology")
    assert "qemu-configs/topologies/no-such-topology.yaml" in str(info.value)
    assert "two-node" in str(info.value)


def test_shipped_paths_are_shown_relative_to_the_repo():
    assert topo_mod.display_path(TOPOLOGY_DIR / "x.yaml") == "qemu-configs/topologies/x.yaml"


# ---------------------------------------------------------------- QEMU arguments


@pytest.mark.parametrize("name", SHIPPED)
def test_qemu_args_pass_acpi_tables_and_no_numa(tmp_path, name):
    topo = load(name)
    argv = qemu_args(topo, tmp_path / "work")
    srat, slit = tmp_path / "work" / "srat.bin", tmp_path / "work" / "slit.bin"
    assert argv[argv.index("-machine") + 1] == "q35"
    assert argv[argv.index("-m") + 1] == units.fmt_size(topo.memory_bytes)
    assert "," not in argv[argv.index("-m") + 1]  # no maxmem/slots
    assert argv[argv.index("-smp") + 1].split(",")[0] == str(topo.cpus)
    pairs = [(a, b) for a, b in itertools.pairwise(argv) if a == "-acpitable"]
    assert pairs == [("-acpitable", f"file={srat}"), ("-acpitable", f"file={slit}")]
    assert not any(a.startswith("-numa") for a in argv)
    # the files on disk are ACPI tables for this topology, read with the spec's layout
    # (a 36-byte header, then type/length entries), not by asking the encoder again
    data = srat.read_bytes()
    assert data[:4] == b"SRAT" and int.from_bytes(data[4:8], "little") == len(data)
    assert sum(data) % 256 == 0                                  # the table checksum
    types, off = [], 48                                          # header + 12 reserved bytes
    while off < len(data):
        types.append(data[off])
        off += data[off + 1]
    assert types.count(0) == topo.cpus                           # processor local APIC affinity
    assert types.count(1) == sum(len(n.ranges) for n in topo.nodes)   # memory affinity
    table = slit.read_bytes()
    n = int.from_bytes(table[36:44], "little")
    assert table[:4] == b"SLIT" and n == len(topo.nodes)
    assert [list(table[44 + i * n:44 + (i + 1) * n]) for i in range(n)] == [list(r) for r in topo.distances]


def test_qemu_args_interleaved_values(tmp_path):
    argv = qemu_args(load("interleaved"), tmp_path)
    assert argv[:6] == ["-machine", "q35", "-m", "8G", "-smp", "2,sockets=2,cores=1,threads=1"]


def test_qemu_args_escape_commas(tmp_path):
    work = tmp_path / "a,b"
    argv = qemu_args(load("one-node"), work)
    assert f"file={tmp_path}/a,,b/srat.bin" in argv


def test_describe_shows_ranges_srat_slit_and_argv():
    text = describe(load("interleaved"))
    assert "node 0: cpus 0; memory 4G: [0x000000000, 0x080000000) 2G, [0x180000000, 0x200000000) 2G" in text
    assert "node 1: cpus 1; memory 4G: [0x100000000, 0x180000000) 2G, [0x200000000, 0x280000000) 2G" in text
    assert "APIC id 1 -> node 1" in text
    assert "memory affinity: base 0x0000000180000000 length 0x0000000080000000 -> node 0, flags enabled" in text
    assert "-acpitable file=<workdir>/srat.bin" in text
    assert "-numa" not in text


@pytest.mark.parametrize(("text", "field"), [
    ("name: t\nmemory: 2G\ncpus: 2\nnodes:\n  - {id: 0, cpus: '0-100000000000', memory: 2G}\n", "nodes[0].cpus"),
    ("name: t\nmemory: 1180591620717411303424\ncpus: 1\nnodes:\n  - {id: 0, cpus: 0, memory: 2G}\n", "memory"),
    ("name: t\nmemory: 2G\nmemory: 4G\ncpus: 1\nnodes:\n  - {id: 0, cpus: 0, memory: 2G}\n", "given twice"),
])
def test_hostile_topology_input_is_a_topology_error(tmp_path, text, field):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError, match=re.escape(field)):
        topo_mod.load(path)


def test_non_utf8_topology_file(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_bytes(b"name: t\ndescription: caf\xe9\n")
    with pytest.raises(TopologyError, match="t.yaml: not UTF-8"):
        topo_mod.load(path)
