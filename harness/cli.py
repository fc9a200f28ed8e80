"""The `harness` command: a thin shell over the library (build, topology, boot, run, check, compare)."""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from harness.errors import CheckFailed, HarnessError, Interrupted, UserError


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _variants(args) -> dict[str, tuple[str, ...]]:
    """--variants as an options keyword, or nothing: the options class holds the default."""
    return {"variants": _csv(args.variants)} if args.variants else {}


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
    from harness.vm.numa import describe

    print(describe(topology.load(args.name)))
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
    from harness.session import guest, interactive_ssh_argv

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
            return int(res.status)
        argv = interactive_ssh_argv(vm)
        print("interactive shell; from another terminal: " + " ".join(argv), file=sys.stderr)
        return os.spawnvp(os.P_WAIT, argv[0], argv)


#: `harness run` options that define the matrix: with --resume they come from the run
_MATRIX_ARGS = ("flavors", "topologies", "workload", "seconds", "interval", "out", "region_size", "repeat",
                "accel", "source", "append", "shard")


def cmd_run(args) -> int:
    from harness import run as main_job
    from harness.executors import ExecOptions

    executor = ExecOptions(parallel=args.parallel, scheduler=args.scheduler,
                           ssh_hosts=_csv(args.ssh_hosts) if args.ssh_hosts is not None else ())
    if args.ssh_hosts is not None and not executor.ssh_hosts:
        raise UserError("--ssh-hosts: give the worker hosts comma-separated, e.g. --ssh-hosts lab1,lab2")
    if args.resume:
        given = [f"--{a.replace('_', '-')}" for a in _MATRIX_ARGS if getattr(args, a) is not None]
        if given:
            raise UserError(f"--resume takes the matrix from the run: drop {', '.join(given)}")
        run_dir, outcomes = main_job.resume(Path(args.resume), executor=executor)
    else:
        defaults = main_job.RunOptions()
        opts = main_job.RunOptions(
            flavors=_csv(args.flavors) if args.flavors is not None else defaults.flavors,
            topologies=_csv(args.topologies) if args.topologies is not None else defaults.topologies,
            workload=args.workload or defaults.workload, seconds=args.seconds,
            interval=args.interval if args.interval is not None else defaults.interval,
            out=Path(args.out or defaults.out), accel=args.accel or defaults.accel, source=args.source,
            jobs=args.jobs, append=args.append or "", repeat=args.repeat if args.repeat is not None else 1,
            region_size=(args.region_size or None) if args.region_size is not None else defaults.region_size)
        run_dir, outcomes = main_job.run(opts, executor=executor, shard=args.shard)
    print(main_job.summary(outcomes))
    print("\n" + main_job.headline(outcomes, run_dir))
    print(f"\nrun directory: {run_dir}")
    main_job.raise_for_outcomes(outcomes, run_dir)
    return 0


def cmd_selftests(args) -> int:
    from harness import selftests

    if args.list:
        for t in selftests.SELFTESTS.values():
            mark = "*" if t.name in selftests.DEFAULT else " "
            print(f"{mark} {t.name:22} {t.command():40} {t.why}")
        print("\n* the default set. Left out of the registry, and why:")
        for name, why in selftests.LEFT_OUT.items():
            print(f"  {name}: {why}")
        return 0
    defaults = selftests.SelftestsOptions()
    opts = selftests.SelftestsOptions(
        variants=_csv(args.flavors) if args.flavors is not None else defaults.variants,
        topologies=_csv(args.topology) if args.topology is not None else defaults.topologies,
        tests=_csv(args.tests) if args.tests is not None else None,
        out=Path(args.out or defaults.out), accel=args.accel, source=args.source,
        retries=args.retries if args.retries is not None else defaults.retries, parallel=args.parallel)
    run_dir, results, verdicts = selftests.run_selftests(opts)
    print((run_dir / "summary.txt").read_text(), end="")
    print(f"\nrun directory: {run_dir}")
    selftests.raise_for_verdicts(run_dir, results, verdicts)
    return 0


def cmd_merge(args) -> int:
    from harness import merge
    from harness import run as main_job

    out, outcomes, missing = merge.merge_runs([Path(r) for r in args.runs], Path(args.out))
    print(main_job.summary(outcomes))
    print(f"\nmerged run: {out} ({len(outcomes)} guests from {len(args.runs)} runs)")
    if missing:
        from harness.errors import InfraError

        raise InfraError(f"{len(missing)} jobs of the matrix are in none of the runs "
                         f"({', '.join(missing[:8])}{', ...' if len(missing) > 8 else ''}): "
                         "merge every shard, or `harness run --resume` the shard that lacks them")
    main_job.raise_for_outcomes(outcomes, out)
    return 0


def cmd_check(args) -> int:
    from harness import checks
    from harness.results.offline import check_saved

    results = check_saved(Path(args.path))
    for r in results:
        print(f"== {r.directory.name}")
        if r.table is None:
            print(f"cannot check: {r.error}")
        else:
            print(checks.render(r.table, only_failures=not args.all))
    unreadable = [r for r in results if r.error is not None]
    if unreadable:
        raise UserError(f"{len(unreadable)} of {len(results)} guests could not be checked: "
                        + "; ".join(f"{r.directory.name}: {str(r.error).splitlines()[0]}" for r in unreadable))
    bad = sum(r.failed for r in results)
    if bad:
        raise CheckFailed(f"{bad} of {len(results)} guests differ from the model")
    return 0


def cmd_compare(args) -> int:
    from harness.results import compare

    metrics = _csv(args.metrics)
    if args.new is not None:
        if args.base_variant or args.new_variant:
            raise UserError("compare: give BASE NEW (two runs) or RUN --base-variant X --new-variant Y, not both")
        report = compare.compare_runs(Path(args.base), Path(args.new), metrics, alpha=args.alpha,
                                      allow_failed_base=args.allow_failed_base)
    elif args.base_variant and args.new_variant:
        report = compare.compare_variants(Path(args.base), args.base_variant, args.new_variant, metrics,
                                          alpha=args.alpha)
    else:
        raise UserError("compare: give two runs (BASE NEW) or one run with --base-variant and --new-variant")
    print(compare.render(report))
    if args.out:
        compare.write_report(report, Path(args.out))
    bad = compare.failures(report)
    if not bad.empty:
        raise CheckFailed(f"{len(bad)} regression(s) or missing result(s): "
                          + ", ".join(f"{r.topology}/{r.metric}" for r in bad.itertuples()))
    return 0


def cmd_calibrate(args) -> int:
    from harness import run as main_job
    from harness.fs import write_csv
    from harness.results import calibrate, compare, stats
    from harness.results.metrics import METRICS
    from harness.table import render_table

    if args.from_run:
        run_dir = Path(args.from_run)
    else:
        opts = main_job.RunOptions(flavors=(args.variant,), topologies=(args.topology,), workload=args.workload,
                                   seconds=args.seconds, interval=args.interval, out=Path(args.out),
                                   accel=args.accel, repeat=args.repeat)
        run_dir, outcomes = main_job.run(opts)
        main_job.raise_for_outcomes(outcomes, run_dir)
    _, samples = compare.load_run(run_dir)
    variants = sorted({s.variant for s in samples})
    if len(variants) != 1:
        raise UserError(f"{run_dir}: calibration needs repetitions of one variant, the run has {', '.join(variants)}")
    tables = []
    for topo in sorted({s.topology for s in samples}):
        values = {m: [s.values[m] for s in samples if s.topology == topo] for m in METRICS}
        specs = {m: stats.MetricSpec(METRICS[m].better, METRICS[m].noise_floor) for m in METRICS}
        table, family = calibrate.calibration_table(values, specs, alpha=args.alpha, shift=args.shift)
        tables.append(table.assign(topology=topo, family_false_alarm_rate=family))
        rows: list[tuple[object, ...]] = [tuple(table.columns)]
        rows += [tuple(_cell(v) for v in r) for r in table.itertuples(index=False)]
        print(f"== {variants[0]} on {topo}: A/A over random half splits, alpha {args.alpha}; "
              f"share of splits with any alarm: {family:.3f}")
        print(render_table(rows, right=set(range(1, len(table.columns)))))
    import pandas as pd

    write_csv(run_dir / "calibration.csv", pd.concat(tables, ignore_index=True))
    print(f"\ncalibration: {run_dir / 'calibration.csv'}")
    return 0


def cmd_bisect(args) -> int:
    from harness.bisect import BisectOptions, bisect

    opts = BisectOptions(base=Path(args.base), metric=args.metric, variant=args.variant, topology=args.topology,
                         workload=args.workload, seconds=args.seconds, repeat=args.repeat, source=args.source)
    patch, tried = bisect(opts, progress=lambda m: print(m, file=sys.stderr))
    for t in tried:
        print(f"prefix {t['prefix']} ({t['patch']}): {t['verdict']} {t['direction']} median {t['median']:.4g}")
    print(f"first bad patch: {patch}")
    return 0


def _cell(v: object) -> object:
    """A calibration table cell: '-' for no value, floats to 4 digits."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else v


def cmd_report(args) -> int:
    from harness.results.report import write_report

    path = write_report(Path(args.run), Path(args.out) if args.out else None,
                        Path(args.against) if args.against else None)
    print(f"report: {path}")
    return 0


def cmd_experiment(args) -> int:
    from harness import experiments
    from harness.results import compare

    opts = experiments.ConsolidationOptions(
        **_variants(args), topology=args.topology, region_size=args.region_size, repeat=args.repeat,
        workload=args.workload, seconds=args.seconds, out=Path(args.out), accel=args.accel, source=args.source)
    if args.from_run:
        run_dir = Path(args.from_run)
        if not (run_dir / "metadata.json").is_file():
            raise UserError(f"--from {run_dir}: not a run directory (no metadata.json)")
        _samples, table, verdicts = experiments.analyze(run_dir, opts.variants)
    else:
        run_dir, _samples, table, verdicts = experiments.consolidation(opts)
    print(experiments.render(table))
    if verdicts is not None:
        print("\n" + compare.render(verdicts))
    print(f"\nsamples: {run_dir / 'consolidation.csv'}")
    bad = compare.failures(verdicts) if verdicts is not None else None
    if bad is not None and not bad.empty:
        raise CheckFailed(f"{len(bad)} regression(s) or missing result(s) against {opts.variants[0]}: "
                          + ", ".join(f"{r.new}/{r.metric}" for r in bad.itertuples()))
    return 0


def cmd_bench(args) -> int:
    from harness import bench

    opts = bench.CostOptions(**_variants(args), topology=args.topology,
                             orders=bench.parse_orders(args.orders), repeat=args.repeat,
                             pfbench=not args.no_pfbench, out=Path(args.out) if args.out else None,
                             source=args.source)
    table = bench.run_cost(opts, progress=lambda m: print(m, file=sys.stderr))
    summary = bench.summarize(table, opts.variants)
    print(bench.render(summary, opts.variants))
    if args.out:
        print(f"\nsamples: {Path(args.out) / 'cost.csv'}")
    shaky = summary[~summary["deterministic"]]
    if not shaky.empty:
        print(f"{len(shaky)} figure(s) not deterministic within {bench.DETERMINISM:.1%} over {opts.repeat} "
              "repeats (marked above): compare them only within one boot")
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
    r.add_argument("--flavors", help=f"variants, comma-separated (default {','.join(DEFAULT_FLAVORS)})")
    r.add_argument("--topologies", help=f"comma-separated (default {','.join(DEFAULT_TOPOLOGIES)})")
    r.add_argument("--workload", help="a workload name (default stress)")
    r.add_argument("--seconds", type=int, help="workload duration (default: the workload's)")
    r.add_argument("--interval", type=float, help="seconds between snapshots (default 5)")
    r.add_argument("--out", help="parent of the run directory (default runs)")
    r.add_argument("--jobs", type=int, help="make -j for kernel builds (default: nproc)")
    r.add_argument("--region-size",
                   help="mem_region_size= for kernels with the series (default 16M; '' for the kernel's 512M)")
    r.add_argument("--repeat", type=int,
                   help="repetitions of every guest, interleaved A B A B (default 1; statistics need 5 or more)")
    r.add_argument("--accel", choices=("auto", "tcg", "kvm"), help="QEMU acceleration (default auto)")
    r.add_argument("--source", help="kernel tarball or tree")
    r.add_argument("--append", help="extra kernel command line")
    ex_g = r.add_argument_group("where the guests run (dask.distributed; default: here, one after another)")
    ex_g.add_argument("--parallel", type=int, metavar="N",
                      help="N guests at once on a local dask cluster (about one per core under TCG); "
                           "with --ssh-hosts: workers per host")
    ex_g.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                      help="run on the workers of this `dask scheduler` (each prepared by ci/setup.sh)")
    ex_g.add_argument("--ssh-hosts", metavar="A,B,C",
                      help="start a scheduler on A and a worker on each host over ssh (dask SSHCluster)")
    ex_g.add_argument("--shard", metavar="K/N", help="run only the K-th of N slices of the jobs (by job id); "
                      "`harness merge` joins the slices")
    ex_g.add_argument("--resume", metavar="RUN",
                      help="run again the jobs of RUN that are missing or failed for infrastructure reasons")
    r.set_defaults(func=cmd_run)

    mg = sub.add_parser("merge", help="merge run directories (shards of one matrix) into one run")
    mg.add_argument("runs", nargs="+", metavar="RUN_DIR")
    mg.add_argument("--out", required=True, help="the merged run directory (must not exist)")
    mg.set_defaults(func=cmd_merge)

    st = sub.add_parser("selftests", help="the kernel's selftests (mm, memory-hotplug) per flavor; fails when a "
                                          "test passes on the first flavor and fails on another")
    st.add_argument("--flavors", help="variants, the base first (default: vanilla,regions)")
    st.add_argument("--topology", help="topologies, comma-separated (default: two-node)")
    st.add_argument("--tests", help="selftests by name, comma-separated (default: the default set; see --list)")
    st.add_argument("--out", help="parent of the run directory (default: runs)")
    st.add_argument("--retries", type=int, help="run a failed program again up to N times in its guest: failing "
                                               "once, then passing, is flaky, not a regression (default: 2; a "
                                               "test measured to be flaky has its own count)")
    st.add_argument("--parallel", type=int, help="guests at once, on a local dask cluster (about one per core)")
    st.add_argument("--list", action="store_true", help="list the selftests, the default set and what is left out")
    vm_options(st)
    st.set_defaults(func=cmd_selftests)

    c = sub.add_parser("check", help="check a saved run (or one guest dir) against the model, offline")
    c.add_argument("path")
    c.add_argument("--all", action="store_true", help="print every row, not only differences")
    c.set_defaults(func=cmd_check)

    ca = sub.add_parser("calibrate", help="A/A repetitions of one variant: false-alarm rate, repetitions needed")
    ca.add_argument("--variant", default="regions")
    ca.add_argument("--topology", default="one-node")
    ca.add_argument("--repeat", type=int, default=10)
    ca.add_argument("--workload", default="stress")
    ca.add_argument("--seconds", type=int, default=10)
    ca.add_argument("--interval", type=float, default=5.0)
    ca.add_argument("--out", default="runs")
    ca.add_argument("--accel", default="auto", choices=("auto", "tcg", "kvm"))
    ca.add_argument("--from", dest="from_run", help="analyse this existing run instead of running one")
    ca.add_argument("--alpha", type=float, default=0.01)
    ca.add_argument("--shift", type=float, default=0.05, help="relative shift to find the repetitions for")
    ca.set_defaults(func=cmd_calibrate)

    bi = sub.add_parser("bisect", help="build each prefix of the series and name the first patch that regresses")
    bi.add_argument("--base", required=True, help="run with the good samples (same variant and topology)")
    bi.add_argument("--metric", required=True)
    bi.add_argument("--variant", default="regions")
    bi.add_argument("--topology", default="two-node")
    bi.add_argument("--workload", default="stress")
    bi.add_argument("--seconds", type=int)
    bi.add_argument("--repeat", type=int, default=5)
    bi.add_argument("--source", help="kernel tarball or tree")
    bi.set_defaults(func=cmd_bisect)

    rp = sub.add_parser("report", help="write report.html with figures for a run")
    rp.add_argument("run")
    rp.add_argument("--against", help="base run to judge this one against")
    rp.add_argument("--out", help="directory for report.html and its PNGs (default: RUN/report)")
    rp.set_defaults(func=cmd_report)

    ex = sub.add_parser("experiment", help="experiments built on the main job")
    ex_sub = ex.add_subparsers(dest="experiment", required=True)
    def baseline_and_policy(sp, first_is):
        """--variants (the policies-off baseline first), --topology and --source, as experiments take them."""
        sp.add_argument("--variants", help=f"comma-separated; the first is {first_is} (default: "
                        "the policies-off baseline, then the series' policies)")
        sp.add_argument("--topology", default="two-node")
        sp.add_argument("--source", help="kernel tarball or tree")

    co = ex_sub.add_parser("consolidation", help="wholly free regions before -> after, repeated, vs the optimum")
    baseline_and_policy(co, "the baseline of the verdicts")
    co.add_argument("--region-size", default="16M")
    co.add_argument("--repeat", type=int, default=8, help="repetitions per variant (default 8: BENCHMARKS.md)")
    co.add_argument("--workload", default="churn-pagecache")
    co.add_argument("--seconds", type=int, default=30)
    co.add_argument("--out", default="runs")
    co.add_argument("--accel", default="auto", choices=("auto", "tcg", "kvm"))
    co.add_argument("--from", dest="from_run", metavar="RUN_DIR",
                    help="boot nothing: the tables and verdicts of a finished run, for --variants")
    co.set_defaults(func=cmd_experiment)

    be = sub.add_parser("bench", help="deterministic benchmarks under QEMU -icount")
    be_sub = be.add_subparsers(dest="bench", required=True)
    bc = be_sub.add_parser("cost", help="alloc+free cost per order (pcp and buddy paths) and page-fault cost")
    baseline_and_policy(bc, "what the ratios are to")
    bc.add_argument("--orders", default="0-10", help="orders like 0-10 or 0,5,9")
    bc.add_argument("--repeat", type=int, default=2, help="boots per variant (interleaved); must agree within 0.5%%")
    bc.add_argument("--no-pfbench", action="store_true", help="skip the page-fault measurements")
    bc.add_argument("--out", help="directory for cost.csv")
    bc.set_defaults(func=cmd_bench)

    cp = sub.add_parser("compare", help="judge two runs, or two variants of one run (regression report)")
    cp.add_argument("base", help="base run directory (or the run, with --base-variant/--new-variant)")
    cp.add_argument("new", nargs="?", help="new run directory")
    cp.add_argument("--base-variant", help="within one run: the baseline variant")
    cp.add_argument("--new-variant", help="within one run: the variant judged against it")
    cp.add_argument("--allow-failed-base", action="store_true", help="accept a base run whose status is not ok")
    cp.add_argument("--alpha", type=float, default=0.01, help="false-alarm level after correction (default 0.01)")
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
    # signals can only be caught in the main thread (a test may call main() from another)
    catch = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, _interrupted) for s in (signal.SIGTERM, signal.SIGHUP)} if catch else {}
    try:
        return int(args.func(args))
    except HarnessError as exc:
        print(f"harness {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    except Interrupted as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


if __name__ == "__main__":
    sys.exit(main())
