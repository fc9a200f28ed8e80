"""`harness selftests`: run the kernel's own selftests in a guest per (variant, topology), then judge.

A run directory (under --out, default runs/) holds, per guest, the raw output of
every program (<guest>/tap/<test>.tap) next to the console log, and at the top
results.csv (one row per program and per subtest), verdicts.csv (every other variant
against the first), summary.txt and metadata.json. It is written in a staging
directory and renamed into place when the run ends, also when it ends in an error
(its metadata says so): never a half-written run under its final name.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import logging
import shutil
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness import executors, kernel, topology
from harness.errors import CheckFailed, GuestKernelError, InfraError, UserError, VMError
from harness.fs import atomic_write, disk_full_is_infra, replace_dir, write_csv, write_json
from harness.selftests import suite, tap, verdict
from harness.selftests.build import SelftestBuild, build_selftests
from harness.session import guest
from harness.variant import Variant, parse_variants

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

#: where executors stage guest directories inside the run's staging directory
STAGING = ".jobs"
#: where the programs are unpacked in the guest (tmpfs)
GUEST_DIR = "/tmp/selftests"
#: seconds the ssh command may take beyond the test's own timeout (unpacking, the console check)
SLACK = 60.0
#: exit statuses of a program `timeout` stopped: coreutils' 124, or 128 + SIGTERM/SIGKILL (busybox)
KILLED = (tap.TIMEOUT_STATUS, 143, 137)
#: the line the guest prints after each program: exit status and /proc/uptime before and after
_END = "@@rh-selftest"


@dataclass
class SelftestsOptions:
    variants: tuple[str, ...] = ("vanilla", "regions")
    topologies: tuple[str, ...] = ("two-node",)
    tests: tuple[str, ...] | None = None  # None: suite.DEFAULT
    out: Path = Path("runs")
    accel: str = "auto"
    source: str | None = None
    #: a failed program runs again up to this many times (see _attempts)
    retries: int = 2
    #: guests at once (a local dask cluster when > 1; about one per core under TCG)
    parallel: int | None = None


@dataclass
class GuestRun:
    variant: Variant
    topology: str
    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None  # the guest failed (boot, ssh): its remaining tests are "not run"
    infra: bool = False


def guest_command(test: suite.Selftest, hugepages: int) -> str:
    """The shell line that runs one program in the guest and reports how it ended."""
    run = f"bash {test.command()}" if test.is_script else test.command()
    pre = f"echo {hugepages} > /proc/sys/vm/nr_hugepages; " if test.hugepages else ""
    post = "; echo 0 > /proc/sys/vm/nr_hugepages" if test.hugepages else ""
    return (f"cd {GUEST_DIR} && {pre}t0=$(cut -d' ' -f1 /proc/uptime); "
            f"timeout {int(test.timeout)} {run} 2>&1; rc=$?; t1=$(cut -d' ' -f1 /proc/uptime){post}; "
            f"echo; echo \"{_END} rc=$rc t0=$t0 t1=$t1\"")


def split_output(stdout: str, what: str) -> tuple[str, int, float]:
    """(the program's output, its exit status, its seconds) from what guest_command printed."""
    head, sep, tail = stdout.rpartition(f"\n{_END} ")
    if not sep:
        raise InfraError(f"{what}: the guest command ended without its {_END} line (ssh cut?)")
    fields = dict(kv.split("=", 1) for kv in tail.split())
    return head, int(fields["rc"]), round(float(fields["t1"]) - float(fields["t0"]), 2)


def program_rows(test: suite.Selftest, output: str, status: int, seconds: float) -> list[dict[str, Any]]:
    """The program's row (subtest "") and one per TAP test line, named "<number> <name>"."""
    parsed = tap.parse_tap(output)
    timed_out = status in KILLED and seconds >= test.timeout - 1
    # busybox timeout exits with the signal's status, not 124
    whole = tap.outcome(tap.TIMEOUT_STATUS if timed_out else status, parsed)
    rows = [{"test": test.name, "subtest": "", "result": whole.result, "reason": whole.reason,
             "seconds": seconds, "status": status}]
    for t in parsed.tests:
        rows.append({"test": test.name, "subtest": f"{t.number} {t.name}"[:160], "result": t.result,
                     "reason": t.reason, "seconds": float("nan")})
    return rows


def _nodes_with_memory(text: str) -> int:
    """Count of a /sys/devices/system/node/has_memory list such as "0-1" or "0,2-3"."""
    count = 0
    for part in text.strip().split(","):
        if part:
            lo, _, hi = part.partition("-")
            count += int(hi or lo) - int(lo) + 1
    return count


def _archive(build: SelftestBuild, tests: tuple[suite.Selftest, ...]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for prog in suite.programs(tests):
            tar.add(build.program(prog), arcname=prog)
    return buf.getvalue()


def _attempts(vm: Any, test: suite.Selftest, retries: int, guest_dir: Path, name: str,
              progress: Progress) -> list[dict[str, Any]]:
    """Run a program; a failure is run again, up to `retries` times, in the same guest.

    Some programs fail now and then on any kernel (ksm_tests -N under TCG: its two
    full scans race with ksmd); a failure that does not come back is "flaky", not a
    fail, and one that comes back every time is. Every attempt's output is kept
    (<test>.tap, <test>.retry1.tap, ...); the rows are those of the last attempt.
    """
    results = []
    for attempt in range(retries + 1):
        progress(f"{name}: {test.name}" + (f" (retry {attempt})" if attempt else ""))
        res = vm.run(guest_command(test, test.hugepages), timeout=test.timeout + SLACK)
        text, status, seconds = split_output(res.stdout, f"{name}: {test.name}")
        atomic_write(guest_dir / "tap" / (f"{test.name}.retry{attempt}.tap" if attempt else f"{test.name}.tap"),
                     text)
        rows = program_rows(test, text, status, seconds)
        results.append(rows[0]["result"])
        progress(f"{name}: {test.name}: {rows[0]['result']} in {seconds:.1f} s")
        if rows[0]["result"] != tap.FAIL:
            break
    whole = rows[0]
    whole["attempts"] = len(results)
    if len(results) > 1 and results[-1] != tap.FAIL:
        whole["reason"] = f"failed {len(results) - 1} of {len(results)} attempts, then {results[-1]}"
        whole["result"] = verdict.FLAKY
    elif len(results) > 1:
        whole["reason"] = f"failed all {len(results)} attempts: {whole['reason']}"
    return rows


def run_guest(kern: kernel.BuildResult, st: SelftestBuild, variant: Variant, topo: topology.Topology,
              tests: tuple[suite.Selftest, ...], guest_dir: Path, accel: str,
              progress: Progress, retries: int = 2) -> GuestRun:
    """Boot one guest, run every test in it, keep the raw output. Never raises for the guest's failures."""
    out = GuestRun(variant, topo.name, guest_dir.name)
    config = {k: o.value for k, o in kernel.parse_config_text(kern.config_path.read_text(), source=str(
        kern.config_path), strict=False).items()}
    done: set[str] = set()
    running: str | None = None  # the test in the guest when it failed
    (guest_dir / "tap").mkdir(parents=True, exist_ok=True)
    try:
        with guest(kern.bzimage, topo, guest_dir, append=variant.append, accel=accel, name=out.name) as vm:
            archive = guest_dir / ".selftests.tgz"
            archive.write_bytes(_archive(st, tests))
            try:
                vm.put(archive, "/tmp/selftests.tgz")
            finally:
                archive.unlink()
            facts = vm.run(f"mkdir -p {GUEST_DIR} && tar xzf /tmp/selftests.tgz -C {GUEST_DIR} && "
                           "rm /tmp/selftests.tgz && cat /sys/devices/system/node/has_memory && nproc",
                           check=True).stdout.split()
            nodes, cpus = _nodes_with_memory(facts[0]), int(facts[1])
            for test in tests:
                why = suite.skip_reason(test, nodes, cpus, config)
                if why:
                    out.rows.append({"test": test.name, "subtest": "", "result": tap.SKIP,
                                     "reason": f"not started: {why}", "seconds": float("nan")})
                    done.add(test.name)
                    continue
                running = test.name
                rows = _attempts(vm, test, retries if test.retries is None else test.retries, guest_dir,
                                 out.name, progress)
                running = None
                out.rows += rows
                done.add(test.name)
    except GuestKernelError as exc:
        # the kernel reported a problem while a test ran: that test failed, the guest is gone
        kind = str(exc).splitlines()[0]
        if running is not None:
            out.rows.append({"test": running, "subtest": "", "result": tap.ERROR,
                             "reason": f"guest kernel reported a problem: {kind}", "seconds": float("nan")})
            done.add(running)
        out.error = kind
    except (VMError, InfraError, OSError) as exc:
        out.error, out.infra = f"{type(exc).__name__}: {exc}", True
    for test in tests:
        if test.name not in done:
            out.rows.append({"test": test.name, "subtest": "", "result": verdict.NOT_RUN,
                             "reason": f"guest stopped: {(out.error or '').splitlines()[0][:200]}",
                             "seconds": float("nan")})
    for r in out.rows:
        r.update(variant=str(variant), topology=topo.name)
    return out


def run_selftests(opts: SelftestsOptions, progress: Progress = print) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """Build, boot every (topology, variant), run the tests, judge; returns (run dir, results, verdicts).

    Raises UserError for bad options before anything is built. Guests that fail do not
    stop the others; see raise_for_verdicts for how the run ends.
    """
    variants = parse_variants(opts.variants, "--flavors")
    if len(variants) < 2:
        raise UserError("--flavors: give the base kernel first and at least one to judge against it, "
                        "e.g. vanilla,regions")
    topos = [topology.load(t) for t in opts.topologies]
    if not topos:
        raise UserError("--topology: give at least one topology (see `harness topology list`)")
    tests = suite.select(opts.tests)
    if opts.retries < 0:
        raise UserError(f"--retries {opts.retries}: give 0 (no retries) or more")
    executors.validate(executors.ExecOptions(parallel=opts.parallel))
    kernels = {v.flavor: kernel.build(v.flavor, opts.source) for v in variants}
    builds = {f: build_selftests(f, opts.source, progress) for f in kernels}
    started = _dt.datetime.now(_dt.UTC)
    parent = Path(opts.out)
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / f"selftests-{started.strftime('%Y%m%d-%H%M%S')}"
    staging = parent / f".{final.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    meta: dict[str, Any] = {
        "command": "selftests", "started": started.isoformat(timespec="seconds"), "status": "running",
        "variants": [str(v) for v in variants], "topologies": [t.name for t in topos],
        "tests": [t.name for t in tests], "base": str(variants[0]), "retries": opts.retries,
        "kernels": {f: b.key for f, b in kernels.items()}, "selftests": {f: b.key for f, b in builds.items()},
    }
    t0 = time.monotonic()
    try:
        with disk_full_is_infra("writing the selftests run", staging):
            runs = _run_guests(opts, variants, topos, tests, kernels, builds, staging, progress)
            results = verdict.results_frame([r for g in runs for r in g.rows])
            verdicts = verdict.compare(results, str(variants[0]))
            write_csv(staging / "results.csv", results)
            write_csv(staging / "verdicts.csv", verdicts)
            text = verdict.render(results, verdicts, str(variants[0]))
            errors = [f"{g.name}: {g.error}" for g in runs if g.error]
            if errors:
                text += "\n\nguests that failed:\n" + "\n".join(f"  {e}" for e in errors)
            atomic_write(staging / "summary.txt", text + "\n")
            meta.update(status="ok", seconds=round(time.monotonic() - t0, 1),
                        regressions=len(verdict.regressions(verdicts)),
                        guests_failed=[g.name for g in runs if g.error],
                        infra_failed=[g.name for g in runs if g.infra])
            write_json(staging / "metadata.json", meta)
    except BaseException as exc:
        meta.update(status="aborted", error=f"{type(exc).__name__}: {exc}"[:4000])
        write_json(staging / "metadata.json", meta)
        staging.rename(final)
        raise
    staging.rename(final)
    return final, results, verdicts


def execute_job(payload: dict[str, Any], workdir: Path) -> GuestRun:
    """One guest's selftests, in this process or on a dask worker of this machine (executors call it)."""
    build = payload.get("build") or kernel.cached_build(payload["kernel_key"])
    if build is None:
        raise InfraError(f"kernel {payload['kernel_key'][:12]} is not in {kernel.cache_root()}")
    st = SelftestBuild(payload["selftests_key"], Path(payload["selftests_dir"]), cached=True)
    progress: Progress = print if payload.get("announce") else log.info
    return run_guest(build, st, Variant.parse(payload["variant"]), topology.load(payload["topology"]),
                     suite.select(payload["tests"]), workdir / payload["dir"], payload["accel"], progress,
                     payload["retries"])


def _run_guests(opts: SelftestsOptions, variants: tuple[Variant, ...], topos: list[topology.Topology],
                tests: tuple[suite.Selftest, ...], kernels: dict[str, kernel.BuildResult],
                builds: dict[str, SelftestBuild], staging: Path, progress: Progress) -> list[GuestRun]:
    """Every (topology, variant) guest on the executor (sequential, or --parallel N on a local dask cluster)."""
    ex = executors.make(executors.ExecOptions(parallel=opts.parallel))
    in_process = isinstance(ex, executors.Sequential)
    tasks: list[executors.Task] = []
    for topo in topos:
        for v in variants:
            name = f"{v}@{topo.name}"
            k = kernels[v.flavor]
            payload: dict[str, Any] = {
                "kernel_key": k.key, "selftests_key": builds[v.flavor].key,
                "selftests_dir": str(builds[v.flavor].directory), "variant": str(v), "topology": topo.name,
                "tests": [t.name for t in tests], "dir": _dirname(name), "accel": opts.accel,
                "retries": opts.retries}
            if in_process:
                payload.update(build=k, announce=True)
            tasks.append(executors.Task(_dirname(name), len(tasks), _dirname(name), k.key, payload))
    got: dict[str, GuestRun] = {}

    def deliver(d: executors.Delivery) -> None:
        t = d.task
        if isinstance(d.outcome, GuestRun):
            run = d.outcome
        else:  # the worker was lost, or the job raised: its tests did not run
            error = d.error or "the job returned no result"
            run = GuestRun(Variant.parse(t.payload["variant"]), t.payload["topology"], t.dir, error=error,
                           infra=True)
            run.rows = [{"test": n, "subtest": "", "result": verdict.NOT_RUN, "variant": t.payload["variant"],
                         "topology": t.payload["topology"], "reason": f"guest stopped: {error[:200]}"}
                        for n in t.payload["tests"]]
        if d.staged is not None and d.staged.is_dir():
            replace_dir(d.staged, staging / t.dir)
        got.setdefault(t.job_id, run)
        if not in_process:
            progress(f"guest {len(got)}/{len(tasks)} done: {t.dir}")

    ex.run(execute_job, tasks, {k.key: k.directory for k in kernels.values()}, staging / STAGING, deliver,
           progress)
    shutil.rmtree(staging / STAGING, ignore_errors=True)
    return [got[t.job_id] for t in tasks if t.job_id in got]


def _dirname(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)


def raise_for_verdicts(run_dir: Path, results: pd.DataFrame, verdicts: pd.DataFrame) -> None:
    """A guest that could not run its tests is an incomplete run (InfraError, exit 3); a test that
    passes on the base and fails on another variant is a CheckFailed (exit 4)."""
    meta = _read_meta(run_dir)
    if meta.get("infra_failed"):
        raise InfraError(f"guests {', '.join(meta['infra_failed'])} did not run their tests "
                         f"(see {run_dir / 'summary.txt'})")
    bad = verdict.regressions(verdicts)
    if len(bad):
        raise CheckFailed(f"{len(bad)} selftest result(s) pass on {meta.get('base')} and fail on "
                          f"{', '.join(sorted(set(bad['variant'])))} (see {run_dir / 'summary.txt'})")


def _read_meta(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "metadata.json").read_text())

