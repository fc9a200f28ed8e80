"""Regression comparison of two runs: per-guest metrics side by side, ratios and verdicts.

Pure over saved run directories: each guest directory's metrics/*.csv and vm.json are
reduced to scalar metrics (extract_metrics), then base and new are joined on
(guest, metric). A metric's direction says which way is better; a change worse than
its threshold (relative) is a regression, better than it an improvement.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.errors import UserError
from harness.results import store


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    better: str          # "lower" or "higher"
    threshold: float     # relative change that counts (0.10 = 10%)
    description: str


METRICS = {m.name: m for m in (
    Metric("boot_seconds", "s", "lower", 0.25, "QEMU start to the guest's ready marker (TCG: noisy)"),
    Metric("workload_seconds", "s", "lower", 0.25, "wall time of the workload"),
    Metric("free_regions_before", "regions", "higher", 0.0,
           "regions with every present page free, before the workload (regions kernels only)"),
    Metric("free_regions_after", "regions", "higher", 0.0,
           "regions with every present page free, after the workload (the series' headline)"),
    Metric("nr_free_pages_after", "pages", "higher", 0.05, "free pages summed over zones, after"),
    Metric("pgfault_delta", "events", "lower", 0.10, "page faults during the workload"),
    Metric("compact_stall_delta", "events", "lower", 0.25, "direct compaction stalls during the workload"),
    Metric("pgmigrate_success_delta", "pages", "lower", 0.25, "pages migrated during the workload"),
    Metric("numa_miss_delta", "pages", "lower", 0.25, "allocations that missed their preferred node"),
)}

DEFAULT_METRICS = tuple(METRICS)


def _vmstat_delta(vmstat: pd.DataFrame, name: str) -> float:
    if name not in vmstat.columns:
        return math.nan
    by = vmstat.set_index("snapshot")[name]
    if "before" not in by.index or "after" not in by.index:
        return math.nan
    return float(by["after"] - by["before"])


def _free_regions(regions: pd.DataFrame, snapshot: str) -> float:
    snap = regions[regions["snapshot"] == snapshot]
    if snap.empty:
        return math.nan
    snap = snap[snap["present"] > 0]
    return float((snap["free"] == snap["present"]).sum())


def extract_metrics(guest_dir: Path) -> dict[str, float]:
    """Scalar metrics of one guest directory (NaN where the guest has no such data)."""
    guest_dir = Path(guest_dir)
    out = {name: math.nan for name in METRICS}
    vm = json.loads((guest_dir / "vm.json").read_text()) if (guest_dir / "vm.json").exists() else {}
    out["boot_seconds"] = vm.get("boot_seconds") or math.nan
    metrics = guest_dir / "metrics"
    if (metrics / "mem_regions.regions.csv").exists():
        regions = store.load_metric(guest_dir, "mem_regions.regions")
        out["free_regions_before"] = _free_regions(regions, "before")
        out["free_regions_after"] = _free_regions(regions, "after")
    if (metrics / "zoneinfo.csv").exists():
        z = store.load_metric(guest_dir, "zoneinfo")
        after = z[z["snapshot"] == "after"]
        if not after.empty:
            out["nr_free_pages_after"] = float(after["nr_free_pages"].sum())
    if (metrics / "vmstat.csv").exists():
        v = store.load_metric(guest_dir, "vmstat")
        for name in ("pgfault", "compact_stall", "pgmigrate_success", "numa_miss"):
            out[f"{name}_delta"] = _vmstat_delta(v, name)
    run_meta = guest_dir.parent / "metadata.json"
    if run_meta.exists():
        for g in json.loads(run_meta.read_text()).get("guests", []):
            if f"{g['flavor']}-{g['topology']}" == guest_dir.name and g.get("workload_seconds"):
                out["workload_seconds"] = float(g["workload_seconds"])
    return out


def run_metrics(run_dir: Path) -> pd.DataFrame:
    """Long frame (guest, metric, value) for every guest of a run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: not a run directory")
    rows = [(g.name, name, value)
            for g in store.guest_dirs(run_dir) for name, value in extract_metrics(g).items()]
    if not rows:
        raise UserError(f"{run_dir}: no guest directories (is this a run directory?)")
    return pd.DataFrame(rows, columns=["guest", "metric", "value"])


def compare_frames(base: pd.DataFrame, new: pd.DataFrame, metrics=()) -> pd.DataFrame:
    """Join two run_metrics frames: base, new, ratio (new/base) and a verdict per (guest, metric)."""
    names = tuple(metrics) or DEFAULT_METRICS
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise UserError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    joined = base.merge(new, on=["guest", "metric"], how="outer", suffixes=("_base", "_new"))
    joined = joined[joined["metric"].isin(names)].rename(columns={"value_base": "base", "value_new": "new"})
    verdicts, ratios = [], []
    for row in joined.itertuples():
        m = METRICS[row.metric]
        if pd.isna(row.base) or pd.isna(row.new):
            ratios.append(math.nan)
            verdicts.append("no-data" if pd.isna(row.base) and pd.isna(row.new) else "missing")
            continue
        ratio = row.new / row.base if row.base else (math.inf if row.new else 1.0)
        ratios.append(ratio)
        change = (row.new - row.base) / abs(row.base) if row.base else (0.0 if row.new == row.base else math.inf)
        worse = change > m.threshold if m.better == "lower" else change < -m.threshold
        better = change < -m.threshold if m.better == "lower" else change > m.threshold
        verdicts.append("REGRESSION" if worse else "improved" if better else "same")
    joined = joined.assign(ratio=ratios, verdict=verdicts)
    joined["unit"] = joined["metric"].map(lambda n: METRICS[n].unit)
    return joined[["guest", "metric", "unit", "base", "new", "ratio", "verdict"]].sort_values(
        ["guest", "metric"]).reset_index(drop=True)


def compare_runs(base_dir: Path, new_dir: Path, metrics=()) -> pd.DataFrame:
    return compare_frames(run_metrics(base_dir), run_metrics(new_dir), metrics)


def render(report: pd.DataFrame) -> str:
    """Aligned text table, regressions counted at the end."""
    rows = [("guest", "metric", "unit", "base", "new", "new/base", "verdict")]
    fmt = lambda v: "-" if pd.isna(v) else (f"{v:.3g}" if isinstance(v, float) and not float(v).is_integer()  # noqa: E731
                                           else f"{int(v)}")
    for r in report.itertuples():
        rows.append((r.guest, r.metric, r.unit, fmt(r.base), fmt(r.new),
                     "-" if pd.isna(r.ratio) else f"{r.ratio:.3f}", r.verdict))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    n = int((report["verdict"] == "REGRESSION").sum())
    lines.append(f"{len(report)} compared, {n} regression(s)")
    return "\n".join(lines)


def write_report(report: pd.DataFrame, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    store.write_csv(out_dir / "compare.csv", report)
    store.atomic_write(out_dir / "compare.txt", render(report) + "\n")
