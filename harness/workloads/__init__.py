"""Workloads as definitions: each renders its guest jobs for a topology and declares what it needs.

A workload is an instance of a Workload subclass in WORKLOADS. It says which programs
it needs in the guest image, its default duration and whether it binds per NUMA node,
and renders one shell job per thing that runs in parallel; command() runs them all in
the background and fails if any of them failed. stress-ng, a dd loop, fio or a C
helper are workloads alike: a new kind is one subclass, a new workload one entry.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from harness.errors import UserError
from harness.guest.disk import MOUNTPOINT, scratch_size
from harness.guest.image import guest_programs
from harness.topology import Node, Topology
from harness.units import MiB


@dataclass(frozen=True)
class Workload(ABC):
    name: str
    description: str
    #: default duration in seconds
    seconds: int

    #: programs (besides busybox's applets) the guest image must carry
    needs: ClassVar[frozenset[str]] = frozenset()
    #: True when the jobs are bound to NUMA nodes (numactl --membind/--cpunodebind)
    per_node: ClassVar[bool] = False

    @abstractmethod
    def jobs(self, topo: Topology, seconds: int) -> list[str]:
        """Shell commands that run in parallel for ``seconds`` on ``topo``."""

    def setup(self, topo: Topology) -> str:
        """A shell command run once before the jobs start (it exits non-zero to stop the workload); none by default."""
        return ""

    def command(self, topo: Topology, seconds: int | None = None) -> str:
        """One guest shell command that runs every job in the background and waits for all."""
        secs = int(seconds if seconds is not None else self.seconds)
        if secs <= 0:
            raise UserError(f"workload {self.name}: duration must be positive, not {secs}")
        missing = sorted(self.needs - guest_programs())
        if missing:
            raise UserError(f"workload {self.name}: the guest image has no {', '.join(missing)}; "
                            "add it to harness/guest/image.py (PROGRAMS or HELPERS)")
        jobs = self.jobs(topo, secs)
        if not jobs:
            raise UserError(f"workload {self.name}: nothing to run on topology {topo.name}")
        body = " ".join(f"{j} & pids=\"$pids $!\";" for j in jobs)
        setup = self.setup(topo)
        first = f"{{ {setup}; }} || exit 1; " if setup else ""
        return f"{first}pids=''; {body} rc=0; for p in $pids; do wait $p || rc=1; done; exit $rc"


def node_binding(node_id: int, has_cpus: bool) -> str:
    """numactl options for a job on one node; a CPU-less node only gets the memory binding."""
    return f"--membind={node_id}" + (f" --cpunodebind={node_id}" if has_cpus else "")


@dataclass(frozen=True)
class PerNode(Workload):
    """One job per node with memory, bound to it with numactl (a memoryless node has nothing to load)."""

    per_node: ClassVar[bool] = True

    @abstractmethod
    def node_job(self, node: Node, seconds: int) -> str:
        """The command for one node, without its numactl binding."""

    def jobs(self, topo: Topology, seconds: int) -> list[str]:
        return [f"numactl {node_binding(n.id, bool(n.cpus))} {self.node_job(n, seconds)}"
                for n in topo.nodes if n.memory_bytes]


@dataclass(frozen=True)
class StressNg(PerNode):
    """One stress-ng memory stressor per node with memory, touching ``fraction`` of the node."""

    needs: ClassVar[frozenset[str]] = frozenset({"stress-ng", "numactl"})
    fraction: float = 0.25
    stressor: str = "vm"

    def node_job(self, node: Node, seconds: int) -> str:
        mib = int(node.memory_bytes * self.fraction) // MiB
        return f"stress-ng --{self.stressor} 1 --{self.stressor}-bytes {mib}M --timeout {seconds}s --quiet"


@dataclass(frozen=True)
class PageCacheWriter(Workload):
    """A dd loop writing and reading back a file of ``fraction``/2 of memory: page-cache pressure."""

    fraction: float = 0.25  # dd, cat, date: busybox, so it needs nothing more

    def jobs(self, topo: Topology, seconds: int) -> list[str]:
        mib = max(16, int(topo.memory_bytes * self.fraction) // MiB // 2)
        loop = (f"end=$(( $(date +%s) + {seconds} )); while [ $(date +%s) -lt $end ]; do "
                f"dd if=/dev/zero of=/tmp/pagecache bs=1M count={mib} 2>/dev/null; "
                f"cat /tmp/pagecache > /dev/null; rm -f /tmp/pagecache; done")
        return ["sh -c " + shlex.quote(loop)]


@dataclass(frozen=True)
class Churn(PerNode):
    """The original series' experiment shape: per node, threads allocate, touch and free large chunks.

    The original ran ebizzy with 256 MiB chunks and 32 threads per instance on large
    machines; here the chunk is scaled to the node (``chunk_share`` of its memory, at
    most 256 MiB, at least 4 MiB) and the threads to its CPUs, so the chunks in flight
    (threads x kept) cover about ``fraction`` of the node.
    """

    needs: ClassVar[frozenset[str]] = frozenset({"churn", "numactl"})
    fraction: float = 0.5
    chunk_share: float = 1 / 32
    kept: int = 2

    def node_job(self, node: Node, seconds: int) -> str:
        chunk = max(4, min(256, int(node.memory_bytes * self.chunk_share) // MiB))
        threads = max(1, int(node.memory_bytes * self.fraction) // MiB // (chunk * self.kept))
        return f"churn -t {min(threads, 32)} -c {chunk} -k {self.kept} -s {seconds}"


@dataclass(frozen=True)
class FileTree(Workload):
    """A metadata- and data-heavy file neighbour: many small files written, found and read, beside one large one.

    The reviewers' "find plus a large job" case. The guest has no disk, so the files
    live in tmpfs (shmem pages: movable, like page cache, and never written back).
    """

    fraction: float = 0.15
    files: int = 1000  # sh, dd, find, xargs, cat: busybox, so it needs nothing more

    def jobs(self, topo: Topology, seconds: int) -> list[str]:
        mib = max(16, int(topo.memory_bytes * self.fraction) // MiB)
        loop = (f"end=$(( $(date +%s) + {seconds} )); d=/tmp/filetree; while [ $(date +%s) -lt $end ]; do "
                f"mkdir -p $d; i=0; while [ $i -lt {self.files} ]; do echo $i > $d/f$i; i=$((i+1)); done; "
                f"dd if=/dev/zero of=$d/large bs=1M count={mib} 2>/dev/null; "
                f"find $d -type f | xargs cat > /dev/null; rm -rf $d; done")
        return ["sh -c " + shlex.quote(loop)]


@dataclass(frozen=True)
class Compactor(Workload):
    """Full compaction of every node (/proc/sys/vm/compact_memory) every ``period`` seconds.

    A whole-zone compaction for no order: the pass that fills zones from the bottom while
    regions are on (kernel-patches 0010). Next to the churn it shows what compaction does
    to the wholly free regions.
    """

    period: int = 5  # sh, sleep, date: busybox, so it needs nothing more

    def jobs(self, topo: Topology, seconds: int) -> list[str]:
        loop = (f"end=$(( $(date +%s) + {seconds} )); passes=0; while [ $(date +%s) -lt $end ]; do "
                f"sleep {self.period}; echo 1 > /proc/sys/vm/compact_memory || exit 1; passes=$((passes+1)); "
                "done; echo \"compactor: $passes full compactions\"")
        return ["sh -c " + shlex.quote(loop)]


@dataclass(frozen=True)
class MemoryHotplug(Workload):
    """Offline and online memory blocks through sysfs, one block at a time, round robin.

    Every online block but the first (boot memory the kernel never gives up) is tried in
    turn: a block the kernel refuses to offline (unmovable pages in it: EBUSY), or does not
    offline within ``give_up`` seconds (offlining retries migration while the neighbours
    allocate; the timeout's signal ends the attempt), is counted and skipped; a block that
    went offline must come back online after ``pause`` seconds, or the job fails. Needs
    memory hot-remove in the kernel (base.config); prints its counts.
    """

    pause: float = 0.5  # sh, sleep, ls, sed, cat, timeout: busybox, so it needs nothing more
    give_up: int = 5
    sysfs: str = "/sys/devices/system/memory"

    def jobs(self, topo: Topology, seconds: int) -> list[str]:
        sysfs = self.sysfs
        loop = (f"end=$(( $(date +%s) + {seconds} )); cycles=0; refused=0; "
                f"blocks=$(ls -d {sysfs}/memory[0-9]* 2>/dev/null | sed 's/.*memory//' | sort -n | sed 1d); "
                "[ -n \"$blocks\" ] || { echo 'hotplug: no memory block to offline: "
                "the kernel needs MEMORY_HOTPLUG and MEMORY_HOTREMOVE' >&2; exit 1; }; "
                "while [ $(date +%s) -lt $end ]; do for b in $blocks; do "
                "[ $(date +%s) -lt $end ] || break; "
                f"f={sysfs}/memory$b/state; [ \"$(cat $f)\" = online ] || continue; "
                f"if timeout {self.give_up} sh -c \"echo offline > $f\" 2>/dev/null; then sleep {self.pause}; "
                "echo online > $f || { echo \"hotplug: memory$b did not come back online\" >&2; exit 1; }; "
                "cycles=$((cycles+1)); else refused=$((refused+1)); fi; done; done; "
                "echo \"hotplug: $cycles offline-online cycles, $refused refused or given up\"")
        return ["sh -c " + shlex.quote(loop)]


@dataclass(frozen=True)
class ThpChallenge(Workload):
    """mmtests' thpchallenge shape: page-cache writers over more than memory plus THP faults over most of it.

    Per node with memory, bound to it: a writer of random blocks into files of
    ``write_factor`` times the node's memory on the guest's scratch disk (so the page
    cache fills the node and reclaim frees it in no order), and a faulter that maps
    ``fault_fraction`` of the node with MADV_HUGEPAGE and faults it 2 MiB at a time, over
    and over: each fault needs a free pageblock-sized block, which the page cache has
    scattered, so the kernel compacts or falls back (vmstat thp_fault_alloc/fallback,
    compact_stall). The files stay when it ends; the next run removes them first. Uses
    the thpchallenge C helper.
    """

    needs: ClassVar[frozenset[str]] = frozenset({"thpchallenge", "numactl"})
    per_node: ClassVar[bool] = True
    write_factor: float = 1.5
    fault_fraction: float = 0.6
    mountpoint: str = MOUNTPOINT

    def setup(self, topo: Topology) -> str:
        mnt, space = self.mountpoint, int(topo.memory_bytes * self.write_factor) // MiB
        attached = scratch_size(topo.memory_bytes) // MiB
        return (f"grep -q ' {mnt} ' /proc/mounts || {{ echo '{self.name}: no scratch disk at {mnt}: "
                "the harness attaches one to every guest (harness/guest/disk.py) and the kernel needs "
                "BLOCK, VIRTIO_BLK and EXT2_FS (qemu-configs/kernel/base.config)' >&2; exit 1; }; "
                f"rm -rf {mnt}/node*; free=$(df -m {mnt} | awk 'NR==2 {{print $4}}'); "
                f"[ \"$free\" -ge {space} ] || {{ echo \"{self.name}: {mnt} has $free MiB free, "
                f"the writers need {space} (a disk of {attached} MiB is attached)\" >&2; exit 1; }}")

    def jobs(self, topo: Topology, seconds: int) -> list[str]:
        jobs = []
        for n in topo.nodes:
            if not n.memory_bytes:
                continue
            bind = f"numactl {node_binding(n.id, bool(n.cpus))}"
            write = int(n.memory_bytes * self.write_factor) // MiB
            fault = int(n.memory_bytes * self.fault_fraction) // MiB
            where = f"{self.mountpoint}/node{n.id}"
            writer = f"mkdir -p {where} && {bind} thpchallenge write {where} {write} {seconds}"
            jobs.append("sh -c " + shlex.quote(writer))
            jobs.append(f"{bind} thpchallenge fault {fault} {seconds}")
        return jobs


@dataclass(frozen=True)
class Together(Workload):
    """Several workloads at once (a neighbour next to the main load)."""

    parts: tuple[Workload, ...] = ()

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]  # what the parts need
        return frozenset().union(*(p.needs for p in self.parts))

    @property
    def per_node(self) -> bool:  # type: ignore[override]
        return any(p.per_node for p in self.parts)

    def jobs(self, topo: Topology, seconds: int) -> list[str]:
        return [j for p in self.parts for j in p.jobs(topo, seconds)]

    def setup(self, topo: Topology) -> str:
        return "; ".join(s for s in (p.setup(topo) for p in self.parts) if s)


_STRESS = StressNg("stress", "stress-ng vm stressor on every node, 25% of its memory", 20)

WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    _STRESS,
    Together("stress-pagecache", "the stress workload plus a page-cache writer", 20,
             parts=(_STRESS, PageCacheWriter("pagecache-writer", "dd loop over a quarter of memory", 20))),
    StressNg("soak", "stress-ng vm stressor on every node at 40% for minutes", 180, fraction=0.4),
    Churn("churn", "threads allocating, touching and freeing large chunks on every node (ebizzy's shape)", 30),
    FileTree("pagecache", "many small files found and read beside a large one, in tmpfs", 30),
    # together they stay under about half of memory: dropbear and the snapshots need room
    Together("churn-pagecache", "churn plus the file neighbour: the consolidation experiment's default", 30,
             parts=(Churn("churn", "", 30, fraction=0.4), FileTree("pagecache", "", 30, fraction=0.1))),
    Together("churn-pagecache-compact", "churn-pagecache with full compaction every 5 s beside it", 30,
             parts=(Churn("churn", "", 30, fraction=0.4), FileTree("pagecache", "", 30, fraction=0.1),
                    Compactor("compactor", "", 30))),
    ThpChallenge("thp-challenge", "page-cache writers over 1.5x memory on the scratch disk plus THP faults over "
                 "60% of it, per node (mmtests' thpchallenge shape)", 30),
    Together("hotplug", "memory blocks offlined and onlined in turn while the stress workload allocates", 30,
             parts=(_STRESS, MemoryHotplug("offline-online", "", 30))),
)}


def get(name: str) -> Workload:
    """The workload called name; the error lists the known ones."""
    try:
        return WORKLOADS[name]
    except KeyError:
        raise UserError(f"unknown workload {name!r}; known: {', '.join(sorted(WORKLOADS))}") from None
