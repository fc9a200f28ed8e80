"""The verdict statistics on seeded synthetic samples: false-alarm rate, power, labels."""

import numpy as np
import pandas as pd
import pytest

from harness.results import stats

SEEDS = 300


def _rate(n: int, shift: float, cv: float = 0.02, alpha: float = 0.05, discrete: bool = False) -> float:
    """Fraction of seeds where one metric (base vs base*(1+shift)) is called DIFFERENT."""
    hits = 0
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        if discrete:  # counts with many ties, like free regions
            base, new = rng.poisson(20, n), rng.poisson(20 * (1 + shift), n)
        else:
            base = rng.normal(100, 100 * cv, n)
            new = rng.normal(100 * (1 + shift), 100 * cv, n)
        (v,) = stats.judge({"m": (base, new)}, {"m": stats.MetricSpec("lower")}, alpha=alpha)
        hits += v.verdict == stats.DIFFERENT
    return hits / SEEDS


@pytest.mark.parametrize("n", [5, 8])
@pytest.mark.parametrize("discrete", [False, True])
def test_false_alarm_rate_is_at_most_alpha(n, discrete):
    # binomial standard error at 5% over 300 seeds is 1.3%: allow three of them
    assert _rate(n, 0.0, discrete=discrete) <= 0.05 + 0.038


def test_power_grows_with_the_shift_at_the_default_repetitions():
    n = stats.DEFAULT_REPEAT
    power = {s: _rate(n, s, alpha=stats.ALPHA) for s in (0.02, 0.05, 0.10)}
    assert power[0.02] <= power[0.05] <= power[0.10]
    # 5 and 10 standard deviations (cv 2%) are found nearly always at alpha 1%
    assert power[0.10] >= 0.95 and power[0.05] >= 0.9


def test_many_unchanged_metrics_raise_no_alarm_after_correction():
    alarms = 0
    for seed in range(50):
        rng = np.random.default_rng(1000 + seed)
        samples = {f"m{i}": (rng.normal(10, 1, 8), rng.normal(10, 1, 8)) for i in range(20)}
        verdicts = stats.judge(samples, {m: stats.MetricSpec("higher") for m in samples})
        alarms += any(v.verdict == stats.DIFFERENT for v in verdicts)
    assert alarms <= 3  # family-wise: at most a few of 50 comparisons of 20 metrics


def test_direction_effect_and_interval():
    base = [100.0, 101, 99, 100.5, 99.5, 100, 100.2, 99.8]
    new = [x * 1.2 for x in base]
    lower = stats.judge({"t": (base, new)}, {"t": stats.MetricSpec("lower")})[0]
    higher = stats.judge({"t": (base, new)}, {"t": stats.MetricSpec("higher")})[0]
    assert (lower.verdict, lower.direction) == (stats.DIFFERENT, stats.REGRESSION)
    assert (higher.verdict, higher.direction) == (stats.DIFFERENT, stats.IMPROVEMENT)
    assert lower.ratio == pytest.approx(1.2)
    assert lower.ratio_low <= 1.2 <= lower.ratio_high


def test_noise_floor_and_deterministic_samples():
    base = [2282.0] * 5
    tiny = stats.judge({"c": (base, [2283.0] * 5)}, {"c": stats.MetricSpec("lower", noise_floor=5)})[0]
    assert tiny.verdict == stats.SAME and "noise floor" in tiny.note
    same = stats.judge({"c": (base, base)}, {"c": stats.MetricSpec("lower")})[0]
    assert same.verdict == stats.SAME and same.p_raw == 1.0


def test_single_sample_is_only_indicative():
    (v,) = stats.judge({"r": ([93.0], [87.0])}, {"r": stats.MetricSpec("higher", noise_floor=1)})
    assert v.verdict == stats.SINGLE and v.direction == "indicative regression"
    (v,) = stats.judge({"r": ([93.0], [93.5])}, {"r": stats.MetricSpec("higher", noise_floor=1)})
    assert v.direction == ""


def test_missing_sides_and_nans_are_left_out():
    verdicts = stats.judge({"a": ([1.0, float("nan")], []), "b": ([1.0, 2.0], [1.0, 2.0])},
                           {"a": stats.MetricSpec("lower"), "b": stats.MetricSpec("lower")})
    assert [v.metric for v in verdicts] == ["b"]


def test_calibration_makes_min_p_a_p_value():
    # the smallest min(KS, MWU) at 5 vs 5 is 2/252; calibrated it is a bit larger, never smaller
    p = stats.calibrated_p(2 / 252, 5, 5)
    assert 2 / 252 <= p < 0.02
    null = stats.null_distribution(8, 8)
    cal = np.array([stats.calibrated_p(x, 8, 8) for x in null[::40]])
    # uniform: the share of calibrated p-values at most 0.1 is about 0.1
    assert abs((cal <= 0.1).mean() - 0.1) < 0.05


def test_calibration_on_a_a_data_and_repeats_needed():
    from harness.results import calibrate

    rng = np.random.default_rng(7)
    samples = {"quiet": list(rng.normal(100, 0.5, 16)), "noisy": list(rng.normal(100, 20, 16)),
               "flat": [4.0] * 16}
    specs = {m: stats.MetricSpec("lower") for m in samples}
    table, family = calibrate.calibration_table(samples, specs, alpha=0.05)
    t = table.set_index("metric")
    assert (t["false_alarm_rate"] <= 0.1).all() and family <= 0.15
    # a 5% shift of a 0.5%-noise metric needs few repetitions; of a 20%-noise one, more than 20
    assert t.loc["quiet", "repeats_for_5pct"] <= 5
    assert pd.isna(t.loc["noisy", "repeats_for_5pct"])


def test_vectorised_bh_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(3)
    p = rng.random((200, 9)) ** 3
    ours = stats.bh_reject(p, 0.05)
    for row, mine in zip(p, ours, strict=True):
        assert (multipletests(row, alpha=0.05, method="fdr_bh")[0] == mine).all()
