"""Save real guest captures for the unit tests: tests/data/captures/<kernel>-<topology>/.

Boots a kernel on each topology and writes dmesg.txt, config, firmware-memmap/ and one
quiescent snapshot (zoneinfo, buddyinfo, pagetypeinfo, vmstat, node*-*, mem_regions/*).
  python tests/data/capture.py --flavor regions [--topology two-node ...] [--append mem_region_size=16M]
      [--workload churn --seconds 30] [--run 'guest shell command']
      (snapshot after a workload and/or a command run beside it, not right after boot)
  python tests/data/capture.py --kernel /boot/vmlinuz-6.1 --name debian-6.1 --config FILE
  python tests/data/capture.py --console --kernel vmlinuz-6.1.0-NN-cloud-amd64 \
      --config config-6.1.0-NN-cloud-amd64 --name debian-6.1

--console is for kernels whose network driver is a module (Debian's virtio_net=m: the
guest initramfs has no modules, so ssh never comes up). The guest boots with
rh.poweroff=1 and runs an /etc/rh-cmd that prints every file on the serial console
between marker lines, then powers off; the files are cut out of console.log.
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from harness import kernel, topology, workloads
from harness.guest import build_initramfs
from harness.kernel import cache_root
from harness.metrics import capture_name, live_paths
from harness.session import DEFAULT_BOOT_TIMEOUT, guest
from harness.vm import VM
from harness.vm.snapshots import take_snapshot

OUT = Path(__file__).resolve().parent / "captures"


def _save(files: dict[str, str], config: Path | None, staging: Path, dest: Path) -> None:
    """Write the capture in a staging dir, then replace dest with it."""
    for rel, text in files.items():
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_text(text)
    if config:
        shutil.copy(config, staging / "config")
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(staging, dest)


def capture(bzimage: Path, config: Path | None, name: str, topo_name: str, append: str = "",
            workload: str | None = None, seconds: int = 30, run: str | None = None) -> Path:
    topo = topology.load(topo_name)
    dest = OUT / f"{name}-{topo_name}"
    with tempfile.TemporaryDirectory() as tmp, guest(bzimage, topo, Path(tmp) / "vm", append=append) as vm:
        jobs = [workloads.get(workload).command(topo, seconds)] if workload else []
        jobs += [run] if run else []
        if jobs:
            # each job's own status: a bare `wait` would be 0 whatever the jobs returned
            started = " ".join(f"({j}) & p{i}=$!;" for i, j in enumerate(jobs))
            waited = " && ".join(f"wait $p{i}" for i in range(len(jobs)))
            vm.run(f"{started} {waited}", check=True, timeout=seconds + 600)
            vm.run("sleep 5", check=True)  # kcompactd's periods after the workload's frees
        if vm.run("test -e /sys/kernel/debug/region_alloc_test/control").status == 0:
            # every per-cpu page back in the buddy lists: the region files agree with each other
            vm.run("echo drain > /sys/kernel/debug/region_alloc_test/control", check=True)
        snap = take_snapshot(vm, "capture")
        files = dict(snap.files)
        files["dmesg.txt"] = vm.run("dmesg", check=True).stdout
        memmap = vm.run("cd /sys/firmware/memmap 2>/dev/null && for d in *; do "
                        "for f in start end type; do echo \"$d/$f $(cat $d/$f)\"; done; done").stdout
        for line in memmap.splitlines():
            path, _, value = line.partition(" ")
            files[f"firmware-memmap/{path}"] = value + "\n"
        _save(files, config, Path(tmp) / "out", dest)
    return dest


# console mode: every content line gets CONSOLE_LINE in front, so that no line of a
# printed file (dmesg may hold a "WARNING:" line) starts like a kernel report, and
# kernel messages that still reach the console are told apart from file contents
CONSOLE_BEGIN = "@@@rh-begin "
CONSOLE_END = "@@@rh-end"
CONSOLE_LINE = "|"
CONSOLE_DONE = "@@@rh-done"


def console_script() -> str:
    """The /etc/rh-cmd that prints dmesg, the snapshot files and the firmware memmap."""
    globs = " ".join(live_paths())
    return f"""#!/bin/sh
# keep kernel messages off the console while the files are printed
echo 1 > /proc/sys/kernel/printk
echo 1 > /proc/sys/vm/stat_refresh 2>/dev/null
show() {{
    echo '{CONSOLE_BEGIN}'"$1"
    sed 's/^/{CONSOLE_LINE}/' "$2"
    echo '{CONSOLE_END}'
}}
dmesg > /tmp/dmesg.txt
show dmesg.txt /tmp/dmesg.txt
for f in {globs}; do [ -r "$f" ] && show "$f" "$f"; done
if [ -d /sys/firmware/memmap ]; then
    for d in /sys/firmware/memmap/*; do
        for f in start end type; do show "firmware-memmap/${{d##*/}}/$f" "$d/$f"; done
    done
fi
echo '{CONSOLE_DONE}'
"""


def split_console(text: str) -> dict[str, str]:
    """{capture name: content} from a console log holding the script's output."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    done = False
    for line in text.split("\n"):
        if line.startswith(CONSOLE_BEGIN):
            name = line[len(CONSOLE_BEGIN):].strip()
            if name.startswith("/"):
                name = capture_name(name)
            current = files.setdefault(name, [])
        elif line.startswith(CONSOLE_END):
            current = None
        elif line.startswith(CONSOLE_DONE):
            done = True
        elif current is not None and line.startswith(CONSOLE_LINE):
            current.append(line[len(CONSOLE_LINE):])
        elif current is not None and line.strip():
            raise ValueError(f"console line inside a file without the {CONSOLE_LINE!r} prefix "
                             f"(a kernel message?): {line!r}")
    if not done:
        raise ValueError(f"the capture script did not finish ({CONSOLE_DONE!r} missing)")
    return {name: "\n".join(lines) + "\n" for name, lines in files.items()}


def capture_console(bzimage: Path, config: Path | None, name: str, topo_name: str,
                    timeout: float = 600) -> Path:
    """Like capture(), without ssh: the files come over the serial console."""
    topo = topology.load(topo_name)
    dest = OUT / f"{name}-{topo_name}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "vm"
        work.mkdir(parents=True)
        initrd = build_initramfs(cache_root() / "guest", dest=work / "initrd.cpio",
                                 extra_files={"etc/rh-cmd": console_script().encode()})
        vm = VM(bzimage, initrd, work, topology.qemu_args(topo, work), append="rh.poweroff=1",
                boot_timeout=DEFAULT_BOOT_TIMEOUT, name=topo_name, cache_dir=cache_root())
        with vm:
            if vm.wait_exit(timeout) is None:
                raise RuntimeError(f"{topo_name}: guest did not power off within {timeout} s:\n"
                                   + vm.console_tail())
            vm.check_console()
        files = split_console((work / "console.log").read_text(errors="replace"))
        _save(files, config, Path(tmp) / "out", dest)
    return dest


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flavor", default="vanilla")
    p.add_argument("--kernel", help="boot this bzImage instead of building --flavor")
    p.add_argument("--config", help=".config of --kernel")
    p.add_argument("--name", help="capture name prefix (default: 6.12-<flavor>)")
    p.add_argument("--topology", action="append", help="default: every shipped topology")
    p.add_argument("--append", default="", help="extra kernel command line (ssh captures only)")
    p.add_argument("--workload", help="run this workload (harness.workloads) before the snapshot")
    p.add_argument("--seconds", type=int, default=30, help="the workload's duration")
    p.add_argument("--run", help="a guest shell command run beside the workload, before the snapshot")
    p.add_argument("--console", action="store_true",
                   help="read the files over the serial console, not ssh (no guest network needed)")
    args = p.parse_args()
    if args.kernel:
        bz, config = Path(args.kernel), Path(args.config) if args.config else None
        name = args.name or bz.name
    else:
        b = kernel.build(args.flavor)
        bz, config, name = b.bzimage, b.config_path, args.name or f"6.12-{args.flavor}"
    for t in args.topology or topology.list_topologies():
        if args.console:
            print(capture_console(bz, config, name, t), flush=True)
        else:
            print(capture(bz, config, name, t, args.append, args.workload, args.seconds, args.run), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
