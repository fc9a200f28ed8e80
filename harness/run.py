"""The main job: build kernels, boot every (variant, topology), run a workload, snapshot, check, store a run."""

from __future__ import annotations

import datetime as _dt
import enum
import errno
import logging
import math
import platform
import shutil
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness import checks, kernel, topology, workloads
from harness.errors import CheckFailed, GuestKernelError, InfraError, ParseError, UserError, VMError
from harness.fs import atomic_write, disk_full_is_infra, read_json_state, write_csv, write_json
from harness.kernel import BuildResult
from harness.results import store
from harness.results.metrics import extract_metrics
from harness.results.offline import check_vm_dir
from harness.session import guest
from harness.table import render_table
from harness.units import memparse
from harness.variant import Variant, parse_variants
from harness.vm import qemu_version
from harness.vm.snapshots import Sampler, save_snapshot, take_snapshot

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

#: the regions kernel with sorting off is the same kernel as its own baseline, same statistics
DEFAULT_FLAVORS = ("vanilla", "regions", "regions+mem_region_sort=0")
#: the default set boots fast under TCG and covers one node, contiguous and interleaved nodes
DEFAULT_TOPOLOGIES = ("one-node", "two-node", "interleaved-small", "four-node")


@dataclass
class RunOptions:
    flavors: tuple[str, ...] = DEFAULT_FLAVORS   # variant specs: flavor[+param=value...]
    topologies: tuple[str, ...] = DEFAULT_TOPOLOGIES
    workload: str = "stress"
    seconds: int | None = None          # workload duration; None: the workload's default
    interval: float = 5.0               # seconds between snapshots while the workload runs
    out: Path = Path("runs")
    accel: str = "auto"
    source: str | None = None
    jobs: int | None = None
    append: str = ""                    # extra kernel command line
    repeat: int = 1                     # repetitions of every (variant, topology), interleaved
    #: mem_region_size= for flavors carrying the series (None: the kernel's 512M). 16M gives a
    #: 2 GiB guest 128 regions, enough to see consolidation; 512M gives it 4.
    region_size: str | None = "16M"


class GuestStatus(enum.StrEnum):
    OK = "ok"
    CHECK_FAILED = "check-failed"       # observed metrics differ from the model
    KERNEL_PROBLEM = "kernel-problem"   # the guest kernel reported a panic, BUG, WARNING, ...
    ERROR = "error"                     # the infrastructure failed (QEMU, ssh, workload, disk)


@dataclass
class GuestOutcome:
    variant: Variant
    topology: str
    name: str                           # the guest directory's name
    repetition: int = 1
    status: GuestStatus = GuestStatus.OK
    error: str = ""
    boot_seconds: float | None = None
    workload_seconds: float | None = None
    checks: pd.DataFrame | None = None
    record: dict[str, Any] = field(default_factory=dict)


def _collect(vm: Any, wl: workloads.Workload, topo: topology.Topology, opts: RunOptions,
             vm_dir: Path, out: GuestOutcome, progress: Progress) -> None:
    """Inside a booted guest: dmesg, before snapshot, workload with sampling, after snapshot."""
    snaps_dir = vm_dir / "snapshots"
    out.boot_seconds = vm.record.boot_seconds
    progress(f"  {vm.name}: ready in {out.boot_seconds:.1f} s ({vm.record.accel})")
    atomic_write(vm_dir / "dmesg.txt", vm.run("dmesg", check=True).stdout)
    save_snapshot(take_snapshot(vm, "before"), snaps_dir)
    cmd = wl.command(topo, opts.seconds)
    t0 = time.monotonic()
    with Sampler(vm, opts.interval) as sampler:
        res = vm.run(cmd, timeout=(opts.seconds or wl.seconds) + 300)
    out.workload_seconds = round(time.monotonic() - t0, 2)
    atomic_write(vm_dir / "workload.log", f"$ {cmd}\nexit {res.status}\n{res.stdout}{res.stderr}")
    for snap in sampler.snapshots:
        save_snapshot(snap, snaps_dir)
    for exc in sampler.errors:
        log.warning("%s: sampling stopped early: %s", vm.name, exc)
    if res.status != 0:
        raise VMError(f"{vm.name}: workload {wl.name} exited {res.status}:\n{res.stderr[-2000:]}")
    time.sleep(2)  # let per-cpu lists drain and vmstat fold before the quiescent read
    save_snapshot(take_snapshot(vm, "after"), snaps_dir)
    vm.check_console()


def run_guest(build: BuildResult, variant: Variant, topo: topology.Topology, opts: RunOptions,
              vm_dir: Path, progress: Progress = print) -> GuestOutcome:
    """Boot one (variant, topology), run the workload with snapshots, check, write vm_dir.

    Never raises for what goes wrong inside the guest: the outcome says it, so one bad
    guest does not stop the others.
    """
    wl = workloads.get(opts.workload)
    out = GuestOutcome(variant, topo.name, vm_dir.name)
    append = " ".join(a for a in (variant.append, _region_param(variant, opts), opts.append) if a)
    try:
        vm_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(topo.path, vm_dir / f"{topo.name}.yaml")
        shutil.copy(build.config_path, vm_dir / "config")
        with guest(build.bzimage, topo, vm_dir, append=append, accel=opts.accel, name=out.name) as vm:
            _collect(vm, wl, topo, opts, vm_dir, out, progress)
        out.checks = check_vm_dir(vm_dir)
        write_csv(vm_dir / "checks.csv", out.checks)
        store.write_metrics(vm_dir)
        if checks.failed(out.checks):
            out.status = GuestStatus.CHECK_FAILED
    except GuestKernelError as exc:
        out.status, out.error = GuestStatus.KERNEL_PROBLEM, str(exc)
    except ParseError as exc:
        # what the guest kernel printed is garbled or cut: a finding about the guest, named by file and line
        out.status, out.error = GuestStatus.CHECK_FAILED, str(exc)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise  # a full disk fails every guest after this one too: stop the run
        out.status, out.error = GuestStatus.ERROR, f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 (any failure of one guest is that guest's outcome)
        out.status, out.error = GuestStatus.ERROR, f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, (UserError, InfraError)):
            log.error("%s: unexpected error\n%s", out.name, traceback.format_exc())
    out.record = read_json_state(vm_dir / "vm.json") or {}
    return out


def _region_param(variant: Variant, opts: RunOptions) -> str:
    """The run's region size as a boot parameter, for kernels with the series whose variant does not set one."""
    if not opts.region_size or any(p.startswith("mem_region_size=") for p in variant.params):
        return ""
    return f"mem_region_size={opts.region_size}" if kernel.load_flavor(variant.flavor).patches else ""


def run(opts: RunOptions, progress: Progress = print) -> tuple[Path, list[GuestOutcome]]:
    """Run the main job; returns the run directory and one outcome per (variant, topology)."""
    variants = parse_variants(opts.flavors)
    validate(opts)
    if not opts.topologies:
        raise UserError("--topologies: give at least one topology (see `harness topology list`)")
    topos = [topology.load(t) for t in opts.topologies]
    workloads.get(opts.workload)  # bad names fail before any build
    for flavor in dict.fromkeys(v.flavor for v in variants):
        kernel.load_flavor(flavor)  # a bad flavor fails before a run directory exists
    started = _dt.datetime.now(_dt.UTC)
    with disk_full_is_infra("creating the run directory", Path(opts.out)):
        run_dir = _new_run_dir(Path(opts.out), started)
    meta: dict[str, Any] = {
        "started": started.isoformat(), "host": platform.node(), "qemu": qemu_version(),
        "options": {k: str(v) for k, v in vars(opts).items()},
        "topologies": {t.name: str(t.path) for t in topos}, "kernels": {}, "guests": [],
        "status": "running",
    }
    try:
        with disk_full_is_infra("writing the run", run_dir):
            write_json(run_dir / "metadata.json", meta)
            return run_dir, _run_guests(opts, variants, topos, run_dir, meta, progress)
    except BaseException as exc:
        # a run stopped by an error, a signal or Ctrl-C says so, rather than staying "running"
        meta["status"] = "aborted"
        meta["error"] = f"{type(exc).__name__}: {exc}"[:4000]
        try:
            write_json(run_dir / "metadata.json", meta)
        except OSError as write_exc:  # a full disk may refuse even this; the error still propagates
            log.error("%s: cannot mark the run aborted: %s", run_dir, write_exc)
        raise


def _new_run_dir(parent: Path, started: _dt.datetime) -> Path:
    """parent/<UTC stamp>, or <stamp>-2, -3, ... when another run started in the same second."""
    stamp = started.strftime("%Y%m%d-%H%M%S")
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 100):
        path = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise InfraError(f"{parent}: 99 runs started in second {stamp}; is something looping?")


def validate(opts: RunOptions) -> None:
    """Option values that would only fail after the kernels are built fail now, naming the option."""
    if opts.repeat < 1:
        raise UserError(f"--repeat {opts.repeat}: give 1 or more repetitions")
    if opts.seconds is not None and opts.seconds <= 0:
        raise UserError(f"--seconds {opts.seconds}: the workload needs a positive duration")
    if opts.region_size:
        try:
            memparse(opts.region_size)
        except ValueError:
            raise UserError(f"--region-size {opts.region_size!r}: give a size such as 16M") from None
    if not opts.interval > 0:
        raise UserError(f"--interval {opts.interval}: seconds between snapshots must be positive")


def guest_name(variant: Variant, topo: str, repetition: int, repeat: int) -> str:
    """<variant>-<topology>, with -r<k> when every guest runs more than once."""
    return f"{variant}-{topo}" + (f"-r{repetition}" if repeat > 1 else "")


def _eta(done: int, total: int, elapsed: float) -> str:
    left = "" if not done else f", about {_minutes(elapsed / done * (total - done))} left"
    return f"elapsed {_minutes(elapsed)}{left}"


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _run_guests(opts: RunOptions, variants: tuple[Variant, ...], topos: list[topology.Topology],
                run_dir: Path, meta: dict[str, Any], progress: Progress) -> list[GuestOutcome]:
    t0 = time.monotonic()
    builds = {}
    for flavor in dict.fromkeys(v.flavor for v in variants):
        progress(f"kernel {flavor}: building (or reusing the cache)")
        b = kernel.build(flavor, opts.source, jobs=opts.jobs)
        builds[flavor] = b
        m = b.metadata
        meta["kernels"][flavor] = {"key": b.key, "cached": b.cached, "bzimage": str(b.bzimage),
                                   "kernel_version": m.kernel_version, "package_version": m.package_version,
                                   "compiler": m.compiler, "durations": m.durations}
        progress(f"kernel {flavor}: {b.key[:12]} ({'cached' if b.cached else 'built'})")
    write_json(run_dir / "metadata.json", meta)

    # repetitions interleaved (A B A B ...): drift over the run spreads over every variant
    plan = [(rep, v, t) for rep in range(1, opts.repeat + 1) for v in variants for t in topos]
    outcomes = []
    t_guests = time.monotonic()
    for order, (rep, variant, topo) in enumerate(plan):
        name = guest_name(variant, topo.name, rep, opts.repeat)
        progress(f"guest {order + 1}/{len(plan)}: {variant} on {topo.name}"
                 + (f", repetition {rep}/{opts.repeat}" if opts.repeat > 1 else "")
                 + f" ({_eta(order, len(plan), time.monotonic() - t_guests)})")
        started = time.time()
        o = run_guest(builds[variant.flavor], variant, topo, opts, run_dir / name, progress)
        o.repetition = rep
        outcomes.append(o)
        meta["guests"].append({"flavor": str(variant), "topology": topo.name, "repetition": rep,
                               "order": order, "dir": name, "started": round(started, 3),
                               "status": str(o.status), "error": o.error[:4000], "boot_seconds": o.boot_seconds,
                               "workload_seconds": o.workload_seconds,
                               "qemu_argv": o.record.get("argv"), "accel": o.record.get("accel")})
        write_json(run_dir / "metadata.json", meta)
    all_checks = [o.checks.assign(flavor=str(o.variant), topology=o.topology)
                  for o in outcomes if o.checks is not None]
    if all_checks:
        write_csv(run_dir / "checks.csv", pd.concat(all_checks, ignore_index=True))
    meta["status"] = "ok" if all(o.status is GuestStatus.OK for o in outcomes) else "failed"
    meta["duration_seconds"] = round(time.monotonic() - t0, 1)
    write_json(run_dir / "metadata.json", meta)
    atomic_write(run_dir / "summary.txt", summary(outcomes) + "\n\n" + headline(outcomes, run_dir) + "\n")
    return outcomes


def raise_for_outcomes(outcomes: list[GuestOutcome], run_dir: Path) -> None:
    """Turn not-ok guests into the exception the CLI maps to an exit code.

    A guest whose infrastructure failed means the run is incomplete (InfraError, exit 3);
    otherwise a model difference or a guest kernel report is a CheckFailed (exit 4).
    """
    bad = [o for o in outcomes if o.status is not GuestStatus.OK]
    if not bad:
        return
    counts = ", ".join(f"{sum(o.status is s for o in bad)} {s}" for s in GuestStatus
                       if any(o.status is s for o in bad))
    text = f"{len(bad)} of {len(outcomes)} guests not ok ({counts}; see {run_dir / 'summary.txt'})"
    if any(o.status is GuestStatus.ERROR for o in bad):
        raise InfraError(text)
    raise CheckFailed(text)


#: the figures a user wants first, per topology and variant (medians over repetitions)
HEADLINE = (("free_regions_before", "free regions before"), ("free_regions_after", "after"),
            ("unusable_thp_after", "unusable@order9 after"), ("thp_fault_success", "THP success"),
            ("compact_stall_delta", "compaction stalls"))


def headline(outcomes: list[GuestOutcome], run_dir: Path) -> str:
    """One table per topology comparing the variants on the headline figures."""
    values: dict[tuple[str, str], list[dict[str, float]]] = {}
    for o in outcomes:
        if o.status is GuestStatus.ERROR or not (run_dir / o.name).is_dir():
            continue
        got = extract_metrics(run_dir / o.name, None, tuple(m for m, _ in HEADLINE))
        values.setdefault((o.topology, str(o.variant)), []).append(got)
    blocks = []
    for topo in dict.fromkeys(t for t, _ in values):
        rows: list[tuple[object, ...]] = [("variant", "n", *(label for _, label in HEADLINE))]
        for (t, variant), samples in values.items():
            if t != topo:
                continue
            cells = []
            for m, _ in HEADLINE:
                vals = [s[m] for s in samples if not math.isnan(s[m])]
                cells.append(f"{statistics.median(vals):.4g}" if vals else "-")
            rows.append((variant, len(samples), *cells))
        blocks.append(f"{topo}:\n{render_table(rows, right=set(range(1, len(HEADLINE) + 2)))}")
    return "\n\n".join(blocks)


def summary(outcomes: list[GuestOutcome]) -> str:
    """One line per guest: variant, topology, status, boot seconds, checks ok/total; then the failures."""
    rows: list[tuple[object, ...]] = [("flavor", "topology", "status", "boot s", "workload s", "checks")]
    for o in outcomes:
        if o.checks is not None:
            bad = int((o.checks["verdict"] != "ok").sum())
            chk = f"{len(o.checks) - bad}/{len(o.checks)} ok"
        else:
            chk = "-"
        rows.append((o.variant, o.topology, o.status,
                     f"{o.boot_seconds:.1f}" if o.boot_seconds else "-",
                     f"{o.workload_seconds:.1f}" if o.workload_seconds else "-", chk))
    lines = [render_table(rows)]
    for o in outcomes:
        if o.error:
            lines.append(f"\n{o.name}: {o.error}")
        elif o.checks is not None and checks.failed(o.checks):
            lines.append(f"\n{o.name}:\n{checks.render(o.checks, only_failures=True)}")
    return "\n".join(lines)
