"""Order-0 and order-9 alloc+free cost: vanilla vs regions (sorting off) vs regions (sorting on).

Side by side in one run, rounds interleaved (A B C A B C ...) so machine noise spreads
over all variants. Two measurements per guest:
  pfbench   user-space page faults: mmap, touch (order 0; or THP faults, order 9), munmap
  module    regions kernels only: the test interface's "bench" (alloc_pages + __free_pages
            in a kernel loop, no fault overhead)
Prints a table of medians and ratios to vanilla (pfbench) or to sorting-off (module).

  python benchmarks/alloc_cost.py [--rounds 3] [--topology two-node]
"""

import argparse
import re
import statistics
import sys
import tempfile
from pathlib import Path

from harness import kernel, topology
from harness.session import guest
from harness.variant import Variant

VARIANTS = ("vanilla", "regions+mem_region_sort=0", "regions")
CONTROL = "/sys/kernel/debug/region_alloc_test/control"


def measure(vm, has_module: bool) -> dict[str, float]:
    out = {}
    for order, args in ((0, "-m 64 -r 20 -o 0"), (9, "-m 256 -r 20 -o 9")):
        res = vm.run(f"pfbench {args}", timeout=600, check=True).stdout
        out[f"pfbench o{order} ns/fault"] = float(re.search(r"ns_per_fault=([\d.]+)", res)[1])
    if has_module:
        for order, count in ((0, 60000), (9, 2000)):   # count <= 65536, the interface limit
            res = vm.run(f"echo 'bench nid=0 order={order} count={count}' > {CONTROL} && cat {CONTROL}",
                         timeout=600, check=True).stdout
            out[f"module o{order} ns/op"] = float(res.split()[1])
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--topology", default="two-node")
    args = p.parse_args()
    topo = topology.load(args.topology)
    builds = {f: kernel.build(f) for f in dict.fromkeys(Variant.parse(v).flavor for v in VARIANTS)}
    samples: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for v in VARIANTS:
                variant = Variant.parse(v)
                with guest(builds[variant.flavor].bzimage, topo, Path(tmp) / f"{r}-{v}",
                           append=variant.append) as vm:
                    for name, value in measure(vm, variant.flavor != "vanilla").items():
                        samples.setdefault((name, v), []).append(value)
                print(f"round {r + 1}/{args.rounds} {v}: done", file=sys.stderr)
    names = sorted({n for n, _ in samples})
    print(f"{'measure':22} " + " ".join(f"{v:>28}" for v in VARIANTS))
    for n in names:
        med = {v: statistics.median(samples[(n, v)]) for v in VARIANTS if (n, v) in samples}
        base = med.get("vanilla") or med.get("regions+mem_region_sort=0")
        cells = [f"{med[v]:12.1f} ({med[v] / base:5.3f}x)" if v in med else f"{'-':>28}" for v in VARIANTS]
        print(f"{n:22} " + " ".join(f"{c:>28}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
