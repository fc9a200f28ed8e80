"""Regression comparison: repeated samples of two builds (or two variants of one run) judged metric by metric.

Each guest directory is reduced to scalar metrics (harness.results.metrics); the
repetitions of one (variant, topology) are that guest's samples. Base and new samples
of each (topology, metric) go through harness.results.stats: DIFFERENT / SAME /
UNKNOWN with the effect as a median ratio and its bootstrap interval, and DIFFERENT
turned into REGRESSION or IMPROVEMENT by the metric's direction. A guest or metric that
base has and new lacks is MISSING: a failure, like a regression; a ratio metric that is
undefined in every new sample (no events to divide by) is UNKNOWN instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import UserError
from harness.fs import atomic_write, read_json, write_csv
from harness.results import stats, store
from harness.results.metrics import DEFAULT_METRICS, METRICS, extract_metrics
from harness.table import render_table

MISSING = "MISSING"
COLUMNS = ["topology", "base", "new", "metric", "unit", "n_base", "n_new", "median_base", "median_new",
           "ratio", "ratio_low", "ratio_high", "p", "q", "verdict", "direction", "note"]


@dataclass(frozen=True)
class Sample:
    """The metrics of one guest directory, with what it ran."""

    variant: str
    topology: str
    repetition: int
    values: dict[str, float]
    guest: str = ""        # the guest directory's name
    status: str = "ok"     # the guest's status in metadata.json


def _guest_entries(run_dir: Path, meta: dict[str, Any]) -> list[tuple[Path, str, str, int, str]]:
    """(guest dir, variant, topology, repetition, status) of every guest of a run's metadata."""
    out = []
    for i, g in enumerate(meta.get("guests", [])):
        try:
            variant, topo = str(g["flavor"]), str(g["topology"])
        except (KeyError, TypeError):
            raise UserError(f"{run_dir / 'metadata.json'}: guests[{i}] lacks flavor or topology") from None
        name = store.entry_dir_name(g)
        out.append((run_dir / name, variant, topo, int(g.get("repetition", 1)), str(g.get("status", "ok"))))
    return out


def load_run(run_dir: Path, metrics: tuple[str, ...] = DEFAULT_METRICS,
             allow_failed: bool = True) -> tuple[dict[str, Any], list[Sample]]:
    """A run's metadata and one Sample per guest; bad input names the file."""
    run_dir = Path(run_dir)
    meta_path = run_dir / "metadata.json"
    if not run_dir.is_dir() or not meta_path.exists():
        raise UserError(f"{run_dir}: not a run directory (no metadata.json)")
    meta = read_json(meta_path)
    if not isinstance(meta, dict):
        raise UserError(f"{meta_path}: expected a JSON object")
    status = meta.get("status")
    if not allow_failed and status != "ok":
        raise UserError(f"{meta_path}: base run has status {status!r}, not 'ok'; compare with a good run "
                        "or pass --allow-failed-base")
    samples = []
    for guest_dir, variant, topo, rep, status in _guest_entries(run_dir, meta):
        values = (extract_metrics(guest_dir, meta, metrics) if guest_dir.is_dir()
                  else dict.fromkeys(metrics, math.nan))
        samples.append(Sample(variant, topo, rep, values, guest_dir.name, status))
    if not samples:
        raise UserError(f"{meta_path}: the run has no guests")
    return meta, samples


def _check_metrics(metrics: tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(metrics) or DEFAULT_METRICS
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise UserError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    return names


def _values(samples: list[Sample], metric: str) -> list[float]:
    return [s.values[metric] for s in samples if not math.isnan(s.values[metric])]


def judge_groups(base: dict[str, list[Sample]], new: dict[str, list[Sample]], base_name: dict[str, str],
                 new_name: dict[str, str], metrics: tuple[str, ...], alpha: float) -> pd.DataFrame:
    """Verdict rows for groups keyed by topology: base[topo] vs new[topo], all metrics corrected together."""
    rows: list[dict[str, object]] = []
    pairs: dict[str, tuple[list[float], list[float]]] = {}
    where: dict[str, tuple[str, str]] = {}
    for topo in sorted(set(base) | set(new)):
        for m in metrics:
            b = _values(base.get(topo, []), m)
            n = _values(new.get(topo, []), m)
            if b and not n:
                if topo in new and METRICS[m].undefined_when:
                    verdict, note = stats.UNKNOWN, f"undefined in every new sample: {METRICS[m].undefined_when}"
                else:
                    what = "guest" if topo not in new else "metric"
                    verdict, note = MISSING, f"{what} present in base, absent in new"
                rows.append({"topology": topo, "base": base_name.get(topo, ""), "new": new_name.get(topo, ""),
                             "metric": m, "unit": METRICS[m].unit, "n_base": len(b), "n_new": 0,
                             "median_base": float(pd.Series(b).median()), "verdict": verdict, "note": note})
            elif b and n:
                key = f"{topo}\x00{m}"
                pairs[key] = (b, n)
                where[key] = (topo, m)
    specs = {k: stats.MetricSpec(METRICS[m].better, METRICS[m].noise_floor) for k, (_t, m) in where.items()}
    for v in stats.judge(pairs, specs, alpha=alpha):
        topo, m = where[v.metric]
        rows.append({"topology": topo, "base": base_name[topo], "new": new_name[topo], "metric": m,
                     "unit": METRICS[m].unit, "n_base": v.n_base, "n_new": v.n_new,
                     "median_base": v.median_base, "median_new": v.median_new, "ratio": v.ratio,
                     "ratio_low": v.ratio_low, "ratio_high": v.ratio_high, "p": v.p, "q": v.q,
                     "verdict": v.verdict, "direction": v.direction, "note": v.note})
    report = pd.DataFrame(rows, columns=COLUMNS)
    return report.sort_values(["topology", "metric"]).reset_index(drop=True)


def _by_topology(samples: list[Sample], variant: str | None = None) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for s in samples:
        if variant is None or s.variant == variant:
            out.setdefault(s.topology, []).append(s)
    return out


def compare_runs(base_dir: Path, new_dir: Path, metrics: tuple[str, ...] = (), alpha: float = stats.ALPHA,
                 allow_failed_base: bool = False) -> pd.DataFrame:
    """Base run vs new run: each (variant, topology) of base against the same in new."""
    names = _check_metrics(metrics)
    _, base = load_run(base_dir, names, allow_failed=allow_failed_base)
    _, new = load_run(new_dir, names)
    reports = []
    for variant in dict.fromkeys(s.variant for s in base):
        b, n = _by_topology(base, variant), _by_topology(new, variant)
        label = {t: variant for t in set(b) | set(n)}
        reports.append(judge_groups(b, n, label, label, names, alpha))
    return pd.concat(reports, ignore_index=True)


def judge_variants(samples: list[Sample], base_variant: str, new_variants: tuple[str, ...],
                   metrics: tuple[str, ...] = (), alpha: float = stats.ALPHA, where: str = "the run") -> pd.DataFrame:
    """Each of new_variants against base_variant over the samples of one run, topology by topology."""
    names = _check_metrics(metrics)
    have = sorted({s.variant for s in samples})
    for v, opt in ((base_variant, "--base-variant"), *((n, "--new-variant") for n in new_variants)):
        if v not in have:
            raise UserError(f"{opt} {v!r}: not in {where}; its variants: {', '.join(have)}")
    b = _by_topology(samples, base_variant)
    reports = []
    for new in new_variants:
        n = _by_topology(samples, new)
        reports.append(judge_groups(b, n, dict.fromkeys(b, base_variant), dict.fromkeys(n, new), names, alpha))
    return pd.concat(reports, ignore_index=True)


def compare_variants(run_dir: Path, base_variant: str, new_variant: str, metrics: tuple[str, ...] = (),
                     alpha: float = stats.ALPHA) -> pd.DataFrame:
    """Two variants of one run (e.g. regions+mem_region_sort=0 vs regions), topology by topology."""
    names = _check_metrics(metrics)
    _, samples = load_run(run_dir, names)
    return judge_variants(samples, base_variant, (new_variant,), names, alpha, where=str(run_dir))


def failures(report: pd.DataFrame) -> pd.DataFrame:
    """Rows that fail a comparison: regressions and what went missing."""
    return report[(report["direction"] == stats.REGRESSION) | (report["verdict"] == MISSING)]


def _num(v: object, spec: str = ".4g") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(float(v), spec)  # type: ignore[arg-type]


def render(report: pd.DataFrame) -> str:
    """Aligned text table, then the counts that decide the exit status."""
    rows: list[tuple[object, ...]] = [("topology", "base -> new", "metric", "n", "base", "new", "new/base [95% CI]",
                                       "q", "verdict", "note")]
    for r in report.to_dict("records"):
        ci = (f"{_num(r['ratio'], '.3f')} [{_num(r['ratio_low'], '.3f')}, {_num(r['ratio_high'], '.3f')}]"
              if not pd.isna(r["ratio"]) else "-")
        pair = r["base"] if r["base"] == r["new"] else f"{r['base']} -> {r['new']}"
        verdict = r["direction"] if r["direction"] in (stats.REGRESSION, stats.IMPROVEMENT) else r["verdict"]
        note = r["note"] if not pd.isna(r["note"]) else ""
        if r["verdict"] == stats.SINGLE and r["direction"]:
            note = f"{r['direction']}; {note}"
        rows.append((r["topology"], pair, f"{r['metric']} ({r['unit']})", f"{r['n_base']}/{_num(r['n_new'], 'g')}",
                     _num(r["median_base"]), _num(r["median_new"]), ci, _num(r["q"], ".3g"), verdict, note))
    counts = report["verdict"].value_counts()
    n_reg = int((report["direction"] == stats.REGRESSION).sum())
    summary = (f"{len(report)} compared: {n_reg} regression(s), "
               f"{int((report['direction'] == stats.IMPROVEMENT).sum())} improvement(s), "
               + ", ".join(f"{int(counts.get(k, 0))} {k}" for k in (stats.SAME, stats.UNKNOWN, stats.SINGLE, MISSING)))
    return render_table(rows, right={3, 4, 5, 7}) + "\n" + summary


def write_report(report: pd.DataFrame, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    write_csv(out_dir / "compare.csv", report)
    atomic_write(out_dir / "compare.txt", render(report) + "\n")
