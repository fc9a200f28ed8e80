"""Boot-to-ready and boot-to-ssh seconds per topology under the chosen accel, side by side.

Rounds interleave the topologies and kernels (t1/k1 t1/k2 t2/k1 ... and again) so
noise spreads evenly over everything compared.
  python benchmarks/boot_times.py [--flavor regions] [--rounds 3] [--topology NAME ...]
  python benchmarks/boot_times.py --bzimage old=PATH --bzimage new=PATH   (two kernels)
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from harness import kernel, topology
from harness.session import guest
from harness.units import fmt_size


def _kernels(args, p) -> dict[str, Path]:
    if not args.bzimage:
        return {args.flavor: kernel.build(args.flavor).bzimage}
    kernels = {}
    for spec in args.bzimage:
        label, sep, path = spec.partition("=")
        if not sep or not Path(path).is_file():
            p.error(f"--bzimage {spec}: expected LABEL=PATH of an existing bzImage")
        kernels[label] = Path(path)
    return kernels


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flavor", default="regions")
    p.add_argument("--bzimage", action="append", metavar="LABEL=PATH",
                   help="boot this kernel instead of the flavor's (repeatable)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--topology", action="append")
    args = p.parse_args()
    names = args.topology or topology.list_topologies()
    kernels = _kernels(args, p)
    ready = {(k, n): [] for k in kernels for n in names}
    ssh = {(k, n): [] for k in kernels for n in names}
    accel = "?"
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for n in names:
                for k, bz in kernels.items():
                    with guest(bz, topology.load(n), Path(tmp) / f"{r}-{n}-{k}") as vm:
                        vm.run("true", check=True)
                        ready[k, n].append(vm.record.boot_seconds)
                        ssh[k, n].append(vm.record.ssh_seconds)
                        accel = vm.record.accel
    print(f"accel {accel}, {args.rounds} rounds, medians (min-max)")
    print(f"{'kernel':10} {'topology':20} {'memory':>7} {'cpus':>4} {'ready s':>16} {'ssh s':>16}")

    def cell(xs):
        return f"{statistics.median(xs):5.2f} ({min(xs):.2f}-{max(xs):.2f})"

    for n in names:
        t = topology.load(n)
        for k in kernels:
            print(f"{k:10} {n:20} {fmt_size(t.memory_bytes):>7} {t.cpus:>4} "
                  f"{cell(ready[k, n]):>16} {cell(ssh[k, n]):>16}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
