"""`harness merge`: run directories of one matrix (shards, a resumed run) joined into one run, each job once."""

from __future__ import annotations

import datetime as _dt
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from harness import jobs
from harness.errors import UserError
from harness.fs import disk_full_is_infra, read_json, tree_digest
from harness.run import GuestOutcome, finish

log = logging.getLogger(__name__)


def _load(run_dir: Path) -> dict[str, Any]:
    if not (run_dir / "metadata.json").is_file():
        raise UserError(f"{run_dir}: not a run directory (no metadata.json)")
    meta = read_json(run_dir / "metadata.json")
    if not isinstance(meta, dict) or "jobs" not in meta or "matrix" not in meta:
        raise UserError(f"{run_dir}: the run records no jobs (made before `harness merge` existed, or damaged); "
                        "it cannot be merged")
    return meta


def merge_runs(run_dirs: list[Path], out: Path) -> tuple[Path, list[GuestOutcome], list[str]]:
    """Merge runs of one matrix into `out` (created whole, or not at all).

    Returns the merged run, its outcomes in plan order and the directory names of the
    jobs no run holds. Runs of different matrices or kernels, and two different results
    for one job, are errors naming the runs; an infrastructure failure gives way to a
    result of the same job from another run.
    """
    out = Path(out)
    if out.exists():
        raise UserError(f"--out {out}: exists; give a new directory for the merged run")
    if not run_dirs:
        raise UserError("merge: give the run directories to merge")
    metas = [(Path(r), _load(Path(r))) for r in run_dirs]
    first_dir, first = metas[0]
    plan = [jobs.Job.from_json(j) for j in first["jobs"]]
    plan_ids = [j.id for j in plan]
    kernels: dict[str, tuple[str, Path]] = {}
    for run_dir, meta in metas:
        ids = [str(j.get("id")) for j in meta["jobs"]]
        if sorted(ids) != sorted(plan_ids):
            raise UserError(f"{run_dir} and {first_dir} are runs of different matrices (their job lists differ: "
                            "other variants, topologies, repetitions or settings); merge shards of one matrix")
        for flavor, k in meta.get("kernels", {}).items():
            key = str(k.get("key"))
            if flavor in kernels and kernels[flavor][0] != key:
                other = kernels[flavor][1]
                raise UserError(f"kernel {flavor}: {key[:12]} in {run_dir}, {kernels[flavor][0][:12]} in {other}: "
                                "the shards were built from different sources or series; run them again alike")
            kernels.setdefault(flavor, (key, run_dir))
    merged = jobs.merge_entries([(str(r), m.get("guests", [])) for r, m in metas])
    unknown = sorted(set(merged) - set(plan_ids))
    if unknown:
        raise UserError(f"merge: guests of jobs not in the matrix ({', '.join(unknown[:5])}); the runs are damaged")

    out.parent.mkdir(parents=True, exist_ok=True)
    with disk_full_is_infra("writing the merged run", out.parent):
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
        try:
            for source, entry in merged.values():
                src = Path(source) / str(entry["dir"])
                if not src.is_dir():
                    if entry.get("digest"):
                        raise UserError(f"{src}: missing, though {source}/metadata.json lists it")
                    continue
                if entry.get("digest") and tree_digest(src) != entry["digest"]:
                    raise UserError(f"{src}: its files differ from the digest its run recorded (edited or "
                                    "damaged since); restore it or run that job again with --resume")
                shutil.copytree(src, tmp / str(entry["dir"]), symlinks=True)
            meta = dict(first)
            meta.update({
                "started": min(str(m.get("started", "")) for _, m in metas),
                "hosts": sorted({str(m.get("host")) for _, m in metas}),
                "kernels": {f: next(m["kernels"][f] for _, m in metas if f in m.get("kernels", {}))
                            for f in kernels},
                "guests": sorted((e for _, e in merged.values()), key=lambda g: int(g.get("order", 0))),
                "shard": None, "executor": "merged",
                "merged_from": [str(r) for r, _ in metas],
                "merged": _dt.datetime.now(_dt.UTC).isoformat(),
                "duration_seconds": sum(float(m.get("duration_seconds") or 0) for _, m in metas),
            })
            meta.pop("error", None)
            outcomes = finish(tmp, meta, plan)
            tmp.rename(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    missing = [j.dir for j in plan if j.id not in merged]
    return out, outcomes, missing
