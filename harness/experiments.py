"""Experiments built on the main job: the consolidation experiment of the original region series.

``consolidation`` boots each variant ``repeat`` times, interleaved, on one topology with
small regions, runs the churn workload beside a file neighbour, and reports what the
original series reported: wholly free regions before -> after per variant, here as a
mean with a 95% confidence interval over the repetitions and as a share of the model
optimum (harness.model.consolidation), with a verdict against the first variant.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from harness import run as main_job
from harness.fs import write_csv
from harness.results import compare
from harness.table import render_table

FIGURES = ("free_regions_before", "free_regions_after", "optimum_free_regions_after",
           "free_regions_pct_optimum_after")
#: what the consolidation costs (harness.results.metrics): the workload's wall time, targeted
#: evacuation's pages per region freed and kcompactd CPU time, THP faults served
PRICE = ("workload_seconds", "region_evac_pages_per_region", "region_evac_cpu_ms", "thp_fault_success")
#: judged against the first variant, repetitions interleaved (harness.results.compare)
VERDICTS = ("free_regions_after", "free_regions_pct_optimum_after", "workload_seconds")


@dataclass(frozen=True)
class ConsolidationOptions:
    #: the statistics baseline (every policy off) first, then sorting alone, then sorting and the
    #: bank (the regions default), then the bank with targeted evacuation (kernel-patches 0009);
    #: all but the baseline keep compaction out of drained regions (0010, mem_region_fill=1)
    variants: tuple[str, ...] = ("regions+mem_region_sort=0", "regions+mem_region_bank=0", "regions",
                                 "regions+mem_region_evacuate=1")
    topology: str = "two-node"
    region_size: str = "16M"
    #: measured on two-node (BENCHMARKS.md): since quiescent snapshots drain the per-cpu lists,
    #: 8 repetitions give 95% CI half-widths of 0.5-1.4 points of the optimum (the floor is 5)
    repeat: int = 8
    workload: str = "churn-pagecache"
    seconds: int = 30
    out: Path = Path("runs")
    accel: str = "auto"
    source: str | None = None


def mean_ci(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its Student-t confidence interval (NaN with fewer than 2 values)."""
    a = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if len(a) == 0:
        return math.nan, math.nan
    if len(a) < 2:
        return float(a.mean()), math.nan
    half = float(sps.t.ppf(0.5 + level / 2, len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a)))
    return float(a.mean()), half


def summarize(samples: pd.DataFrame, variants: tuple[str, ...],
              figures: tuple[str, ...] = FIGURES + PRICE) -> pd.DataFrame:
    """Per variant: n, and each figure's mean with its 95% CI half-width (column f"{figure}_ci")."""
    rows = []
    for v in variants:
        s = samples[samples["variant"] == v]
        row: dict[str, object] = {"variant": v, "n": len(s)}
        for f in figures:
            mean, half = mean_ci(s[f].tolist())
            row[f], row[f"{f}_ci"] = mean, half
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(mean: object, half: object, digits: int = 1) -> str:
    m, h = float(mean), float(half)  # type: ignore[arg-type]
    return "-" if math.isnan(m) else (f"{m:.{digits}f}" if math.isnan(h) else f"{m:.{digits}f} ± {h:.{digits}f}")


def render(table: pd.DataFrame) -> str:
    """The original series' table, then what it cost."""
    rows: list[tuple[object, ...]] = [("variant", "n", "free regions before", "after", "optimum after",
                                       "after, % of optimum")]
    for r in table.to_dict("records"):
        rows.append((r["variant"], r["n"], *(_cell(r[f], r[f"{f}_ci"]) for f in FIGURES)))
    price: list[tuple[object, ...]] = [("variant", "workload s", "evac pages/region", "evac CPU ms",
                                        "THP fault success")]
    for r in table.to_dict("records"):
        price.append((r["variant"], *(_cell(r[f], r[f"{f}_ci"], 3 if f == "thp_fault_success" else 1)
                                      for f in PRICE)))
    return ("wholly free regions (mean ± 95% CI half-width over repetitions)\n"
            + render_table(rows, right={1, 2, 3, 4, 5})
            + "\n\nthe price (mean ± 95% CI; under TCG times are emulated: compare variants, not hardware)\n"
            + render_table(price, right={1, 2, 3, 4}))


def analyze(run_dir: Path, variants: tuple[str, ...]
            ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """The experiment's figures from a finished run directory: (samples, summary, verdicts against
    the first variant); writes consolidation.csv and consolidation-verdicts/. Guests whose
    infrastructure failed give no sample."""
    _, loaded = compare.load_run(run_dir, FIGURES + PRICE)   # VERDICTS is a subset: one read of the run
    kept = [s for s in loaded if s.status != main_job.GuestStatus.ERROR and s.variant in variants]
    samples = pd.DataFrame([{"variant": s.variant, "repetition": s.repetition, "guest": s.guest, **s.values}
                            for s in kept], columns=["variant", "repetition", "guest", *FIGURES, *PRICE])
    write_csv(run_dir / "consolidation.csv", samples)
    table = summarize(samples, variants)
    verdicts = None
    if len(variants) > 1:
        verdicts = compare.judge_variants(kept, variants[0], variants[1:], VERDICTS, where=str(run_dir))
        compare.write_report(verdicts, run_dir / "consolidation-verdicts")
    return samples, table, verdicts


def consolidation(opts: ConsolidationOptions, progress: Callable[[str], None] = print
                  ) -> tuple[Path, pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """Run the experiment; returns (run dir, samples, summary table, verdicts against the first variant)."""
    run_opts = main_job.RunOptions(flavors=opts.variants, topologies=(opts.topology,), workload=opts.workload,
                                   seconds=opts.seconds, interval=max(2.0, opts.seconds / 6), out=opts.out,
                                   accel=opts.accel, source=opts.source, repeat=opts.repeat,
                                   region_size=opts.region_size)
    run_dir, outcomes = main_job.run(run_opts, progress)
    samples, table, verdicts = analyze(run_dir, opts.variants)
    main_job.raise_for_outcomes(outcomes, run_dir)
    return run_dir, samples, table, verdicts
