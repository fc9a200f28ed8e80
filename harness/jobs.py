"""The matrix as jobs: specs with deterministic ids, the interleaved plan, shards, resume selection, merging.

A job is one guest: (variant, topology, workload, repetition, seed) plus the run settings
that shape every guest (workload seconds, snapshot interval, extra command line, region
size). Its id is a hash of exactly that, so the same matrix gives the same ids on any
machine, in any process, in any shard. A run is the merge of its jobs' results: one
metadata entry and one guest directory per id. Everything here is pure (no I/O).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import UserError

#: bump when the id recipe changes (ids of older runs then no longer match a new plan)
ID_SCHEMA = 1
#: hex digits of a job id: 64 bits, no collision in any matrix a person would run
ID_LENGTH = 16
#: guest statuses a resume runs again: the infrastructure failed (GuestStatus.ERROR);
#: check failures and guest kernel problems are findings, not accidents
RESUMABLE = frozenset({"error"})


@dataclass(frozen=True)
class JobSpec:
    """What one guest runs; its id is the hash of these fields and nothing else."""

    variant: str
    topology: str
    workload: str
    repetition: int
    seed: int
    #: run settings shared by every guest of the matrix, as sorted (name, value) text pairs
    settings: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        return job_id(self)

    def to_json(self) -> dict[str, Any]:
        return {"variant": self.variant, "topology": self.topology, "workload": self.workload,
                "repetition": self.repetition, "seed": self.seed, "settings": dict(self.settings)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobSpec:
        try:
            settings = data.get("settings") or {}
            return cls(str(data["variant"]), str(data["topology"]), str(data["workload"]),
                       int(data["repetition"]), int(data["seed"]),
                       tuple(sorted((str(k), str(v)) for k, v in dict(settings).items())))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"job spec {dict(data)!r}: {exc}; the run's metadata.json is damaged") from None


def job_id(spec: JobSpec) -> str:
    """sha256 of the spec's canonical JSON (sorted keys, no whitespace), first ID_LENGTH hex digits."""
    text = json.dumps({"schema": ID_SCHEMA, **spec.to_json()}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


def pair_seed(topology: str, workload: str, repetition: int) -> int:
    """The seed of a job: the same for every variant of one (topology, workload, repetition).

    Variants compared with each other then draw the same numbers (paired samples). No
    shipped workload is randomised today; the seed is part of the spec so one that is
    can take it without changing any other job's id.
    """
    digest = hashlib.sha256(f"{topology}\0{workload}\0{repetition}".encode()).hexdigest()
    return int(digest[:8], 16)


@dataclass(frozen=True)
class Job:
    """A spec placed in a run: its position in the interleaved plan and its guest directory's name."""

    spec: JobSpec
    order: int
    dir: str

    @property
    def id(self) -> str:
        return self.spec.id

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "order": self.order, "dir": self.dir, "spec": self.spec.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        try:
            job = cls(JobSpec.from_json(data["spec"]), int(data["order"]), str(data["dir"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"job {data!r}: {exc}; the run's metadata.json is damaged") from None
        if "id" in data and data["id"] != job.id:
            raise UserError(f"job {data['id']}: its spec hashes to {job.id}; the run's metadata.json was edited "
                            "or written by another version of the harness")
        return job


def guest_dir_name(variant: str, topology: str, repetition: int, repeat: int) -> str:
    """<variant>-<topology>, with -r<k> when every guest runs more than once."""
    return f"{variant}-{topology}" + (f"-r{repetition}" if repeat > 1 else "")


def plan(variants: Sequence[str], topologies: Sequence[str], workload: str, repeat: int,
         settings: Mapping[str, str] | None = None) -> list[Job]:
    """Every job of the matrix in run order: repetitions interleaved (A B A B ...).

    Drift over a run (a busy host, a warming cache) then spreads over every variant
    instead of landing on the last one; executors keep this order as their priority.
    """
    pairs = tuple(sorted((str(k), str(v)) for k, v in (settings or {}).items()))
    jobs: list[Job] = []
    for rep in range(1, repeat + 1):
        for v in variants:
            for t in topologies:
                spec = JobSpec(v, t, workload, rep, pair_seed(t, workload, rep), pairs)
                jobs.append(Job(spec, len(jobs), guest_dir_name(v, t, rep, repeat)))
    ids = [j.id for j in jobs]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise UserError(f"the matrix names the same guest twice (jobs {', '.join(dup)}): "
                        "give each variant and topology once")
    return jobs


_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N) with 1 <= K <= N; anything else is an error naming --shard."""
    m = _SHARD.match(text or "")
    if not m or not 1 <= int(m[1]) <= int(m[2]):
        raise UserError(f"--shard {text!r}: give K/N with 1 <= K <= N, e.g. --shard 1/4 for the first of four slices")
    return int(m[1]), int(m[2])


def select_shard(jobs: Sequence[Job], k: int, n: int) -> list[Job]:
    """The K-th of N slices: every N-th job in id order starting at the K-th, returned in plan order.

    Id order makes a slice independent of the plan's layout (and of the machine that
    computes it); dealing round-robin keeps the slices within one job of each other in
    size and mixes variants into every slice.
    """
    if not 1 <= k <= n:
        raise UserError(f"--shard {k}/{n}: give K/N with 1 <= K <= N")
    by_id = sorted(jobs, key=lambda j: j.id)
    chosen = {j.id for i, j in enumerate(by_id) if i % n == k - 1}
    return [j for j in jobs if j.id in chosen]


def select_resume(jobs: Sequence[Job], entries: Iterable[Mapping[str, Any]], present: Iterable[str]) -> list[Job]:
    """The jobs a resume runs again: no entry, an entry whose status is RESUMABLE, or a directory gone.

    entries: the run's metadata guest entries ("job", "status"); present: the guest
    directory names that exist. A check failure or a guest kernel problem is kept: it
    is a result, and running until a guest passes would hide it.
    """
    status = {str(e.get("job")): str(e.get("status")) for e in entries if e.get("job")}
    have = set(present)
    return [j for j in jobs if j.id not in status or status[j.id] in RESUMABLE or j.dir not in have]


class MergeConflict(UserError):
    """Two runs hold different results for the same job id (overlapping shards, or runs of different matrices)."""


def merge_entries(sources: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> dict[str, tuple[str, dict[str, Any]]]:
    """{job id: (source, entry)} over several runs' guest entries, each job once.

    The same id twice is one result when the guest directories have the same digest
    (a run merged again); an infrastructure failure ("error") gives way to a result;
    two different results for one id are a MergeConflict naming both sources.
    """
    merged: dict[str, tuple[str, dict[str, Any]]] = {}
    for source, entries in sources:
        for e in entries:
            jid = e.get("job")
            if not jid:
                raise UserError(f"{source}: guest {e.get('dir')!r} has no job id (a run made before jobs "
                                "existed cannot be merged; run it again)")
            jid = str(jid)
            if jid not in merged:
                merged[jid] = (source, dict(e))
                continue
            first_source, first = merged[jid]
            if first.get("digest") == e.get("digest"):
                continue
            if first.get("status") in RESUMABLE and e.get("status") not in RESUMABLE:
                merged[jid] = (source, dict(e))
            elif e.get("status") in RESUMABLE:
                continue
            else:
                raise MergeConflict(
                    f"job {jid} ({e.get('dir')}) has different results in {first_source} and {source}: "
                    "the runs overlap (the same shard twice, or shards of different --shard N); "
                    "merge each shard once")
    return merged
