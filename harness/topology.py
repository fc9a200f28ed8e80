"""NUMA topologies: load and validate qemu-configs/topologies/*.yaml against the guest's RAM map.

A topology says which vCPUs and which guest-physical RAM ranges belong to which node.
The guest learns it from an ACPI SRAT and SLIT (harness.acpi encodes them,
harness.vm.numa writes them and builds the QEMU arguments); no ``-numa`` option is
used, because QEMU's -numa can only give each node one contiguous chunk and we need
interleaved layouts (node0 = 0-2G + 4-6G, ...).

Every range is checked against the guest's real RAM map (q35 puts a PCI hole below 4G),
so a topology that validates here describes memory that really exists in the guest.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.errors import TopologyError
from harness.paths import REPO_ROOT, TOPOLOGY_DIR
from harness.units import GiB, MiB, fmt_size, parse_size

log = logging.getLogger(__name__)

# Node boundaries must sit on x86_64 memory section boundaries (SECTION_SIZE_BITS = 27,
# 128 MiB). With a boundary inside a section, that section spans two nodes: sparsemem
# keeps one node per section (and per memory block in /sys/devices/system/memory), so the
# kernel would warn or misattribute pages, and per-node sysfs/metrics would not match the
# model. Whole sections keep every node's memory block-aligned.
SECTION_SIZE = 128 * MiB

# q35 in QEMU 7.2 (pc_q35_init): with 2.75G of RAM or more, RAM below 4G stops at 2G and
# the rest is mapped from 4G; below that, all RAM sits at [0, total).
Q35_LOWMEM_THRESHOLD = 0xB0000000  # 2.75 GiB
Q35_LOWMEM_SPLIT = 2 * GiB
FOUR_GIB = 4 * GiB

LOCAL_DISTANCE = 10  # ACPI: the diagonal of the SLIT is always 10
REMOTE_DISTANCE = 20  # Linux's default for a remote node
MAX_DISTANCE = 254  # 255 means "unreachable" in the SLIT

# xAPIC ids: SRAT type 0 entries carry an 8-bit APIC id and 0xff is broadcast.
MAX_CPUS = 255
#: the most guest RAM a topology may declare: far beyond what this harness boots, far below
#: where 64-bit SRAT fields or the q35 map above 4G could overflow
MAX_MEMORY = 1 << 40

_TOP_KEYS = {"name", "description", "machine", "memory", "cpus", "nodes", "distances"}
_NODE_KEYS = {"id", "cpus", "memory", "ranges"}
_RANGE_KEYS = {"start", "size"}


@dataclass(frozen=True)
class Node:
    """One NUMA node: its vCPUs and its guest-physical RAM ranges ([start, end) bytes)."""

    id: int
    cpus: tuple[int, ...]
    ranges: tuple[tuple[int, int], ...]

    @property
    def memory_bytes(self) -> int:
        return sum(end - start for start, end in self.ranges)


@dataclass(frozen=True)
class Topology:
    """A validated NUMA topology. Build it with load(), not by hand."""

    name: str
    path: Path
    description: str
    machine: str
    memory_bytes: int
    cpus: int
    nodes: tuple[Node, ...]
    distances: tuple[tuple[int, ...], ...]

    def ram_map(self) -> tuple[tuple[int, int], ...]:
        """The guest's real RAM ranges, [start, end) bytes, ascending."""
        return ram_map(self.machine, self.memory_bytes)

    def node_of(self, addr: int) -> int | None:
        """The node that owns guest-physical byte ``addr``, or None if it is not RAM."""
        for node in self.nodes:
            for start, end in node.ranges:
                if start <= addr < end:
                    return node.id
        return None

    def node_of_cpu(self, cpu: int) -> int:
        for node in self.nodes:
            if cpu in node.cpus:
                return node.id
        raise ValueError(f"cpu {cpu} is not in topology {self.name}")


# --------------------------------------------------------------------------- memory map


def ram_map(machine: str, total: int) -> tuple[tuple[int, int], ...]:
    """The guest's real RAM ranges for ``total`` bytes of RAM on ``machine``."""
    if machine != "q35":
        raise ValueError(f"no memory map known for machine {machine!r}")
    if total >= Q35_LOWMEM_THRESHOLD:
        return ((0, Q35_LOWMEM_SPLIT), (FOUR_GIB, FOUR_GIB + total - Q35_LOWMEM_SPLIT))
    return ((0, total),)


# --------------------------------------------------------------------------- loading


def list_topologies() -> list[str]:
    """Names of the topologies shipped in qemu-configs/topologies/."""
    return sorted(p.stem for p in TOPOLOGY_DIR.glob("*.yaml"))


def resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """A topology name (``two-node``) or a path to a YAML file, as a path."""
    text = os.fspath(name_or_path)
    if isinstance(name_or_path, Path) or os.sep in text or text.endswith((".yaml", ".yml")):
        return Path(text)
    return TOPOLOGY_DIR / f"{text}.yaml"


def load(name_or_path: str | os.PathLike[str]) -> Topology:
    """Load and validate a topology; raises TopologyError naming the file and field."""
    path = resolve(name_or_path)
    if not path.is_file():
        raise TopologyError(
            f"{display_path(path)}: no such topology file; known topologies: "
            f"{', '.join(list_topologies()) or '(none)'}"
        )
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError as exc:
        raise TopologyError(f"{display_path(path)}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                            "save the file as UTF-8") from None
    except yaml.YAMLError as exc:
        raise TopologyError(f"{display_path(path)}: not valid YAML: {exc}") from exc
    topo = _Parser(path).parse(data)
    log.debug("loaded topology %s from %s: %d nodes", topo.name, path, len(topo.nodes))
    return topo


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice (YAML would keep the last silently)."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice; keep one", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def display_path(path: Path) -> str:
    """The path as users should see it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def parse_cpus(value: Any) -> list[int]:
    """CPU numbers from a list of ints, an int, or a string like ``"0-1,4"`` (empty = none)."""
    if value is None:
        return []
    if isinstance(value, bool):
        raise ValueError("expected a CPU list, got a boolean")
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in value):
            raise ValueError(f"expected a list of CPU numbers, got {value!r}")
        return list(value)
    if isinstance(value, str):
        cpus: list[int] = []
        for part in filter(None, (p.strip() for p in value.split(","))):
            m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
            if not m:
                raise ValueError(f"expected CPUs like '0-1,3', got {value!r}")
            first = int(m.group(1))
            last = int(m.group(2)) if m.group(2) is not None else first
            if last < first:
                raise ValueError(f"range {part!r} goes backwards")
            if last >= MAX_CPUS:  # bounded before expanding: '0-100000000000' must not fill memory
                raise ValueError(f"cpu {last} in {part!r} is beyond the {MAX_CPUS} vCPUs a topology can have")
            cpus.extend(range(first, last + 1))
        return cpus
    raise ValueError(f"expected a CPU list such as [0, 1] or '0-1', got {value!r}")


def format_cpus(cpus: Iterable[int]) -> str:
    """CPU list in the kernel's cpulist format ("0-3,6"; empty for none), as sysfs prints it."""
    parts: list[str] = []
    run: list[int] = []
    for cpu in sorted(cpus):
        if run and cpu == run[-1] + 1:
            run.append(cpu)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [cpu]
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)


class _Parser:
    """Turns the YAML data of one file into a Topology, failing on the first problem."""

    def __init__(self, path: Path):
        self.path = path
        self.where = display_path(path)

    def fail(self, field: str, message: str) -> TopologyError:
        return TopologyError(f"{self.where}: {field}: {message}")

    def check_keys(self, field: str, data: dict[Any, Any], allowed: set[str]) -> None:
        unknown = sorted(set(map(str, data)) - allowed)
        if unknown:
            raise self.fail(
                f"{field}.{unknown[0]}" if field else unknown[0],
                f"unknown key; allowed keys are {', '.join(sorted(allowed))} (check the spelling)",
            )

    def size(self, field: str, value: Any, *, aligned: bool = True) -> int:
        try:
            n = parse_size(value)
        except ValueError as exc:
            raise self.fail(field, f"{exc}; write a size such as 512M or 2G") from None
        if aligned and n % SECTION_SIZE:
            raise self.fail(
                field,
                f"{value!r} is not a multiple of 128M (the x86_64 memory section size); "
                "round it to a multiple of 128M",
            )
        return n

    def parse(self, data: Any) -> Topology:
        if not isinstance(data, dict):
            raise self.fail("(top level)", "expected a mapping with name, memory, cpus, nodes")
        self.check_keys("", data, _TOP_KEYS)
        for key in ("memory", "cpus", "nodes"):
            if key not in data:
                raise self.fail(key, "missing; every topology declares memory, cpus and nodes")

        name = data.get("name", self.path.stem)
        if name != self.path.stem:
            raise self.fail(
                "name", f"{name!r} differs from the file name; name the file {name}.yaml or fix the name"
            )
        description = data.get("description") or ""
        if not isinstance(description, str):
            raise self.fail("description", "expected text")
        machine = data.get("machine", "q35")
        if machine != "q35":
            raise self.fail(
                "machine",
                f"{machine!r} is not supported; only q35's memory map is modeled, use machine: q35",
            )

        memory = self.size("memory", data["memory"])
        if memory == 0:
            raise self.fail("memory", "must be more than 0")
        if memory > MAX_MEMORY:
            raise self.fail("memory", f"{fmt_size(memory)} is more than the {fmt_size(MAX_MEMORY)} a topology "
                                      "can declare (the q35 map and the SRAT encoder are checked up to there)")
        cpus = data["cpus"]
        if not isinstance(cpus, int) or isinstance(cpus, bool) or not 1 <= cpus <= MAX_CPUS:
            raise self.fail("cpus", f"expected a vCPU count from 1 to {MAX_CPUS}, got {cpus!r}")

        real = ram_map(machine, memory)
        nodes = self.parse_nodes(data["nodes"], memory, cpus, real)
        distances = self.parse_distances(data.get("distances"), len(nodes))
        return Topology(
            name=name,
            path=self.path,
            description=description.strip(),
            machine=machine,
            memory_bytes=memory,
            cpus=cpus,
            nodes=nodes,
            distances=distances,
        )

    # ---- nodes

    def parse_nodes(
        self, raw: Any, memory: int, cpus: int, real: tuple[tuple[int, int], ...]
    ) -> tuple[Node, ...]:
        if not isinstance(raw, list) or not raw:
            raise self.fail("nodes", "expected a non-empty list of nodes")

        owner: dict[int, int] = {}  # cpu -> node, to catch CPUs given twice
        node_cpus: list[list[int]] = []
        sizes: dict[int, int] = {}  # node -> size, contiguous placement
        explicit: dict[int, list[tuple[int, int]]] = {}  # node -> ranges
        for i, entry in enumerate(raw):
            field = f"nodes[{i}]"
            if not isinstance(entry, dict):
                raise self.fail(field, "expected a mapping with id, cpus and memory or ranges")
            self.check_keys(field, entry, _NODE_KEYS)
            nid = entry.get("id")
            if nid != i or isinstance(nid, bool):
                raise self.fail(
                    f"{field}.id",
                    f"is {nid!r}, expected {i}: node ids must be 0..N-1 in list order",
                )
            try:
                these = parse_cpus(entry.get("cpus"))
            except ValueError as exc:
                raise self.fail(f"{field}.cpus", str(exc)) from None
            for cpu in these:
                if not 0 <= cpu < cpus:
                    raise self.fail(
                        f"{field}.cpus", f"cpu {cpu} does not exist: cpus is {cpus}, so use 0..{cpus - 1}"
                    )
                if cpu in owner:
                    where = "this node" if owner[cpu] == i else f"node {owner[cpu]}"
                    raise self.fail(f"{field}.cpus", f"cpu {cpu} is already given to {where}; list it once")
                owner[cpu] = i
            node_cpus.append(sorted(these))

            if "memory" in entry and "ranges" in entry:
                raise self.fail(field, "give either memory (a size) or ranges, not both")
            # Zero memory, no memory key and an empty ranges list all mean "memoryless".
            if "ranges" in entry:
                found = self.parse_ranges(f"{field}.ranges", entry["ranges"], real)
                if found:
                    explicit[i] = found
            elif entry.get("memory") is not None:
                size = self.size(f"{field}.memory", entry["memory"])
                if size:
                    sizes[i] = size

        missing = sorted(set(range(cpus)) - set(owner))
        if missing:
            raise self.fail("nodes", f"cpus {missing} belong to no node; give every vCPU 0..{cpus - 1} a node")

        if sizes and explicit:
            raise self.fail(
                f"nodes[{min(explicit)}].ranges",
                "mixes ranges with nodes that give a memory size; use ranges for every node "
                "or sizes for every node",
            )
        given = sum(sizes.values()) + sum(e - s for r in explicit.values() for s, e in r)
        if given != memory:
            raise self.fail(
                "nodes",
                f"node memory adds up to {fmt_size(given)} ({given} bytes) but memory is "
                f"{fmt_size(memory)} ({memory} bytes); make them equal",
            )
        if explicit:
            self.check_overlaps(explicit)
            ranges = {i: tuple(sorted(r)) for i, r in explicit.items()}
        else:
            ranges = self.place_contiguous(sizes, real)

        # Linux numbers nodes by first appearance of their proximity domain in the SRAT,
        # and it parses all processor entries before any memory entry. A CPU-less node
        # listed before a node with CPUs would therefore get a different Linux node id.
        seen_cpuless = None
        for i, these in enumerate(node_cpus):
            if not these and not ranges.get(i):
                raise self.fail(f"nodes[{i}]", "has neither cpus nor memory; remove it or give it some")
            if not these and seen_cpuless is None:
                seen_cpuless = i
            if these and seen_cpuless is not None:
                raise self.fail(
                    f"nodes[{seen_cpuless}].cpus",
                    f"CPU-less node {seen_cpuless} comes before node {i}, which has CPUs; Linux "
                    "numbers SRAT nodes with CPUs first, so list CPU-less nodes last",
                )

        return tuple(
            Node(id=i, cpus=tuple(node_cpus[i]), ranges=ranges.get(i, ())) for i in range(len(raw))
        )

    def parse_ranges(
        self, field: str, raw: Any, real: tuple[tuple[int, int], ...]
    ) -> list[tuple[int, int]]:
        if not isinstance(raw, list):
            raise self.fail(field, "expected a list of {start, size}")
        out = []
        for j, item in enumerate(raw):
            where = f"{field}[{j}]"
            if not isinstance(item, dict):
                raise self.fail(where, "expected a mapping {start: ..., size: ...}")
            self.check_keys(where, item, _RANGE_KEYS)
            for key in ("start", "size"):
                if key not in item:
                    raise self.fail(f"{where}.{key}", "missing")
            start = self.size(f"{where}.start", item["start"])
            size = self.size(f"{where}.size", item["size"])
            if size == 0:
                raise self.fail(f"{where}.size", "must be more than 0")
            end = start + size
            if not any(lo <= start and end <= hi for lo, hi in real):
                raise self.fail(
                    where,
                    f"[{start:#x}, {end:#x}) is not RAM in the guest: its RAM is "
                    f"{_fmt_ranges(real)}; guest-physical 2G-4G is the PCI hole once RAM >= 2.75G, "
                    "so move the range (or split it) into RAM",
                )
            out.append((start, end))
        return out

    def check_overlaps(self, explicit: dict[int, list[tuple[int, int]]]) -> None:
        flat = sorted(
            (start, end, i, j) for i, rs in explicit.items() for j, (start, end) in enumerate(rs)
        )
        for (s1, e1, i1, j1), (s2, e2, i2, j2) in itertools.pairwise(flat):
            if s2 < e1:
                raise self.fail(
                    f"nodes[{i2}].ranges[{j2}]",
                    f"[{s2:#x}, {e2:#x}) overlaps nodes[{i1}].ranges[{j1}] [{s1:#x}, {e1:#x}); "
                    "every byte of RAM belongs to exactly one node",
                )

    @staticmethod
    def place_contiguous(
        sizes: dict[int, int], real: tuple[tuple[int, int], ...]
    ) -> dict[int, tuple[tuple[int, int], ...]]:
        """Give nodes consecutive chunks of the real RAM map, in node order, across the hole."""
        chunks = list(real)
        out: dict[int, tuple[tuple[int, int], ...]] = {}
        for nid in sorted(sizes):
            need = sizes[nid]
            got = []
            while need:
                lo, hi = chunks[0]
                take = min(need, hi - lo)
                got.append((lo, lo + take))
                need -= take
                if lo + take == hi:
                    chunks.pop(0)
                else:
                    chunks[0] = (lo + take, hi)
            out[nid] = tuple(got)
        return out

    # ---- distances

    def parse_distances(self, raw: Any, n: int) -> tuple[tuple[int, ...], ...]:
        if raw is None:
            return tuple(
                tuple(LOCAL_DISTANCE if i == j else REMOTE_DISTANCE for j in range(n)) for i in range(n)
            )
        if not isinstance(raw, list) or len(raw) != n:
            raise self.fail("distances", f"expected {n} rows ({n}x{n} for {n} nodes)")
        for i, row in enumerate(raw):
            if not isinstance(row, list) or len(row) != n:
                raise self.fail(f"distances[{i}]", f"expected a row of {n} numbers ({n}x{n} for {n} nodes)")
            for j, d in enumerate(row):
                where = f"distances[{i}][{j}]"
                if not isinstance(d, int) or isinstance(d, bool):
                    raise self.fail(where, f"expected a whole number, got {d!r}")
                if i == j and d != LOCAL_DISTANCE:
                    raise self.fail(where, f"is {d}; a node's distance to itself must be {LOCAL_DISTANCE}")
                if i != j and not LOCAL_DISTANCE < d <= MAX_DISTANCE:
                    raise self.fail(
                        where,
                        f"is {d}; distances between nodes must be {LOCAL_DISTANCE + 1}..{MAX_DISTANCE} "
                        "(Linux rejects the whole SLIT otherwise; 255 means unreachable)",
                    )
        # Required symmetric: ACPI allows asymmetric SLITs, but the scheduler's NUMA levels
        # (sched_init_numa) and the reference model assume d(a,b) == d(b,a).
        for i in range(n):
            for j in range(i + 1, n):
                if raw[i][j] != raw[j][i]:
                    raise self.fail(
                        f"distances[{j}][{i}]",
                        f"is {raw[j][i]} but distances[{i}][{j}] is {raw[i][j]}; the matrix must be symmetric",
                    )
        return tuple(tuple(row) for row in raw)


def _fmt_ranges(ranges: Iterable[tuple[int, int]]) -> str:
    return " + ".join(f"[{s:#x}, {e:#x})" for s, e in ranges) or "(none)"
