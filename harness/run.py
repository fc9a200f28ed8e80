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

from harness import checks, executors, jobs, kernel, topology, workloads
from harness.errors import CheckFailed, GuestKernelError, InfraError, ParseError, UserError, VMError
from harness.executors import ExecOptions
from harness.fs import (
    atomic_write,
    disk_full_is_infra,
    read_csv,
    read_json,
    read_json_state,
    replace_dir,
    tree_digest,
    write_csv,
    write_json,
)
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
    started: float | None = None        # host clock (epoch seconds) when the job began


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


def run(opts: RunOptions, progress: Progress = print, executor: ExecOptions | None = None,
        shard: str | None = None) -> tuple[Path, list[GuestOutcome]]:
    """Run the main job; returns the run directory and one outcome per job of the run (plan order).

    executor: where the guests run (default: here, one after another); shard "K/N": only
    the K-th of N slices of the job list (`harness merge` joins the slices' run directories).
    """
    variants = parse_variants(opts.flavors)
    validate(opts)
    exec_opts = executor or ExecOptions()
    executors.validate(exec_opts)
    k_n = jobs.parse_shard(shard) if shard is not None else None
    if not opts.topologies:
        raise UserError("--topologies: give at least one topology (see `harness topology list`)")
    topos = [topology.load(t) for t in opts.topologies]
    workloads.get(opts.workload)  # bad names fail before any build
    for flavor in dict.fromkeys(v.flavor for v in variants):
        kernel.load_flavor(flavor)  # a bad flavor fails before a run directory exists
    plan = jobs.plan([str(v) for v in variants], [t.name for t in topos], opts.workload, opts.repeat,
                     job_settings(opts))
    mine = jobs.select_shard(plan, *k_n) if k_n else plan
    if not mine:
        raise UserError(f"--shard {shard}: this slice of the {len(plan)} jobs is empty; give N at most {len(plan)}")
    started = _dt.datetime.now(_dt.UTC)
    with disk_full_is_infra("creating the run directory", Path(opts.out)):
        run_dir = _new_run_dir(Path(opts.out), started)
    meta: dict[str, Any] = {
        "started": started.isoformat(), "host": platform.node(), "qemu": qemu_version(),
        "options": {k: str(v) for k, v in vars(opts).items()},
        "topologies": {t.name: str(t.path) for t in topos}, "kernels": {}, "guests": [],
        "status": "running",
        # what --resume and `harness merge` read: the matrix, every job of it, this run's slice
        "matrix": matrix_json(opts), "jobs": [j.to_json() for j in plan], "shard": shard,
        "executor": exec_opts.describe(),
    }
    return run_dir, _guarded(run_dir, meta, lambda: _run_jobs(opts, mine, run_dir, meta, progress, exec_opts))


def resume(run_dir: Path, progress: Progress = print,
           executor: ExecOptions | None = None) -> tuple[Path, list[GuestOutcome]]:
    """Run again the jobs of a run that are missing or failed for infrastructure reasons, in the same directory."""
    run_dir = Path(run_dir)
    meta = read_json(run_dir / "metadata.json") if (run_dir / "metadata.json").exists() else None
    if not isinstance(meta, dict):
        raise UserError(f"--resume {run_dir}: not a run directory (no metadata.json)")
    if "matrix" not in meta or "jobs" not in meta:
        raise UserError(f"--resume {run_dir}: the run was made before runs recorded their jobs; start a new run")
    exec_opts = executor or ExecOptions()
    executors.validate(exec_opts)
    opts = options_from_matrix(meta["matrix"], run_dir.parent)
    plan = [jobs.Job.from_json(j) for j in meta["jobs"]]
    shard = meta.get("shard")
    mine = jobs.select_shard(plan, *jobs.parse_shard(shard)) if shard else plan
    present = {p.name for p in run_dir.iterdir() if p.is_dir()}
    todo = jobs.select_resume(mine, meta.get("guests", []), present)
    progress(f"resume {run_dir}: {len(todo)} of {len(mine)} jobs to run again "
             f"({len(mine) - len(todo)} kept)")
    meta["status"] = "running"
    meta["executor"] = exec_opts.describe()
    meta.setdefault("resumed", []).append(_dt.datetime.now(_dt.UTC).isoformat())
    meta.pop("error", None)
    return run_dir, _guarded(run_dir, meta,
                             lambda: _run_jobs(opts, mine, run_dir, meta, progress, exec_opts, todo=todo))


def _guarded(run_dir: Path, meta: dict[str, Any], body: Callable[[], list[GuestOutcome]]) -> list[GuestOutcome]:
    try:
        with disk_full_is_infra("writing the run", run_dir):
            write_json(run_dir / "metadata.json", meta)
            return body()
    except BaseException as exc:
        # a run stopped by an error, a signal or Ctrl-C says so, rather than staying "running"
        meta["status"] = "aborted"
        meta["error"] = f"{type(exc).__name__}: {exc}"[:4000]
        try:
            write_json(run_dir / "metadata.json", meta)
        except OSError as write_exc:  # a full disk may refuse even this; the error still propagates
            log.error("%s: cannot mark the run aborted: %s", run_dir, write_exc)
        raise
    finally:
        shutil.rmtree(run_dir / STAGING, ignore_errors=True)


#: where guest directories are staged before they are committed into the run (same filesystem)
STAGING = ".staging"
#: the run settings every job carries in its spec (they change what a guest measures)
SETTINGS = ("seconds", "interval", "append", "region_size")


def job_settings(opts: RunOptions) -> dict[str, str]:
    return {k: "" if getattr(opts, k) is None else str(getattr(opts, k)) for k in SETTINGS}


def matrix_json(opts: RunOptions) -> dict[str, Any]:
    """The run options as JSON (typed), what --resume rebuilds RunOptions from."""
    return {"flavors": list(opts.flavors), "topologies": list(opts.topologies), "workload": opts.workload,
            "seconds": opts.seconds, "interval": opts.interval, "accel": opts.accel, "source": opts.source,
            "jobs": opts.jobs, "append": opts.append, "repeat": opts.repeat, "region_size": opts.region_size}


def options_from_matrix(data: object, out: Path) -> RunOptions:
    if not isinstance(data, dict):
        raise UserError(f"{out}: the run's metadata.json has no readable matrix; start a new run")
    try:
        return RunOptions(flavors=tuple(data["flavors"]), topologies=tuple(data["topologies"]),
                          workload=str(data["workload"]), seconds=data["seconds"], interval=float(data["interval"]),
                          out=Path(out), accel=str(data["accel"]), source=data["source"], jobs=data["jobs"],
                          append=str(data["append"]), repeat=int(data["repeat"]), region_size=data["region_size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{out}: the run's metadata.json matrix is damaged ({exc}); start a new run") from None


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
    return jobs.guest_dir_name(str(variant), topo, repetition, repeat)


def _eta(done: int, total: int, elapsed: float) -> str:
    left = "" if not done else f", about {_minutes(elapsed / done * (total - done))} left"
    return f"elapsed {_minutes(elapsed)}{left}"


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def execute_job(payload: dict[str, Any], workdir: Path) -> GuestOutcome:
    """One job, wherever it runs: boot its guest into workdir/<dir> (the function executors call).

    payload: the job, the run options, the kernel key and, in this process only, the
    BuildResult; a worker takes the kernel from its own cache by key.
    """
    job = jobs.Job.from_json(payload["job"])
    opts = options_from_matrix(payload["options"], workdir)
    build = payload.get("build") or kernel.cached_build(payload["kernel_key"])
    if build is None:
        raise InfraError(f"kernel {payload['kernel_key'][:12]} is not in {kernel.cache_root()}")
    announce = payload.get("announce")
    if announce:
        print(announce)
    progress: Progress = print if announce else log.info
    started = time.time()
    o = run_guest(build, Variant.parse(job.spec.variant), topology.load(job.spec.topology), opts,
                  workdir / job.dir, progress)
    o.repetition, o.started = job.spec.repetition, round(started, 3)
    return o


def _kernel_entry(b: BuildResult) -> dict[str, Any]:
    m = b.metadata
    return {"key": b.key, "cached": b.cached, "bzimage": str(b.bzimage), "kernel_version": m.kernel_version,
            "package_version": m.package_version, "compiler": m.compiler, "durations": m.durations}


def _run_jobs(opts: RunOptions, mine: list[jobs.Job], run_dir: Path, meta: dict[str, Any], progress: Progress,
              exec_opts: ExecOptions, todo: list[jobs.Job] | None = None) -> list[GuestOutcome]:
    """Build the kernels once here, run `todo` (default: every job of the run) on the executor, merge, finish."""
    t0 = time.monotonic()
    todo = mine if todo is None else todo
    flavors = dict.fromkeys(Variant.parse(j.spec.variant).flavor for j in todo)
    builds: dict[str, BuildResult] = {}
    for flavor in flavors:
        progress(f"kernel {flavor}: building (or reusing the cache)")
        b = kernel.build(flavor, opts.source, jobs=opts.jobs)
        before = meta["kernels"].get(flavor, {}).get("key")
        if before and before != b.key:
            raise UserError(f"--resume {run_dir}: kernel {flavor} is now {b.key[:12]}, the run was made with "
                            f"{before[:12]} (the series, config or source changed); start a new run")
        builds[flavor] = b
        meta["kernels"][flavor] = _kernel_entry(b)
        progress(f"kernel {flavor}: {b.key[:12]} ({'cached' if b.cached else 'built'})")
    write_json(run_dir / "metadata.json", meta)

    ex = executors.make(exec_opts)
    in_process = isinstance(ex, executors.Sequential)
    tasks = []
    for n, j in enumerate(todo):
        b = builds[Variant.parse(j.spec.variant).flavor]
        payload: dict[str, Any] = {"job": j.to_json(), "options": matrix_json(opts), "kernel_key": b.key}
        if in_process:
            rep = j.spec.repetition
            payload["build"] = b
            payload["announce"] = (f"guest {n + 1}/{len(todo)}: {j.spec.variant} on {j.spec.topology}"
                                   + (f", repetition {rep}/{opts.repeat}" if opts.repeat > 1 else ""))
        tasks.append(executors.Task(j.id, j.order, j.dir, b.key, payload))
    outcomes: dict[str, GuestOutcome] = {}
    by_id = {j.id: j for j in todo}
    t_guests = time.monotonic()

    def deliver(d: executors.Delivery) -> None:
        job = by_id[d.task.job_id]
        if job.id in outcomes:
            log.warning("%s: job %s delivered twice; kept the first result", run_dir, job.id)
            return
        o = d.outcome if isinstance(d.outcome, GuestOutcome) else GuestOutcome(
            Variant.parse(job.spec.variant), job.spec.topology, job.dir, job.spec.repetition,
            GuestStatus.ERROR, d.error or "the job returned no outcome")
        final = run_dir / job.dir
        if d.staged is not None and d.staged.is_dir():
            replace_dir(d.staged, final)
        elif final.exists():
            shutil.rmtree(final)   # an earlier attempt's directory: this job has none now
        outcomes[job.id] = o
        _record(meta, job, o, d, final)
        write_json(run_dir / "metadata.json", meta)
        if not in_process:
            progress(f"guest {len(outcomes)}/{len(todo)} done: {job.dir} {o.status} on {d.host or '?'} "
                     f"({_eta(len(outcomes), len(todo), time.monotonic() - t_guests)})")

    if tasks:   # a resume with nothing to do starts no cluster
        ex.run(execute_job, tasks, {b.key: b.directory for b in builds.values()}, run_dir / STAGING, deliver,
               progress)
    missing = [j for j in todo if j.id not in outcomes]
    if missing:
        raise InfraError(f"{len(missing)} jobs came back from no worker: {', '.join(j.dir for j in missing)}")
    result = finish(run_dir, meta, mine, outcomes)
    meta["duration_seconds"] = round(time.monotonic() - t0, 1)
    write_json(run_dir / "metadata.json", meta)
    return result


def _record(meta: dict[str, Any], job: jobs.Job, o: GuestOutcome, d: executors.Delivery, final: Path) -> None:
    """The job's metadata entry (replacing an earlier attempt's), entries kept in plan order."""
    entry = {"flavor": job.spec.variant, "topology": job.spec.topology, "repetition": job.spec.repetition,
             "order": job.order, "dir": job.dir, "started": o.started,
             "status": str(o.status), "error": o.error[:4000], "boot_seconds": o.boot_seconds,
             "workload_seconds": o.workload_seconds,
             "qemu_argv": o.record.get("argv"), "accel": o.record.get("accel"),
             "job": job.id, "seed": job.spec.seed, "workload": job.spec.workload, "host": d.host,
             "worker": d.worker, "digest": tree_digest(final) if final.is_dir() else None}
    guests = [g for g in meta["guests"] if g.get("job") != job.id]
    guests.append(entry)
    meta["guests"] = sorted(guests, key=lambda g: int(g.get("order", 0)))


def outcome_of_entry(run_dir: Path, entry: dict[str, Any]) -> GuestOutcome:
    """A guest of a stored run as an outcome: its metadata entry and its checks.csv."""
    name = store.entry_dir_name(entry)
    path = Path(run_dir) / name / "checks.csv"
    try:
        status = GuestStatus(str(entry.get("status")))
    except ValueError:
        raise UserError(f"{run_dir / 'metadata.json'}: guest {name} has status {entry.get('status')!r}, "
                        f"not one of {', '.join(map(str, GuestStatus))}") from None
    return GuestOutcome(Variant.parse(str(entry["flavor"])), str(entry["topology"]), name,
                        int(entry.get("repetition", 1)), status, str(entry.get("error") or ""),
                        entry.get("boot_seconds"), entry.get("workload_seconds"),
                        read_csv(path) if path.is_file() else None, {"argv": entry.get("qemu_argv")})


def finish(run_dir: Path, meta: dict[str, Any], mine: list[jobs.Job],
           fresh: dict[str, GuestOutcome] | None = None) -> list[GuestOutcome]:
    """The run's own files from its jobs: outcomes in plan order, checks.csv, summary.txt, status."""
    fresh = fresh or {}
    entries = {str(g.get("job")): g for g in meta["guests"]}
    outcomes = [fresh[j.id] if j.id in fresh else outcome_of_entry(run_dir, entries[j.id])
                for j in mine if j.id in fresh or j.id in entries]
    all_checks = [o.checks.assign(flavor=str(o.variant), topology=o.topology)
                  for o in outcomes if o.checks is not None]
    if all_checks:
        write_csv(run_dir / "checks.csv", pd.concat(all_checks, ignore_index=True))
    if len(outcomes) < len(mine):
        meta["status"] = "incomplete"
    else:
        meta["status"] = "ok" if all(o.status is GuestStatus.OK for o in outcomes) else "failed"
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
            ("free_regions_pct_optimum_after", "% of optimum"),
            ("unusable_thp_after", "unusable@order9 after"), ("thp_fault_success", "THP success"),
            ("extfrag_fragmenting", "fragmenting fallbacks"), ("compact_stall_delta", "compaction stalls"))


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
