"""The comparison metrics: each declares its name, unit, direction, noise floor and extraction together.

A metric reduces one saved guest directory to one number (NaN where the guest has no
such data, e.g. region metrics on vanilla). Adding a metric is adding one Metric to
METRICS; vmstat deltas are one vmstat_delta(...) line each.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from harness.fs import read_json
from harness.model.consolidation import observed_free_regions, optimum_free_regions, pinned_pages
from harness.results import store


class GuestData:
    """Lazy, cached reads of one saved guest directory for metric extraction."""

    def __init__(self, guest_dir: Path, run_meta: dict[str, Any] | None = None):
        self.dir = Path(guest_dir)
        self.run_meta = run_meta or {}

    @functools.cached_property
    def vm(self) -> dict[str, Any]:
        """vm.json (QEMU argv, timings), or {} when the guest never got that far."""
        path = self.dir / "vm.json"
        data = read_json(path) if path.exists() else {}
        return data if isinstance(data, dict) else {}

    @functools.cached_property
    def record(self) -> dict[str, Any]:
        """This guest's entry in the run's metadata.json (status, workload time), or {}."""
        for g in self.run_meta.get("guests", []):
            if store.entry_dir_name(g) == self.dir.name:
                return dict(g)
        return {}

    @functools.cache  # noqa: B019 (one GuestData per guest directory, dropped after extraction)
    def frame(self, key: str) -> pd.DataFrame | None:
        """metrics/<key>.csv, or None when the guest has no such frame."""
        return store.load_metric(self.dir, key) if store.has_metric(self.dir, key) else None


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    better: Literal["lower", "higher"]
    #: relative change a single-sample comparison counts (0.10 = 10%)
    threshold: float
    #: smallest absolute change that can matter, whatever the statistics say
    noise_floor: float
    description: str
    extract: Callable[[GuestData], float]
    #: why a sample can be NaN though the guest measured it (a ratio of no events): then
    #: a side without any value is not MISSING (a failure) but not comparable
    undefined_when: str | None = None


def _nan_if_none(value: object) -> float:
    return math.nan if value is None else float(value)  # type: ignore[arg-type]


def _snapshot_value(frame: pd.DataFrame | None, snapshot: str, column: str) -> float:
    if frame is None or column not in frame.columns:
        return math.nan
    by = frame.set_index("snapshot")[column]
    return float(by[snapshot]) if snapshot in by.index else math.nan


def vmstat_delta(name: str, unit: str, better: Literal["lower", "higher"], threshold: float,
                 noise_floor: float, description: str, undefined_when: str | None = None) -> Metric:
    """The change of one /proc/vmstat counter from the before to the after snapshot."""
    def extract(g: GuestData) -> float:
        return _delta(g, name)
    return Metric(f"{name}_delta", unit, better, threshold, noise_floor, description, extract, undefined_when)


def _free_regions(snapshot: str) -> Callable[[GuestData], float]:
    def extract(g: GuestData) -> float:
        regions = g.frame("mem_regions.regions")
        if regions is None:
            return math.nan
        snap = regions[(regions["snapshot"] == snapshot) & (regions["present"] > 0)]
        return float((snap["free"] == snap["present"]).sum()) if not snap.empty else math.nan
    return extract


def _regions_at(g: GuestData, snapshot: str) -> pd.DataFrame | None:
    regions = g.frame("mem_regions.regions")
    if regions is None:
        return None
    snap = regions[regions["snapshot"] == snapshot]
    return snap if not snap.empty else None


def _best(snap: pd.DataFrame) -> float:
    """The model optimum over every zone of one snapshot's regions, unmovable pages pinned."""
    return float(optimum_free_regions(snap, pinned_pages(snap)).sum())


def _optimum(snapshot: str) -> Callable[[GuestData], float]:
    def extract(g: GuestData) -> float:
        snap = _regions_at(g, snapshot)
        return math.nan if snap is None else _best(snap)
    return extract


def _share_of_optimum(snapshot: str) -> Callable[[GuestData], float]:
    def extract(g: GuestData) -> float:
        snap = _regions_at(g, snapshot)
        if snap is None:
            return math.nan
        best = _best(snap)
        return 100.0 * float(observed_free_regions(snap).sum()) / best if best else math.nan
    return extract


def _unusable_thp(g: GuestData) -> float:
    """Mean over zones of the unusable index at order 9 (a THP) in the after snapshot."""
    u = g.frame("unusable_index")
    if u is None or "order9" not in u.columns:
        return math.nan
    after = u[u["snapshot"] == "after"]
    return float(after["order9"].mean()) if not after.empty else math.nan


def _thp_success(g: GuestData) -> float:
    """Share of THP faults that got a huge page during the workload (NaN when there were none)."""
    alloc = _delta(g, "thp_fault_alloc")
    fallback = _delta(g, "thp_fault_fallback")
    total = alloc + fallback
    return alloc / total if total > 0 else math.nan


#: x86-64's pageblock order (HPAGE_PMD_ORDER), /proc/pagetypeinfo's "Page block order"
PAGEBLOCK_ORDER = 9


def _extfrag_events(fragmenting: bool) -> Callable[[GuestData], float]:
    """Fallback allocations during the workload (the kmem/mm_page_alloc_extfrag histogram, after - before)
    whose fallback order is below the pageblock order (fragmenting: a pageblock ends up mixed)
    or at or above it."""
    def extract(g: GuestData) -> float:
        h = g.frame("extfrag_events")
        if h is None:
            return math.nan
        columns = [c for c in h.columns if c.startswith("order")
                   and (int(c.removeprefix("order")) < PAGEBLOCK_ORDER) == fragmenting]
        by = h.set_index("snapshot")[columns].sum(axis=1)
        if "before" not in by.index or "after" not in by.index:
            return math.nan
        return float(by["after"] - by["before"])
    return extract


def _delta(g: GuestData, name: str) -> float:
    v = g.frame("vmstat")
    return _snapshot_value(v, "after", name) - _snapshot_value(v, "before", name)


def _evac_pages_per_region(g: GuestData) -> float:
    """Pages targeted evacuation migrated per region it freed (NaN when it freed none)."""
    freed = _delta(g, "region_evac_success")
    return _delta(g, "region_evac_pages_migrated") / freed if freed > 0 else math.nan


#: why an evacuation metric has no value: the kernel does not evacuate, or never did
NO_EVACUATION = "no region evacuated (mem_region_evacuate off, or a kernel without it)"


def _evac_cpu_ms(g: GuestData) -> float:
    """kcompactd's CPU time in targeted evacuation during the workload, all zones (ms;
    mem_regions/zones evac_cpu_us, since kernel-patches 0009; 0 with evacuation off)."""
    z = g.frame("mem_regions.zones")
    if z is None or "evac_cpu_us" not in z.columns:
        return math.nan
    by = z.groupby("snapshot")["evac_cpu_us"].sum()
    if "before" not in by.index or "after" not in by.index:
        return math.nan
    return float(by["after"] - by["before"]) / 1000.0


def _free_pages_after(g: GuestData) -> float:
    z = g.frame("zoneinfo")
    if z is None:
        return math.nan
    after = z[z["snapshot"] == "after"]
    return float(after["nr_free_pages"].sum()) if not after.empty else math.nan


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("boot_seconds", "s", "lower", 0.25, 0.2, "QEMU start to the guest's ready marker (TCG: noisy)",
           lambda g: _nan_if_none(g.vm.get("boot_seconds"))),
    Metric("workload_seconds", "s", "lower", 0.25, 1.0, "wall time of the workload",
           lambda g: _nan_if_none(g.record.get("workload_seconds"))),
    Metric("free_regions_before", "regions", "higher", 0.0, 1.0,
           "regions with every present page free, before the workload (regions kernels only)",
           _free_regions("before")),
    Metric("free_regions_after", "regions", "higher", 0.0, 1.0,
           "regions with every present page free, after the workload (the series' headline)",
           _free_regions("after")),
    Metric("optimum_free_regions_after", "regions", "higher", 0.0, 1.0,
           "regions that could be wholly free after the workload if movable memory were packed low (model)",
           _optimum("after")),
    Metric("free_regions_pct_optimum_after", "% of optimum", "higher", 0.0, 1.0,
           "wholly free regions after the workload as a percentage of the model optimum", _share_of_optimum("after")),
    Metric("nr_free_pages_after", "pages", "higher", 0.05, 256, "free pages summed over zones, after",
           _free_pages_after),
    Metric("unusable_thp_after", "index 0-1", "lower", 0.10, 0.01,
           "free memory unusable for an order-9 allocation after the workload, mean over zones (debugfs extfrag)",
           _unusable_thp),
    Metric("thp_fault_success", "share", "higher", 0.05, 0.02,
           "THP faults served with a huge page: thp_fault_alloc / (alloc + fallback) during the workload",
           _thp_success, undefined_when="no THP fault during the workload"),
    Metric("extfrag_fragmenting", "events", "lower", 0.25, 10,
           "fallback allocations below the pageblock order during the workload, which leave a pageblock "
           "of mixed migratetypes (kmem/mm_page_alloc_extfrag histogram)", _extfrag_events(True)),
    Metric("extfrag_pageblock", "events", "lower", 0.25, 10,
           "fallback allocations of a pageblock or more during the workload, which take the whole "
           "block (kmem/mm_page_alloc_extfrag histogram)", _extfrag_events(False)),
    vmstat_delta("pgfault", "events", "lower", 0.10, 1000, "page faults during the workload"),
    vmstat_delta("compact_stall", "events", "lower", 0.25, 10, "direct compaction stalls during the workload"),
    vmstat_delta("pgmigrate_success", "pages", "lower", 0.25, 1000, "pages migrated during the workload"),
    vmstat_delta("numa_miss", "pages", "lower", 0.25, 1000, "allocations that missed their preferred node"),
    vmstat_delta("compact_success", "events", "higher", 0.25, 10, "successful direct compactions during the workload"),
    vmstat_delta("thp_fault_fallback", "events", "lower", 0.25, 10, "THP faults that fell back to small pages"),
    vmstat_delta("region_evac_success", "regions", "higher", 0.25, 2,
                 "regions targeted evacuation freed during the workload (kernel-patches 0009)",
                 undefined_when=NO_EVACUATION),
    Metric("region_evac_pages_per_region", "pages/region", "lower", 0.25, 4,
           "the price of evacuation: pages migrated per region it freed, during the workload",
           _evac_pages_per_region, undefined_when=NO_EVACUATION),
    Metric("region_evac_cpu_ms", "ms", "lower", 0.25, 5,
           "the price of evacuation: kcompactd's CPU time evacuating during the workload (TCG: emulated)",
           _evac_cpu_ms, undefined_when="a kernel without evacuation's CPU accounting (before kernel-patches 0009)"),
)}

DEFAULT_METRICS = tuple(METRICS)


def extract_metrics(guest_dir: Path, run_meta: dict[str, Any] | None = None,
                    names: tuple[str, ...] = DEFAULT_METRICS) -> dict[str, float]:
    """Scalar metrics of one guest directory (NaN where the guest has no such data)."""
    g = GuestData(guest_dir, run_meta)
    return {name: METRICS[name].extract(g) for name in names}
