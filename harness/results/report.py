"""A run as a report a person reads: report.html beside PNG figures (verdicts, distributions, region maps).

Figures (matplotlib, Agg backend, so no display is needed):
  distributions.png       every comparison metric, one strip per variant and topology
  regions-<guest>.png     region occupancy: regions x snapshots, colour = free fraction
  free-regions.png        wholly free regions over time, one line per guest
  extfrag.png             the kernel's unusable-free-space index at the THP order over time
The verdict table comes from harness.results.compare; cost.csv (harness bench cost) is
shown as a table when the run directory holds one.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (the backend must be chosen first)
import pandas as pd  # noqa: E402

from harness.errors import UserError  # noqa: E402
from harness.fs import atomic_write, read_csv  # noqa: E402
from harness.results import compare, store  # noqa: E402
from harness.results.metrics import METRICS  # noqa: E402

DPI = 100


def _save(fig: plt.Figure, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def _samples_frame(samples: list[compare.Sample]) -> pd.DataFrame:
    rows = [{"variant": s.variant, "topology": s.topology, "repetition": s.repetition, "metric": m, "value": v}
            for s in samples for m, v in s.values.items() if not math.isnan(v)]
    return pd.DataFrame(rows, columns=["variant", "topology", "repetition", "metric", "value"])


def plot_distributions(samples: pd.DataFrame, out: Path) -> Path | None:
    """One panel per metric; x = variant/topology, one dot per repetition, a bar at the median."""
    metrics = [m for m in METRICS if m in set(samples["metric"])]
    if not metrics:
        return None
    cols = 3
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        sub = samples[samples["metric"] == metric]
        groups = list(dict.fromkeys(zip(sub["topology"], sub["variant"], strict=True)))
        for i, (topo, variant) in enumerate(groups):
            vals = sub[(sub["topology"] == topo) & (sub["variant"] == variant)]["value"]
            jitter = [i + 0.08 * ((k % 5) - 2) for k in range(len(vals))]
            ax.scatter(jitter, vals, s=18, alpha=0.8)
            ax.hlines(vals.median(), i - 0.3, i + 0.3, colors="black", linewidth=1.5)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([f"{v}\n{t}" for t, v in groups], fontsize=7, rotation=20, ha="right")
        ax.set_title(f"{metric} ({METRICS[metric].unit}, {METRICS[metric].better} is better)", fontsize=9)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, out / "distributions.png")


def plot_region_heatmap(guest_dir: Path, out: Path) -> Path | None:
    """Regions (rows, per node and zone) x snapshots (columns), colour = free / present."""
    if not store.has_metric(guest_dir, "mem_regions.regions"):
        return None
    r = store.load_metric(guest_dir, "mem_regions.regions")
    r = r[r["present"] > 0]
    if r.empty:
        return None
    order = list(dict.fromkeys(r["snapshot"]))
    r = r.assign(frac=r["free"] / r["present"], key=r["node"].astype(str) + "/" + r["zone"].astype(str)
                 + "/" + r["region"].astype(str))
    grid = r.pivot_table(index="key", columns="snapshot", values="frac", sort=False)[order]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.25 * len(order) + 3), max(2.5, 0.12 * len(grid) + 1.5)))
    im = ax.imshow(grid.to_numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels(order, rotation=90, fontsize=6)
    step = max(1, len(grid) // 24)
    ax.set_yticks(range(0, len(grid), step))
    ax.set_yticklabels(list(grid.index)[::step], fontsize=6)
    ax.set_ylabel("node/zone/region")
    ax.set_title(f"{guest_dir.name}: free fraction per region", fontsize=9)
    fig.colorbar(im, ax=ax, label="free / present")
    return _save(fig, out / f"regions-{guest_dir.name}.png")


def _over_time(guests: list[Path], frame: str, reduce: str, title: str, ylabel: str,
               out: Path, name: str) -> Path | None:
    fig, ax = plt.subplots(figsize=(8, 4))
    drawn = 0
    for g in guests:
        if not store.has_metric(g, frame):
            continue
        df = store.load_metric(g, frame)
        if reduce == "free_regions":
            df = df[df["present"] > 0]
            y = df.assign(full=df["free"] == df["present"]).groupby("snapshot", sort=False)["full"].sum()
        else:
            y = df.groupby("snapshot", sort=False)[reduce].mean()
        t = df.groupby("snapshot", sort=False)["guest_uptime"].first()
        ax.plot(t.to_numpy(), y.reindex(t.index).to_numpy(), marker=".", label=g.name)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("guest uptime (s)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=6, ncol=2)
    return _save(fig, out / name)


def _table_html(df: pd.DataFrame) -> str:
    return df.to_html(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}", border=0, classes="t")


def write_report(run_dir: Path, out: Path | None = None, against: Path | None = None) -> Path:
    """Write report.html and its figures into ``out`` (default: run_dir/report); returns the HTML path."""
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    meta, samples = compare.load_run(run_dir)
    variants = list(dict.fromkeys(s.variant for s in samples))
    if against is not None:
        verdicts = compare.compare_runs(Path(against), run_dir, allow_failed_base=True)
        verdict_title = f"{run_dir.name} against {Path(against).name}"
    elif len(variants) > 1:
        verdicts = compare.judge_variants(samples, variants[0], tuple(variants[1:]), where=str(run_dir))
        verdict_title = f"each variant against {variants[0]}"
    else:
        verdicts, verdict_title = None, ""
    figures: list[tuple[str, Path]] = []
    dist = plot_distributions(_samples_frame(samples), out)
    if dist:
        figures.append(("Distributions of the comparison metrics", dist))
    guests = store.guest_dirs(run_dir)
    free = _over_time(guests, "mem_regions.regions", "free_regions", "Wholly free regions over time",
                      "regions with every present page free", out, "free-regions.png")
    if free:
        figures.append(("Wholly free regions over time", free))
    extfrag = _over_time(guests, "unusable_index", "order9",
                         "Free memory unusable for a THP (order 9), mean over zones (debugfs extfrag)",
                         "unusable index (0 = all usable, 1 = none)", out, "extfrag.png")
    if extfrag:
        figures.append(("Fragmentation index over time", extfrag))
    for g in guests:
        heat = plot_region_heatmap(g, out)
        if heat:
            figures.append((f"Region occupancy: {g.name}", heat))
    parts = [f"<h1>region-harness report: {html.escape(run_dir.name)}</h1>",
             f"<p>status <b>{html.escape(str(meta.get('status')))}</b>, {len(samples)} guests, variants "
             f"{html.escape(', '.join(variants))}; started {html.escape(str(meta.get('started', '-')))}</p>"]
    if verdicts is not None:
        n_bad = len(compare.failures(verdicts))
        parts.append(f"<h2>Verdicts: {html.escape(verdict_title)}</h2><p>{n_bad} failure(s); "
                     "DIFFERENT needs a Benjamini-Hochberg-corrected calibrated p at most alpha and a change "
                     "above the metric's noise floor; one sample per side is only indicative.</p>")
        parts.append(_table_html(verdicts))
    else:
        parts.append("<p>One variant and no --against run: no verdicts, only pictures.</p>")
    cost = run_dir / "cost.csv"
    if cost.is_file():
        parts.append("<h2>Deterministic cost (virtual ns under -icount: instructions, not cycles)</h2>")
        parts.append(_table_html(read_csv(cost)))
    for title, path in figures:
        esc = html.escape(title)
        parts.append(f"<h2>{esc}</h2><img src=\"{html.escape(path.name)}\" alt=\"{esc}\">")
    if not extfrag:
        parts.append("<p>No extfrag frames in this run: the fragmentation figure is left out.</p>")
    style = ("body{font-family:sans-serif;margin:2em}table.t{border-collapse:collapse;font-size:12px}"
             "table.t td,table.t th{padding:2px 6px;border-bottom:1px solid #ddd}img{max-width:100%}")
    page = (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>report {html.escape(run_dir.name)}"
            f"</title><style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
    path = out / "report.html"
    atomic_write(path, page)
    return path


def figure_files(html_path: Path) -> list[Path]:
    """The image files a report references (for checks that every one exists)."""
    import re

    text = Path(html_path).read_text()
    names = re.findall(r'<img src="([^"]+)"', text)
    if not names and "<img" in text:
        raise UserError(f"{html_path}: unreadable image references")
    return [Path(html_path).parent / html.unescape(n) for n in names]
