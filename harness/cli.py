"""The `harness` command: a thin shell over the library (build, topology, boot, run, check, compare)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from harness.errors import CheckFailed, HarnessError, UserError



def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def cmd_build(args) -> int:
    from harness import kernel

    result = kernel.build(args.flavor, args.source, jobs=args.jobs, each_patch=args.each_patch,
                          force=args.force)
    if result.steps:
        print(kernel.format_steps(result.steps))
    state = "cache hit" if result.cached else "built"
    print(f"{args.flavor}: {state} {result.key[:16]}\n  bzImage {result.bzimage}\n"
          f"  metadata {result.directory / 'metadata.json'}")
    return 0


def cmd_topology(args) -> int:
    from harness import topology

    if args.action == "list":
        for name in topology.list_topologies():
            t = topology.load(name)
            print(f"{name:20} {t.description.splitlines()[0] if t.description else ''}")
        return 0
    if not args.name:
        raise UserError("topology show needs a topology name (see `harness topology list`)")
    print(topology.describe(topology.load(args.name)))
    return 0


def _kernel_path(args) -> Path:
    if args.kernel:
        path = Path(args.kernel)
        if not path.is_file():
            raise UserError(f"--kernel {path}: no such file (give a bzImage)")
        return path
    from harness import kernel

    return kernel.build(args.flavor, args.source).bzimage


def cmd_boot(args) -> int:
    from harness import topology
    from harness.session import guest

    topo = topology.load(args.topology)
    bz = _kernel_path(args)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix=f"rh-boot-{topo.name}-"))
    cmd = " ".join(args.cmd).strip()
    with guest(bz, topo, workdir, append=args.append, accel=args.accel) as vm:
        print(f"{vm.name}: ready in {vm.record.boot_seconds:.1f} s ({vm.record.accel}); "
              f"console log {vm.console_log}", file=sys.stderr)
        if cmd:
            res = vm.run(cmd, timeout=args.timeout)
            sys.stdout.write(res.stdout)
            sys.stderr.write(res.stderr)
            return res.status
        key = vm.ssh_key
        print(f"interactive shell; from another terminal: ssh -i {key} -p {vm.port} "
              f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@127.0.0.1",
              file=sys.stderr)
        return os.spawnvp(os.P_WAIT, "ssh", ["ssh", "-i", str(key), "-p", str(vm.port), "-t",
                                              "-o", "StrictHostKeyChecking=no",
                                              "-o", "UserKnownHostsFile=/dev/null",
                                              "-o", "LogLevel=ERROR", "root@127.0.0.1"])


def cmd_run(args) -> int:
    from harness import run as main_job

    opts = main_job.RunOptions(
        flavors=_csv(args.flavors), topologies=_csv(args.topologies), workload=args.workload,
        seconds=args.seconds, interval=args.interval, out=Path(args.out), accel=args.accel,
        source=args.source, jobs=args.jobs, append=args.append)
    run_dir, outcomes = main_job.run(opts)
    print(main_job.summary(outcomes))
    print(f"\nrun directory: {run_dir}")
    if any(o.status != "ok" for o in outcomes):
        raise CheckFailed(f"{sum(o.status != 'ok' for o in outcomes)} of {len(outcomes)} guests not ok "
                          f"(see {run_dir / 'summary.txt'})")
    return 0


def cmd_check(args) -> int:
    from harness import checks
    from harness.results import store
    from harness.run import check_vm_dir

    path = Path(args.path)
    if not path.is_dir():
        raise UserError(f"{path}: not a directory (give a run directory or one guest directory in it)")
    dirs = [path] if (path / "dmesg.txt").exists() else store.guest_dirs(path)
    if not dirs:
        raise UserError(f"{path}: no guest directories with a dmesg.txt inside")
    bad = 0
    for d in dirs:
        table = check_vm_dir(d)
        print(f"== {d.name}")
        print(checks.render(table, only_failures=not args.all))
        bad += checks.failed(table)
    if bad:
        raise CheckFailed(f"{bad} of {len(dirs)} guests differ from the model")
    return 0


def cmd_compare(args) -> int:
    from harness.results import compare

    report = compare.compare_runs(Path(args.base), Path(args.new), metrics=_csv(args.metrics))
    print(compare.render(report))
    if args.out:
        compare.write_report(report, Path(args.out))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="build (or reuse) a kernel flavor")
    b.add_argument("--flavor", default="regions", help="vanilla, regions, debug or a flavor .yaml")
    b.add_argument("--source", help="kernel tarball or tree (default: Debian linux-source-6.12)")
    b.add_argument("--each-patch", action="store_true", help="build after every patch of the series")
    b.add_argument("--jobs", type=int, help="make -j (default: nproc)")
    b.add_argument("--force", action="store_true", help="ignore the kernel cache")
    b.set_defaults(func=cmd_build)

    t = sub.add_parser("topology", help="list topologies or show one (ranges, SRAT/SLIT, QEMU argv)")
    t.add_argument("action", choices=("list", "show"))
    t.add_argument("name", nargs="?")
    t.set_defaults(func=cmd_topology)

    def vm_options(sp):
        sp.add_argument("--accel", default="auto", choices=("auto", "tcg", "kvm"))
        sp.add_argument("--source", help="kernel tarball or tree")
        sp.add_argument("--append", default="", help="extra kernel command line")

    bt = sub.add_parser("boot", help="boot a topology; run CMD (after --) or open a shell")
    bt.add_argument("topology")
    g = bt.add_mutually_exclusive_group()
    g.add_argument("--flavor", default="regions")
    g.add_argument("--kernel", help="boot this bzImage instead of building a flavor")
    bt.add_argument("--workdir", help="where console.log and the per-run files go")
    bt.add_argument("--timeout", type=float, default=600, help="seconds CMD may take")
    vm_options(bt)
    bt.set_defaults(func=cmd_boot)

    r = sub.add_parser("run", help="the main job: build, boot, stress, snapshot, check, store")
    from harness.run import DEFAULT_FLAVORS, DEFAULT_TOPOLOGIES
    r.add_argument("--flavors", default=",".join(DEFAULT_FLAVORS))
    r.add_argument("--topologies", default=",".join(DEFAULT_TOPOLOGIES))
    r.add_argument("--workload", default="stress")
    r.add_argument("--seconds", type=int, help="workload duration (default: the workload's)")
    r.add_argument("--interval", type=float, default=5.0, help="seconds between snapshots")
    r.add_argument("--out", default="runs", help="parent of the run directory")
    r.add_argument("--jobs", type=int)
    vm_options(r)
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("check", help="check a saved run (or one guest dir) against the model, offline")
    c.add_argument("path")
    c.add_argument("--all", action="store_true", help="print every row, not only differences")
    c.set_defaults(func=cmd_check)

    cp = sub.add_parser("compare", help="compare the metrics of two runs (regression report)")
    cp.add_argument("base")
    cp.add_argument("new")
    cp.add_argument("--metrics", default="", help="comma-separated metric names (default: a standard set)")
    cp.add_argument("--out", help="write the report (CSV + text) into this directory")
    cp.set_defaults(func=cmd_compare)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # everything after "--" is the guest command of `harness boot`
    cmd = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    args = parser().parse_args(argv)
    args.cmd = cmd
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("paramiko").setLevel(logging.WARNING)  # one line per ssh connect otherwise
    try:
        return args.func(args)
    except HarnessError as exc:
        print(f"harness {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
