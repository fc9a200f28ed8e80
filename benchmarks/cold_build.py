"""Cold kernel builds: what a new machine pays before the first boot.

Builds the given flavors in order into a fresh, empty cache directory (no extracted
source, no ccache, no build trees), exactly as `harness build` would on a new machine,
and prints each build's phases and CPU time. Later flavors in the same run reuse the
source and ccache of earlier ones, as they would on that machine; pass one flavor per
run for a fully cold figure. The temporary cache is removed afterwards.
  python benchmarks/cold_build.py [--flavor vanilla] [--flavor regions] [--keep DIR]
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime, r.ru_stime


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flavor", action="append", help="flavor to build (repeatable; default vanilla)")
    p.add_argument("--keep", metavar="DIR", help="use DIR as the cache and keep it (must not exist)")
    args = p.parse_args()
    flavors = args.flavor or ["vanilla"]
    if args.keep and Path(args.keep).exists():
        p.error(f"--keep {args.keep}: already exists; a cold build needs a new directory")
    cache = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="rh-cold-"))
    env = dict(os.environ, REGION_HARNESS_CACHE=str(cache))
    rows = []
    try:
        for fl in flavors:
            u0, s0 = _cpu()
            t0 = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "harness.cli", "build", "--flavor", fl],
                                  env=env, capture_output=True, text=True)
            real = time.monotonic() - t0
            u1, s1 = _cpu()
            if proc.returncode:
                sys.stderr.write(proc.stderr[-4000:])
                print(f"{fl}: harness build failed (exit {proc.returncode})", file=sys.stderr)
                return 1
            # cmd_build prints "  metadata <path>" for the entry it built
            path = next(line.split(None, 1)[1] for line in proc.stdout.splitlines()
                        if line.strip().startswith("metadata "))
            meta = json.loads(Path(path).read_text())
            rows.append((fl, real, u1 - u0, s1 - s0, meta))
    finally:
        if not args.keep:
            shutil.rmtree(cache, ignore_errors=True)
    print(f"cold builds, {os.cpu_count()} CPUs, fresh cache {'kept at ' + str(cache) if args.keep else '(removed)'}")
    print(f"{'flavor':10} {'real':>8} {'user':>8} {'sys':>7}  {'extract':>7} {'copy+patch':>10} "
          f"{'configure':>9} {'make':>7}  ccache miss/hit")
    for fl, real, user, sys_, meta in rows:
        d, cc = meta["durations"], meta["ccache"]
        hits = cc.get("direct_cache_hit", 0) + cc.get("preprocessed_cache_hit", 0)
        print(f"{fl:10} {real:7.0f}s {user:7.0f}s {sys_:6.0f}s  {d['extract']:6.0f}s {d['patch']:9.0f}s "
              f"{d['configure']:8.0f}s {d['build']:6.0f}s  {cc.get('cache_miss', 0)}/{hits}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
