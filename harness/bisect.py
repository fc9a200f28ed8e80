"""Find the first patch of the series that causes a regression: build every prefix, re-run, judge against a base run.

Prefix k is the series up to and including patch k (k = 0: none of it). The experiment
that regressed (variant, topology, workload, one metric) runs ``repeat`` times on a
prefix kernel and is judged against the base run's samples with the same statistics as
`harness compare`; a prefix is bad when the verdict is REGRESSION. Prefixes are tried
by binary search, assuming the last one (the whole series) is bad and a good one exists.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import kernel, topology
from harness.errors import HarnessError, UserError
from harness.kernel import BuildResult
from harness.results import compare, stats
from harness.results.metrics import METRICS, extract_metrics
from harness.run import GuestStatus, RunOptions, run_guest
from harness.variant import Variant

log = logging.getLogger(__name__)


def first_bad(count: int, is_bad: Callable[[int], bool]) -> int:
    """The smallest k in 1..count with is_bad(k), given is_bad(count) and not is_bad(0); binary search."""
    good, bad = 0, count
    while bad - good > 1:
        mid = (good + bad) // 2
        if is_bad(mid):
            bad = mid
        else:
            good = mid
    return bad


@dataclass(frozen=True)
class BisectOptions:
    base: Path                  # a run with the base samples (e.g. last night's good run)
    metric: str
    variant: str = "regions"
    topology: str = "two-node"
    workload: str = "stress"
    seconds: int | None = None
    repeat: int = 5
    source: str | None = None


def _prefix_builds(opts: BisectOptions, flavor: str) -> list[BuildResult]:
    """BuildResult of every prefix 1..N (built or from the cache), in series order."""
    result = kernel.build(flavor, opts.source, each_patch=True)
    builds = []
    for step in result.steps or []:
        found = kernel.cached_build(step.key) if step.key else None
        if found is None:
            raise UserError(f"bisect: step {step.patch} did not build: {step.error}")
        builds.append(found)
    return builds


def bisect(opts: BisectOptions, progress: Callable[[str], None] = print) -> tuple[str, list[dict[str, object]]]:
    """Name the first bad patch; returns (patch name, one record per prefix tried)."""
    if opts.metric not in METRICS:
        raise UserError(f"bisect: unknown metric {opts.metric!r}; known: {', '.join(METRICS)}")
    variant = Variant.parse(opts.variant)
    _, base_samples = compare.load_run(opts.base, (opts.metric,))
    base = [s.values[opts.metric] for s in base_samples
            if s.variant == str(variant) and s.topology == opts.topology]
    if len(base) < 2:
        raise UserError(f"{opts.base}: needs 2 or more samples of {variant} on {opts.topology} to bisect against")
    patches = kernel.parse_series()
    builds = _prefix_builds(opts, variant.flavor)
    topo = topology.load(opts.topology)
    run_opts = RunOptions(workload=opts.workload, seconds=opts.seconds)
    spec = {opts.metric: stats.MetricSpec(METRICS[opts.metric].better, METRICS[opts.metric].noise_floor)}
    tried: list[dict[str, object]] = []

    def is_bad(k: int) -> bool:
        values = []
        with tempfile.TemporaryDirectory(prefix=f"rh-bisect-{k}-") as tmp:
            for rep in range(opts.repeat):
                progress(f"bisect: prefix {k}/{len(patches)} ({patches[k - 1].name}), repetition {rep + 1}")
                o = run_guest(builds[k - 1], variant, topo, run_opts, Path(tmp) / f"r{rep}", progress)
                if o.status is GuestStatus.ERROR:
                    raise HarnessError(f"bisect: guest of prefix {k} failed: {o.error}")
                values.append(extract_metrics(Path(tmp) / f"r{rep}", None, (opts.metric,))[opts.metric])
        (v,) = stats.judge({opts.metric: (base, values)}, spec)
        bad = v.direction == stats.REGRESSION
        tried.append({"prefix": k, "patch": patches[k - 1].name, "median": v.median_new, "verdict": v.verdict,
                      "direction": v.direction, "bad": bad})
        return bad

    if not is_bad(len(patches)):
        raise UserError(f"bisect: the whole series does not regress {opts.metric} against {opts.base}")
    k = first_bad(len(patches), is_bad)
    return patches[k - 1].name, tried
