"""How far the regions' free sum in /proc/zoneinfo strays from nr_free_pages on a busy guest.

Boots the regions kernel, starts a workload in the background and reads /proc/zoneinfo
--reads times in one guest loop. Per read and zone it compares nr_free_pages with
  locked:   the sum on the "regions:" header, taken under the zone lock (series 0002)
  lockless: the sum of the region lines, printed after the lock is dropped
and reports each one's largest gap and how many reads exceed the per-cpu vmstat bound
(vm stats threshold x CPUs, harness.checks.unfolded_vmstat_bound), the check's tolerance.
  python benchmarks/region_free_sum.py [--topology memoryless] [--reads 300] [--workload stress]
"""

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

from harness import kernel, topology, workloads
from harness.checks import unfolded_vmstat_bound
from harness.metrics import parse_zoneinfo
from harness.session import guest

SEPARATOR = "@@read"


def gaps(text: str, source: str) -> pd.DataFrame:
    """One row per populated zone of one zoneinfo read: both sums' gaps and the bound."""
    zi = parse_zoneinfo(text, source)
    zones = zi.zones[zi.zones["regions"] > 0]
    lines = zi.regions.groupby(level=[0, 1])["free"].sum()
    return pd.DataFrame({
        "locked": zones["regions_free"] - zones["nr_free_pages"],
        "lockless": lines.reindex(zones.index) - zones["nr_free_pages"],
        "bound": unfolded_vmstat_bound(zones),
    })


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flavor", default="regions")
    p.add_argument("--topology", default="memoryless")
    p.add_argument("--append", default="mem_region_size=16M")
    p.add_argument("--workload", default="stress")
    p.add_argument("--reads", type=int, default=300)
    args = p.parse_args()
    topo = topology.load(args.topology)
    bz = kernel.build(args.flavor).bzimage
    with tempfile.TemporaryDirectory() as tmp, guest(bz, topo, Path(tmp) / "vm", append=args.append) as vm:
        work = workloads.get(args.workload).command(topo, 3600)
        vm.run(f"({work}) >/dev/null 2>&1 & sleep 5", check=True)
        out = vm.run(f"i=0; while [ $i -lt {args.reads} ]; do echo {SEPARATOR}; cat /proc/zoneinfo; "
                     "i=$((i+1)); done", check=True, timeout=1800).stdout
    reads = [r for r in out.split(SEPARATOR + "\n") if r.strip()]
    table = pd.concat([gaps(r, f"read {i}") for i, r in enumerate(reads)])
    print(f"{args.flavor} {args.append} on {args.topology}, {args.workload} running: "
          f"{len(reads)} reads, {len(table)} zone samples, bound {int(table['bound'].max())} pages")
    for col in ("locked", "lockless"):
        over = (table[col].abs() > table["bound"]).sum()
        print(f"  {col:9} max |gap| {int(table[col].abs().max()):6} pages, "
              f"beyond the bound in {over} of {len(table)} samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
