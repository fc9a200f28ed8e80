"""Verdicts on repeated measurements: calibrated three-way tests, effect sizes, multiple-testing control.

The shape follows Chromium's Pinpoint, calibrated rather than assumed:

* the raw statistic is p = min(Kolmogorov-Smirnov p, Mann-Whitney U p) of base vs new;
* the minimum of two p-values is not a p-value (under no change it is small more often
  than its value says), so it is turned into one by its null distribution, simulated for
  the sample sizes at hand: rank tests are distribution-free, so uniform samples give
  the null for any continuous metric (ties only make the tests more conservative);
* the calibrated p-values of all metrics of one comparison go through Benjamini-Hochberg;
* DIFFERENT where the corrected test rejects and the medians differ by at least the
  metric's noise floor; SAME where p is above the level that a change of
  ``SAME_EFFECT_SD`` standard deviations would stay under 95% of the time, or where the
  difference is real but below the floor; UNKNOWN otherwise ("add repetitions");
* the effect is the ratio of medians with a percentile-bootstrap 95% interval;
* one sample on a side is "single sample": an indication, never a verdict.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

Floats = npt.NDArray[np.float64]

DIFFERENT, SAME, UNKNOWN, SINGLE = "DIFFERENT", "SAME", "UNKNOWN", "single sample"
REGRESSION, IMPROVEMENT = "REGRESSION", "IMPROVEMENT"

#: default false-alarm level of one comparison (after Benjamini-Hochberg)
ALPHA = 0.01
#: repetitions per side by default: at 5 a complete separation is p = 0.008, too close to
#: ALPHA for a correction over several metrics; 8 gives room (see BENCHMARKS.md)
DEFAULT_REPEAT = 8
#: SAME means: a change this many standard deviations large would have been flagged
SAME_EFFECT_SD = 1.0
#: simulated samples for the null distribution and the SAME threshold
SIMULATIONS = 4000
BOOTSTRAP = 2000


def _clean(values: Sequence[float] | Floats) -> Floats:
    a = np.asarray(values, dtype=np.float64)
    return a[np.isfinite(a)]


def break_ties(base: Floats, new: Floats, seed: int = 0) -> tuple[Floats, Floats]:
    """Equal values put in a random order (rows of 2-D arrays each on their own), every other order kept.

    The null distribution is simulated for continuous data; with ties scipy switches
    to asymptotic p-values that can fall below the exact minimum for small samples
    (3 against 3 constant values: MWU says 0.04 where no arrangement gets under 0.1),
    and the calibration would call that a one-in-4000 event. Breaking ties at random
    (a randomised rank test) restores the continuous case: under no change every order
    is equally likely, so the false-alarm rate stays what the calibration says.
    """
    pooled = np.concatenate([base, new], axis=-1)
    s = np.sort(pooled, axis=-1)
    gaps = np.diff(s, axis=-1)
    gaps = np.where(gaps > 0, gaps, np.inf)
    gap = np.min(gaps, axis=-1, keepdims=True) if gaps.shape[-1] else np.full(pooled.shape[:-1] + (1,), np.inf)
    scale = np.where(np.isfinite(gap), gap, np.maximum(np.abs(s[..., :1]), 1.0)) * 1e-3
    rng = np.random.default_rng(seed)
    jitter = (rng.random(pooled.shape) - 0.5) * scale
    out = pooled + jitter
    k = base.shape[-1]
    return out[..., :k], out[..., k:]


def raw_p(base: Sequence[float] | Floats, new: Sequence[float] | Floats, seed: int = 0) -> float:
    """min(KS p, Mann-Whitney U p), two-sided, ties broken at random; 1.0 when every value is equal."""
    b, n = _clean(base), _clean(new)
    if len(b) == 0 or len(n) == 0:
        return math.nan
    if np.ptp(np.concatenate([b, n])) == 0:
        return 1.0
    b, n = break_ties(b, n, seed)
    return float(_raw_p_rows(b[None, :], n[None, :])[0])


def _raw_p_rows(base: Floats, new: Floats) -> Floats:
    """raw_p for many comparisons at once (one per row), on tie-free data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ks = np.asarray(sps.ks_2samp(base, new, axis=1).pvalue, dtype=np.float64)
        mwu = np.asarray(sps.mannwhitneyu(base, new, alternative="two-sided", axis=1).pvalue, dtype=np.float64)
    return np.minimum(ks, mwu)


@functools.lru_cache(maxsize=64)
def null_distribution(n_base: int, n_new: int, sims: int = SIMULATIONS, seed: int = 12345) -> Floats:
    """Sorted raw_p values of ``sims`` comparisons where nothing changed."""
    rng = np.random.default_rng(seed)
    p = _raw_p_rows(rng.random((sims, n_base)), rng.random((sims, n_new)))
    return np.sort(p)


def calibrated_p(p: float, n_base: int, n_new: int) -> float:
    """The chance that raw_p is at most ``p`` when nothing changed (a valid p-value)."""
    if math.isnan(p):
        return math.nan
    null = null_distribution(n_base, n_new)
    # (k + 1) / (N + 1): never exactly 0 from a finite simulation
    k = int(np.searchsorted(null, p * (1 + 1e-9), side="right"))
    return (k + 1) / (len(null) + 1)


@functools.lru_cache(maxsize=64)
def same_threshold(n_base: int, n_new: int, effect_sd: float = SAME_EFFECT_SD,
                   sims: int = SIMULATIONS, seed: int = 54321) -> float:
    """Calibrated p above which a shift of ``effect_sd`` standard deviations happens only 5% of the time."""
    rng = np.random.default_rng(seed)
    p = _raw_p_rows(rng.standard_normal((sims, n_base)), rng.standard_normal((sims, n_new)) + effect_sd)
    null = null_distribution(n_base, n_new)
    cal = (np.searchsorted(null, p * (1 + 1e-9), side="right") + 1) / (len(null) + 1)
    return float(np.quantile(cal, 0.95))


def calibrated_p_rows(base: Floats, new: Floats, seed: int = 0) -> Floats:
    """calibrated_p of raw_p for many comparisons of equal sizes at once (one per row)."""
    null = null_distribution(base.shape[1], new.shape[1])
    p = _raw_p_rows(*break_ties(base, new, seed))
    const = (np.ptp(base, axis=1) == 0) & (np.ptp(new, axis=1) == 0) & (base[:, 0] == new[:, 0])
    cal = (np.searchsorted(null, p * (1 + 1e-9), side="right") + 1) / (len(null) + 1)
    return np.where(const, 1.0, cal)


def bh_reject(p: Floats, alpha: float) -> npt.NDArray[np.bool_]:
    """Benjamini-Hochberg on each row of p (metrics in columns): which are rejected at ``alpha``."""
    m = p.shape[1]
    order = np.argsort(p, axis=1)
    ranked = np.take_along_axis(p, order, axis=1)
    below = ranked <= alpha * np.arange(1, m + 1) / m
    # every rank up to the largest one below its line is rejected
    last = np.where(below.any(axis=1), m - 1 - np.argmax(below[:, ::-1], axis=1), -1)
    rejected_ranked = np.arange(m)[None, :] <= last[:, None]
    out = np.empty_like(rejected_ranked)
    np.put_along_axis(out, order, rejected_ranked, axis=1)
    return out


def different_rows(base: Floats, new: Floats, spec: MetricSpec, alpha: float = ALPHA) -> npt.NDArray[np.bool_]:
    """For one metric judged alone (no correction): which rows judge() would call DIFFERENT."""
    cal = calibrated_p_rows(base, new)
    big = np.abs(np.median(new, axis=1) - np.median(base, axis=1)) >= spec.noise_floor
    return (cal <= alpha) & big


def median_ratio_ci(base: Floats, new: Floats, level: float = 0.95, n_boot: int = BOOTSTRAP,
                    seed: int = 0) -> tuple[float, float, float]:
    """(median(new)/median(base), low, high) with a percentile bootstrap interval; NaN when base is 0."""
    mb, mn = float(np.median(base)), float(np.median(new))
    if mb == 0:
        return (math.nan if mn else 1.0), math.nan, math.nan
    ratio = mn / mb
    if len(base) < 2 or len(new) < 2:
        return ratio, math.nan, math.nan
    rng = np.random.default_rng(seed)
    bb = np.median(rng.choice(base, size=(n_boot, len(base))), axis=1)
    nn = np.median(rng.choice(new, size=(n_boot, len(new))), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = nn / bb
    ratios = ratios[np.isfinite(ratios)]
    if len(ratios) == 0:
        return ratio, math.nan, math.nan
    tail = (1 - level) / 2
    return ratio, float(np.quantile(ratios, tail)), float(np.quantile(ratios, 1 - tail))


@dataclass(frozen=True)
class Verdict:
    metric: str
    n_base: int
    n_new: int
    median_base: float
    median_new: float
    ratio: float          # median(new) / median(base)
    ratio_low: float      # bootstrap 95% interval of the ratio
    ratio_high: float
    p_raw: float          # min(KS, MWU)
    p: float              # calibrated
    q: float              # Benjamini-Hochberg adjusted
    verdict: str          # DIFFERENT, SAME, UNKNOWN, single sample
    direction: str        # REGRESSION / IMPROVEMENT for DIFFERENT; "indicative ..." for single samples
    note: str


@dataclass(frozen=True)
class MetricSpec:
    """What the statistics need to know of a metric: which way is better and what change is too small."""

    better: Literal["lower", "higher"]
    noise_floor: float = 0.0


def _direction(better: str, base: float, new: float) -> str:
    worse = new > base if better == "lower" else new < base
    return REGRESSION if worse else IMPROVEMENT


def judge(samples: Mapping[str, tuple[Sequence[float], Sequence[float]]],
          specs: Mapping[str, MetricSpec], alpha: float = ALPHA, seed: int = 0) -> list[Verdict]:
    """Verdicts for the metrics of one comparison: {metric: (base samples, new samples)}.

    NaN samples are dropped; a metric with no sample on a side is left out (the caller
    decides whether absence is a failure).
    """
    cleaned = {m: (_clean(b), _clean(n)) for m, (b, n) in samples.items()}
    cleaned = {m: bn for m, bn in cleaned.items() if len(bn[0]) and len(bn[1])}
    multi = [m for m, (b, n) in cleaned.items() if len(b) >= 2 and len(n) >= 2]
    p_raw = {m: raw_p(*cleaned[m]) for m in multi}
    p_cal = {m: calibrated_p(p_raw[m], len(cleaned[m][0]), len(cleaned[m][1])) for m in multi}
    q: dict[str, float] = {}
    reject: dict[str, bool] = {}
    if multi:
        rej, qs, _, _ = multipletests([p_cal[m] for m in multi], alpha=alpha, method="fdr_bh")
        q = {m: float(v) for m, v in zip(multi, qs, strict=True)}
        reject = {m: bool(v) for m, v in zip(multi, rej, strict=True)}
    out = []
    for m, (b, n) in cleaned.items():
        spec = specs[m]
        mb, mn = float(np.median(b)), float(np.median(n))
        ratio, lo, hi = median_ratio_ci(b, n, seed=seed)
        small = abs(mn - mb) < spec.noise_floor
        if m not in multi:
            hint = "" if small or mb == mn else f"indicative {_direction(spec.better, mb, mn).lower()}"
            out.append(Verdict(m, len(b), len(n), mb, mn, ratio, lo, hi, math.nan, math.nan, math.nan,
                               SINGLE, hint, "one sample on a side: repeat to get a verdict"))
            continue
        if np.ptp(b) == 0 and np.ptp(n) == 0 and mb == mn:
            verdict, direction, note = SAME, "", "identical samples"
        elif reject[m] and not small:
            verdict, direction, note = DIFFERENT, _direction(spec.better, mb, mn), ""
        elif reject[m]:
            verdict, direction, note = SAME, "", f"difference below the noise floor {spec.noise_floor:g}"
        elif p_cal[m] > same_threshold(len(b), len(n)):
            verdict, direction, note = SAME, "", ""
        else:
            verdict, direction, note = UNKNOWN, "", "add repetitions"
        out.append(Verdict(m, len(b), len(n), mb, mn, ratio, lo, hi, p_raw[m], p_cal[m], q[m],
                           verdict, direction, note))
    return out
