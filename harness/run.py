"""The main job: build kernels, boot every topology, run a workload, snapshot, check, store a run."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness import checks, kernel, topology, workloads
from harness.errors import GuestKernelError, HarnessError, UserError, VMError
from harness.metrics import parse_snapshot
from harness.metrics.collect import Sampler, take_snapshot
from harness.results import store
from harness.session import guest
from harness.vm import qemu_version

log = logging.getLogger(__name__)

#: a variant is a flavor plus boot parameters: "regions+mem_region_sort=0" is the same
#: regions kernel with sorting off, its own baseline with the same statistics
DEFAULT_FLAVORS = ("vanilla", "regions", "regions+mem_region_sort=0")
#: the default set boots fast under TCG and covers one node, contiguous and interleaved nodes
DEFAULT_TOPOLOGIES = ("one-node", "two-node", "interleaved-small", "four-node")


@dataclass
class RunOptions:
    flavors: tuple[str, ...] = DEFAULT_FLAVORS
    topologies: tuple[str, ...] = DEFAULT_TOPOLOGIES
    workload: str = "stress"
    seconds: int | None = None          # workload duration; None: the workload's default
    interval: float = 5.0               # seconds between snapshots while the workload runs
    out: Path = Path("runs")
    accel: str = "auto"
    source: str | None = None
    jobs: int | None = None
    append: str = ""                    # extra kernel command line


@dataclass
class GuestOutcome:
    flavor: str
    topology: str
    status: str = "ok"                  # ok, check-failed, kernel-problem, error
    error: str = ""
    boot_seconds: float | None = None
    workload_seconds: float | None = None
    checks: pd.DataFrame | None = None
    record: dict = field(default_factory=dict)


def parse_variant(spec: str) -> tuple[str, str]:
    """"regions+mem_region_sort=0+mem_region_size=256M" -> ("regions", "mem_region_sort=0 mem_region_size=256M")."""
    flavor, *params = spec.split("+")
    for p in params:
        if not p or " " in p:
            raise UserError(f"variant {spec!r}: boot parameters are joined with '+', e.g. regions+mem_region_sort=0")
    return flavor, " ".join(params)


def run_guest(build, variant: str, topo: topology.Topology, opts: RunOptions, vm_dir: Path,
              progress=print) -> GuestOutcome:
    """Boot one (kernel variant, topology), run the workload with snapshots, check, write vm_dir."""
    wl = workloads.get(opts.workload)
    out = GuestOutcome(variant, topo.name)
    append = " ".join(a for a in (parse_variant(variant)[1], opts.append) if a)
    vm_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(topo.path, vm_dir / f"{topo.name}.yaml")
    shutil.copy(build.config_path, vm_dir / "config")
    snaps_dir = vm_dir / "snapshots"
    vm = guest(build.bzimage, topo, vm_dir, append=append, accel=opts.accel,
               name=f"{variant}-{topo.name}")
    try:
        with vm:
            out.boot_seconds = vm.record.boot_seconds
            progress(f"  {vm.name}: ready in {out.boot_seconds:.1f} s ({vm.record.accel})")
            store.atomic_write(vm_dir / "dmesg.txt", vm.run("dmesg", check=True).stdout)
            take_snapshot(vm, "before").save(snaps_dir)
            cmd = wl.command(topo, opts.seconds)
            t0 = time.monotonic()
            with Sampler(vm, opts.interval) as sampler:
                res = vm.run(cmd, timeout=(opts.seconds or wl.seconds) + 300)
            out.workload_seconds = round(time.monotonic() - t0, 2)
            store.atomic_write(vm_dir / "workload.log", f"$ {cmd}\nexit {res.status}\n{res.stdout}{res.stderr}")
            for snap in sampler.snapshots:
                snap.save(snaps_dir)
            for exc in sampler.errors:
                log.warning("%s: sampling stopped early: %s", vm.name, exc)
            if res.status != 0:
                raise VMError(f"{vm.name}: workload {wl.name} exited {res.status}:\n{res.stderr[-2000:]}")
            time.sleep(2)  # let per-cpu lists drain and vmstat fold before the quiescent read
            take_snapshot(vm, "after").save(snaps_dir)
            vm.check_console()
    except GuestKernelError as exc:
        out.status, out.error = "kernel-problem", str(exc)
    except (VMError, HarnessError) as exc:
        out.status, out.error = "error", str(exc)
    finally:
        out.record = json.loads((vm_dir / "vm.json").read_text()) if (vm_dir / "vm.json").exists() else {}
    if out.status == "ok":
        out.checks = check_vm_dir(vm_dir)
        store.write_metrics(vm_dir)
        if checks.failed(out.checks):
            out.status = "check-failed"
    return out


def check_vm_dir(vm_dir: Path) -> pd.DataFrame:
    """Check every quiescent snapshot of a saved guest (before, after) against the model."""
    vm_dir = Path(vm_dir)
    topo_files = sorted(vm_dir.glob("*.yaml"))
    if not topo_files or not (vm_dir / "dmesg.txt").exists():
        raise UserError(f"{vm_dir}: not a guest directory of a run (needs dmesg.txt and the topology .yaml)")
    topo = topology.load(topo_files[0])
    config = (vm_dir / "config").read_text() if (vm_dir / "config").exists() else None
    inputs = checks.model_inputs((vm_dir / "dmesg.txt").read_text(errors="replace"), config,
                                 str(vm_dir / "dmesg.txt"))
    node_ranges = {n.id: list(n.ranges) for n in topo.nodes if n.ranges}
    memoryless = [n.id for n in topo.nodes if not n.ranges]
    tables = []
    for label in ("before", "after"):
        snap = vm_dir / "snapshots" / label
        if snap.is_dir():
            frames = parse_snapshot(store.read_tree(snap))
            tables.append(checks.check_capture(frames, inputs, node_ranges, memoryless).assign(snapshot=label))
    if not tables:
        raise UserError(f"{vm_dir}: no before/after snapshot to check")
    table = pd.concat(tables, ignore_index=True)
    store.write_csv(vm_dir / "checks.csv", table)
    return table


def run(opts: RunOptions, progress=print) -> tuple[Path, list[GuestOutcome]]:
    """Run the main job; returns the run directory and one outcome per (flavor, topology)."""
    topos = [topology.load(t) for t in opts.topologies]
    workloads.get(opts.workload)  # bad names fail before any build
    for v in opts.flavors:
        parse_variant(v)
    started = _dt.datetime.now(_dt.timezone.utc)
    run_dir = Path(opts.out) / started.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=False)
    meta = {
        "started": started.isoformat(), "host": platform.node(), "qemu": qemu_version(),
        "options": {k: str(v) for k, v in vars(opts).items()},
        "topologies": {t.name: str(t.path) for t in topos}, "kernels": {}, "guests": [],
        "status": "running",
    }
    store.write_json(run_dir / "metadata.json", meta)
    try:
        return run_dir, _run_guests(opts, topos, run_dir, meta, progress)
    except BaseException as exc:
        # a run stopped by an error or Ctrl-C says so, rather than staying "running"
        meta["status"] = "aborted"
        meta["error"] = f"{type(exc).__name__}: {exc}"[:4000]
        store.write_json(run_dir / "metadata.json", meta)
        raise


def _run_guests(opts: RunOptions, topos: list[topology.Topology], run_dir: Path, meta: dict,
                progress) -> list[GuestOutcome]:
    t0 = time.monotonic()
    builds = {}
    for flavor in dict.fromkeys(parse_variant(v)[0] for v in opts.flavors):
        progress(f"kernel {flavor}: building (or reusing the cache)")
        b = kernel.build(flavor, opts.source, jobs=opts.jobs)
        builds[flavor] = b
        meta["kernels"][flavor] = {"key": b.key, "cached": b.cached, "bzimage": str(b.bzimage),
                                   **{k: b.metadata.get(k) for k in ("kernel_version", "package_version",
                                                                     "compiler", "durations")}}
        progress(f"kernel {flavor}: {b.key[:12]} ({'cached' if b.cached else 'built'})")
    store.write_json(run_dir / "metadata.json", meta)

    outcomes = []
    for variant in opts.flavors:
        b = builds[parse_variant(variant)[0]]
        for topo in topos:
            progress(f"guest {variant} on {topo.name}")
            o = run_guest(b, variant, topo, opts, run_dir / f"{variant}-{topo.name}", progress)
            outcomes.append(o)
            meta["guests"].append({"flavor": variant, "topology": topo.name, "status": o.status,
                                   "error": o.error[:4000], "boot_seconds": o.boot_seconds,
                                   "workload_seconds": o.workload_seconds,
                                   "qemu_argv": o.record.get("argv"), "accel": o.record.get("accel")})
            store.write_json(run_dir / "metadata.json", meta)
    all_checks = [o.checks.assign(flavor=o.flavor, topology=o.topology)
                  for o in outcomes if o.checks is not None]
    if all_checks:
        store.write_csv(run_dir / "checks.csv", pd.concat(all_checks, ignore_index=True))
    meta["status"] = "ok" if all(o.status == "ok" for o in outcomes) else "failed"
    meta["duration_seconds"] = round(time.monotonic() - t0, 1)
    store.write_json(run_dir / "metadata.json", meta)
    store.atomic_write(run_dir / "summary.txt", summary(outcomes) + "\n")
    return outcomes


def summary(outcomes: list[GuestOutcome]) -> str:
    """One line per guest: flavor, topology, status, boot seconds, checks ok/total."""
    rows = [("flavor", "topology", "status", "boot s", "workload s", "checks")]
    for o in outcomes:
        if o.checks is not None:
            bad = int((o.checks["verdict"] != "ok").sum())
            chk = f"{len(o.checks) - bad}/{len(o.checks)} ok"
        else:
            chk = "-"
        rows.append((o.flavor, o.topology, o.status,
                     f"{o.boot_seconds:.1f}" if o.boot_seconds else "-",
                     f"{o.workload_seconds:.1f}" if o.workload_seconds else "-", chk))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    for o in outcomes:
        if o.error:
            lines.append(f"\n{o.flavor}-{o.topology}: {o.error}")
        elif o.checks is not None and checks.failed(o.checks):
            lines.append(f"\n{o.flavor}-{o.topology}:\n{checks.render(o.checks, only_failures=True)}")
    return "\n".join(lines)
