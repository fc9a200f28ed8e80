"""Calibration on real guests: the false-alarm rate of the verdicts on A/A data, and the repetitions a shift needs.

Input: repeated samples of one variant (one run, every repetition the same kernel and
options). The A/A false-alarm rate is measured by splitting the repetitions at random
into two halves many times and judging half against half exactly as `harness compare`
does (all metrics of a topology corrected together): any DIFFERENT is a false alarm.
The repetitions needed to see a shift are found by resampling the observed values
(the metric's real spread, not a normal model) into base samples and new samples
scaled by 1 + shift, and asking at which repetition count the verdict is DIFFERENT at
least ``power`` of the time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from harness.results import stats

SPLITS = 200
POWER_SIMULATIONS = 100
REPEATS_TRIED = tuple(range(3, 21))


def false_alarms(samples: Mapping[str, Sequence[float]], specs: Mapping[str, stats.MetricSpec],
                 alpha: float = stats.ALPHA, splits: int = SPLITS, seed: int = 0) -> tuple[dict[str, float], float]:
    """(per-metric false-alarm rate, share of splits with any alarm) over random half/half splits.

    Each split is judged like one comparison: calibrated p per metric, Benjamini-Hochberg
    across the metrics, the noise floor; identical halves are never an alarm.
    """
    rng = np.random.default_rng(seed)
    arrays = {m: np.asarray([v for v in vals if math.isfinite(v)], dtype=np.float64) for m, vals in samples.items()}
    arrays = {m: a for m, a in arrays.items() if len(a) >= 4}
    if not arrays:
        return {}, math.nan
    names = list(arrays)
    p = np.empty((splits, len(names)))
    big = np.empty((splits, len(names)), dtype=bool)
    for j, m in enumerate(names):
        a = arrays[m]
        half = len(a) // 2
        perms = np.argsort(rng.random((splits, len(a))), axis=1)
        base, new = a[perms[:, :half]], a[perms[:, half:2 * half]]
        p[:, j] = stats.calibrated_p_rows(base, new)
        big[:, j] = np.abs(np.median(new, axis=1) - np.median(base, axis=1)) >= specs[m].noise_floor
    alarms = stats.bh_reject(p, alpha) & big
    return {m: float(alarms[:, j].mean()) for j, m in enumerate(names)}, float(alarms.any(axis=1).mean())


def repeats_needed(values: Sequence[float] | npt.NDArray[np.float64], spec: stats.MetricSpec, shift: float = 0.05,
                   alpha: float = stats.ALPHA, power: float = 0.8, sims: int = POWER_SIMULATIONS,
                   seed: int = 0) -> int | None:
    """The fewest repetitions per side at which a ``shift`` of the median is called DIFFERENT ``power`` of the time.

    None when even the most repetitions tried do not get there (a metric too noisy, or
    one whose changes stay under its noise floor).
    """
    a = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if len(a) < 2 or float(np.median(a)) == 0:
        return None
    rng = np.random.default_rng(seed)
    for n in REPEATS_TRIED:
        base = rng.choice(a, (sims, n))
        new = rng.choice(a, (sims, n)) * (1 + shift)
        if stats.different_rows(base, new, spec, alpha).mean() >= power:
            return n
    return None


def calibration_table(samples: Mapping[str, Sequence[float]], specs: Mapping[str, stats.MetricSpec],
                      alpha: float = stats.ALPHA, shift: float = 0.05, seed: int = 0) -> tuple[pd.DataFrame, float]:
    """Per metric: n, median, coefficient of variation, A/A false-alarm rate, repetitions for ``shift``."""
    rates, family = false_alarms(samples, specs, alpha, seed=seed)
    rows = []
    for m, vals in samples.items():
        a = np.asarray([v for v in vals if math.isfinite(v)], dtype=np.float64)
        if len(a) == 0:
            continue
        med = float(np.median(a))
        cv = float(np.std(a, ddof=1) / abs(np.mean(a))) if len(a) > 1 and np.mean(a) else math.nan
        rows.append({"metric": m, "n": len(a), "median": med, "cv": cv,
                     "false_alarm_rate": rates.get(m, math.nan),
                     f"repeats_for_{round(shift * 100)}pct": repeats_needed(a, specs[m], shift, alpha, seed=seed)})
    return pd.DataFrame(rows), family
