"""Stress workloads as data: each renders the guest shell command for a topology."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from harness.errors import UserError
from harness.topology import Topology


@dataclass(frozen=True)
class Workload:
    """A named workload: stress-ng stressors bound per NUMA node with numactl.

    fraction: share of each node's memory the node's stressors touch.
    stressor: the stress-ng memory stressor (vm, bigheap, ...) run once per node.
    pagecache: also run a page-cache writer (the critics' case: neighbours that
    fill memory with cache undo region packing).
    """

    name: str
    description: str
    seconds: int
    fraction: float = 0.25
    stressor: str = "vm"
    pagecache: bool = False

    def command(self, topo: Topology, seconds: int | None = None) -> str:
        """One shell command that runs the workload in the guest and waits for it."""
        secs = int(seconds if seconds is not None else self.seconds)
        if secs <= 0:
            raise UserError(f"workload {self.name}: duration must be positive, not {secs}")
        jobs = []
        for node in topo.nodes:
            if not node.memory_bytes:
                continue  # a memoryless node has nothing to stress
            nbytes = int(node.memory_bytes * self.fraction) // (1 << 20)
            # CPU-less nodes only get a memory binding: their memory is used from other CPUs
            bind = f"--membind={node.id}" + (f" --cpunodebind={node.id}" if node.cpus else "")
            jobs.append(
                f"numactl {bind} stress-ng --{self.stressor} 1 --{self.stressor}-bytes {nbytes}M "
                f"--timeout {secs}s --quiet"
            )
        if self.pagecache:
            mib = max(16, int(topo.memory_bytes * self.fraction) // (1 << 20) // 2)
            loop = (f"end=$(( $(date +%s) + {secs} )); while [ $(date +%s) -lt $end ]; do "
                    f"dd if=/dev/zero of=/tmp/pagecache bs=1M count={mib} 2>/dev/null; "
                    f"cat /tmp/pagecache > /dev/null; rm -f /tmp/pagecache; done")
            jobs.append("sh -c " + shlex.quote(loop))
        if not jobs:
            raise UserError(f"topology {topo.name}: no node has memory to stress")
        # background every job, then wait for all and fail if any failed
        body = " ".join(f"{j} & pids=\"$pids $!\";" for j in jobs)
        return f"pids=''; {body} rc=0; for p in $pids; do wait $p || rc=1; done; exit $rc"


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("stress", "stress-ng vm stressor on every node, 25% of its memory", 20),
        Workload("stress-pagecache", "the stress workload plus a page-cache writer", 20,
                 pagecache=True),
        Workload("soak", "stress-ng vm stressor on every node at 40% for minutes", 180,
                 fraction=0.4),
    )
}


def get(name: str) -> Workload:
    """The workload called name; the error lists the known ones."""
    try:
        return WORKLOADS[name]
    except KeyError:
        raise UserError(f"unknown workload {name!r}; known: {', '.join(sorted(WORKLOADS))}") from None
