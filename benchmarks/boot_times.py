"""Boot-to-ready and boot-to-ssh seconds per topology under the chosen accel, side by side.

Rounds interleave the topologies (t1 t2 ... t1 t2 ...) so noise spreads evenly.
  python benchmarks/boot_times.py [--flavor regions] [--rounds 3] [--topology NAME ...]
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from harness import kernel, topology
from harness.session import guest


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flavor", default="regions")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--topology", action="append")
    args = p.parse_args()
    names = args.topology or topology.list_topologies()
    bz = kernel.build(args.flavor).bzimage
    ready: dict[str, list[float]] = {n: [] for n in names}
    ssh: dict[str, list[float]] = {n: [] for n in names}
    accel = "?"
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for n in names:
                with guest(bz, topology.load(n), Path(tmp) / f"{r}-{n}") as vm:
                    vm.run("true", check=True)
                    ready[n].append(vm.record.boot_seconds)
                    ssh[n].append(vm.record.ssh_seconds)
                    accel = vm.record.accel
    print(f"flavor {args.flavor}, accel {accel}, {args.rounds} rounds, medians (min-max)")
    print(f"{'topology':20} {'memory':>7} {'cpus':>4} {'ready s':>16} {'ssh s':>16}")
    for n in names:
        t = topology.load(n)
        cell = lambda xs: f"{statistics.median(xs):5.2f} ({min(xs):.2f}-{max(xs):.2f})"  # noqa: E731
        print(f"{n:20} {topology.fmt_size(t.memory_bytes):>7} {t.cpus:>4} {cell(ready[n]):>16} {cell(ssh[n]):>16}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
