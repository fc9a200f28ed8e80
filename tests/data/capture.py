"""Save real guest captures for the unit tests: tests/data/captures/<kernel>-<topology>/.

Boots a kernel on each topology and writes dmesg.txt, config, firmware-memmap/ and one
quiescent snapshot (zoneinfo, buddyinfo, pagetypeinfo, vmstat, node*-*, mem_regions/*).
  python tests/data/capture.py --flavor regions [--topology two-node ...]
  python tests/data/capture.py --kernel /boot/vmlinuz-6.1 --name debian-6.1 --config FILE
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from harness import kernel, topology
from harness.metrics.collect import take_snapshot
from harness.session import guest

OUT = Path(__file__).resolve().parent / "captures"


def capture(bzimage: Path, config: Path | None, name: str, topo_name: str) -> Path:
    topo = topology.load(topo_name)
    dest = OUT / f"{name}-{topo_name}"
    with tempfile.TemporaryDirectory() as tmp, guest(bzimage, topo, Path(tmp) / "vm") as vm:
        snap = take_snapshot(vm, "capture")
        files = dict(snap.files)
        files["dmesg.txt"] = vm.run("dmesg", check=True).stdout
        memmap = vm.run("cd /sys/firmware/memmap 2>/dev/null && for d in *; do "
                        "for f in start end type; do echo \"$d/$f $(cat $d/$f)\"; done; done").stdout
        for line in memmap.splitlines():
            path, _, value = line.partition(" ")
            files[f"firmware-memmap/{path}"] = value + "\n"
        tmp_dest = Path(tmp) / "out"
        for rel, text in files.items():
            (tmp_dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_dest / rel).write_text(text)
        if config:
            shutil.copy(config, tmp_dest / "config")
        shutil.rmtree(dest, ignore_errors=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(tmp_dest, dest)
    return dest


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flavor", default="vanilla")
    p.add_argument("--kernel", help="boot this bzImage instead of building --flavor")
    p.add_argument("--config", help=".config of --kernel")
    p.add_argument("--name", help="capture name prefix (default: 6.12-<flavor>)")
    p.add_argument("--topology", action="append", help="default: every shipped topology")
    args = p.parse_args()
    if args.kernel:
        bz, config = Path(args.kernel), Path(args.config) if args.config else None
        name = args.name or bz.name
    else:
        b = kernel.build(args.flavor)
        bz, config, name = b.bzimage, b.config_path, args.name or f"6.12-{args.flavor}"
    for t in args.topology or topology.list_topologies():
        print(capture(bz, config, name, t))
    return 0


if __name__ == "__main__":
    sys.exit(main())
