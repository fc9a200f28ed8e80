"""Compare observed kernel metrics with the reference model and render the differences.

Every check returns a tidy table, one row per (key, field), with columns
``key`` (e.g. "node0/DMA32" or "node0/DMA32/region2"), ``field``, ``expected``,
``observed`` and ``verdict``: "ok", "DIFF" (value outside the expected value or bounds,
or a key the model does not know) or "missing" (the model expects a key or field the
observation lacks). Tables are data so they can be stored with a run; render() makes
them readable and failed() turns them into a pass/fail.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.errors import CheckFailed
from harness.model import ModelInputError
from harness.model.bank import bank_state
from harness.model.hotplug import apply_memory_blocks
from harness.model.inputs import DeclaredNodes, ModelInputs
from harness.model.layout import Layout, layout_of
from harness.model.regions import predict_regions
from harness.table import render_table

__all__ = ["CHECKS", "DIFF", "EVAC_OUTCOMES", "MISSING", "OK", "TABLE_COLUMNS", "Check", "check_bank",
           "check_banked_whole", "check_capture", "check_evacuation", "check_layout", "check_regions", "compare",
           "failed", "raise_if_failed", "render", "unfolded_vmstat_bound"]

TABLE_COLUMNS = ["key", "field", "expected", "observed", "verdict"]
OK, DIFF, MISSING = "ok", "DIFF", "missing"

#: a number in a verdict table (ints stay ints), or None when there is none
Number = int | float | None


def _key(names: Sequence[Hashable], value: Hashable) -> str:
    """Format an index entry the way people name zones: node0/DMA32/region2."""
    values = value if isinstance(value, tuple) else (value,)
    parts = []
    for name, v in zip(names, values, strict=False):  # a flat index of tuples shows its first parts
        parts.append(f"{name}{v}" if name in ("node", "region") else str(v))
    return "/".join(parts)


def _is_missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA


def _number(v: object, what: str) -> Number:
    """A frame cell as a plain number: integral floats as ints (NaN-carrying columns turn pages into floats)."""
    if isinstance(v, np.generic):
        v = v.item()
    if _is_missing(v):
        return None
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, int | float):
        return v
    raise ModelInputError(f"compare: {what} is not a number: {v!r}")


def _rows(frame: pd.DataFrame) -> dict[Hashable, pd.Series]:
    """The frame's rows by index entry."""
    return dict(frame.iterrows())


def compare(
    expected: pd.DataFrame,
    observed: pd.DataFrame,
    fields: Iterable[str],
    tolerance: float | Mapping[str, float] | None = None,
    *,
    report_extra: bool = True,
) -> pd.DataFrame:
    """Compare `fields` of two frames sharing an index; return the verdict table.

    A field is compared exactly when `expected` has a column of that name, and against
    bounds when it has ``<field>_min`` and ``<field>_max`` columns (inclusive). A NaN in
    `expected` means "not checked" for that cell. `tolerance` (absolute, in the field's
    unit) widens exact values and bounds: one number for every field, or a mapping
    field -> number. Keys only in `observed` give DIFF rows when report_extra is true.
    """
    fields = list(fields)
    tol = tolerance if isinstance(tolerance, Mapping) else {f: tolerance or 0 for f in fields}
    modes = {}
    for f in fields:
        if f in expected.columns:
            modes[f] = "exact"
        elif f"{f}_min" in expected.columns and f"{f}_max" in expected.columns:
            modes[f] = "bounds"
        else:
            raise ModelInputError(f"compare: expected frame has neither {f!r} nor {f}_min/{f}_max columns")
    names = list(expected.index.names)
    observed_rows = _rows(observed)
    rows: list[tuple[str, str, object, Number, str]] = []
    for idx, exp in expected.iterrows():
        key = _key(names, idx)
        obs = observed_rows.get(idx)
        for f in fields:
            t = tol.get(f, 0) or 0
            shown: object
            if modes[f] == "exact":
                want = _number(exp[f], f"{key} {f} expected")
                if want is None:
                    continue
                shown = want
                lo, hi = want - t, want + t
            else:
                low = _number(exp[f"{f}_min"], f"{key} {f}_min")
                high = _number(exp[f"{f}_max"], f"{key} {f}_max")
                if low is None or high is None:
                    continue
                shown = f"[{low}, {high}]"
                lo, hi = low - t, high + t
            got = None if obs is None or f not in obs.index else _number(obs[f], f"{key} {f} observed")
            if got is None:
                verdict = MISSING
            else:
                verdict = OK if lo <= got <= hi else DIFF
            rows.append((key, f, shown, got, verdict))
    if report_extra:
        known = set(expected.index)
        observed_names = list(observed.index.names)
        for idx, obs in observed_rows.items():
            if idx in known:
                continue
            for f in fields:
                if f in obs.index and not _is_missing(obs[f]):
                    rows.append((_key(observed_names, idx), f, None, _number(obs[f], f"{idx} {f}"), DIFF))
    return pd.DataFrame(rows, columns=TABLE_COLUMNS, dtype=object)


def failed(table: pd.DataFrame) -> bool:
    """True when any row of a verdict table is not "ok"."""
    return bool((table["verdict"] != OK).any())


def raise_if_failed(table: pd.DataFrame, what: str = "check") -> None:
    """Raise CheckFailed carrying the rendered differences when the table has a non-ok row."""
    if failed(table):
        raise CheckFailed(f"{what} failed:\n" + render(table, only_failures=True))


def render(table: pd.DataFrame, only_failures: bool = False) -> str:
    """Return the table as aligned text for a terminal, with a one-line summary."""
    bad = table[table["verdict"] != OK] if len(table) else table
    shown = bad if only_failures else table

    def cell(v: object) -> str:
        return "-" if _is_missing(v) else str(v)

    cells = [[cell(v) for v in row] for row in shown[TABLE_COLUMNS].itertuples(index=False, name=None)]
    # numbers (expected, observed) read best right-aligned; names and verdicts left-aligned
    text = render_table([TABLE_COLUMNS, *cells], right=(2, 3), rule=True)
    return f"{text}\n{len(table)} checked, {len(bad)} not ok"


def check_layout(model_df: pd.DataFrame, zoneinfo_df: pd.DataFrame,
                 tolerance: float | Mapping[str, float] | None = None) -> pd.DataFrame:
    """Check /proc/zoneinfo against the layout model: spanned, present, start_pfn exact; managed in bounds.

    zoneinfo prints no start_pfn for an unpopulated zone, so start_pfn is only checked
    where the model says the zone is populated (present > 0).
    """
    expected = model_df[["spanned", "present", "managed_min", "managed_max"]].astype("float64")
    expected["start_pfn"] = model_df["start_pfn"].where(model_df["present"] > 0)
    return compare(expected, zoneinfo_df, ["spanned", "present", "managed", "start_pfn"], tolerance)


def check_regions(
    model_regions_df: pd.DataFrame,
    observed_regions_df: pd.DataFrame,
    zoneinfo_df: pd.DataFrame,
    free_tolerance: int = 0,
    untracked: pd.Series | None = None,
) -> pd.DataFrame:
    """Check the kernel's regions: geometry and present per region equal the model; sums match zoneinfo.

    Per zone, the regions' free pages must add up to zoneinfo's nr_free_pages and their
    present pages to zoneinfo's present; where the kernel prints each region's managed
    pages (series 0008), those must add up to zoneinfo's managed exactly, and no region
    may manage more than it has. Where zoneinfo prints the regions' free sum
    taken under the zone lock with nr_free_pages (its ``regions_free``, series 0002),
    that sum is the one compared: the two differ only by the per-cpu vmstat deltas, so
    free_tolerance (pages) is that bound. Otherwise the region rows are summed, and on a
    busy guest they were read at other instants than nr_free_pages.

    untracked: (node, zone) -> pages memory hotplug onlined into the zone outside its
    regions (harness.model.hotplug). They are in the zone's present and managed counts and
    in none of its regions; of its free pages they may be any part, so the regions' free
    sum is then checked within [nr_free_pages - untracked, nr_free_pages].
    """
    geometry = compare(model_regions_df, observed_regions_df, ["start_pfn", "end_pfn", "present"])
    # a region cannot hold more free pages than it has: an unsigned underflow of its
    # counter (2^64 - 3) is caught here, by region, not only as a wrong zone sum
    bounds = pd.DataFrame({"free_min": 0.0, "free_max": model_regions_df["present"].astype("float64")},
                          index=model_regions_df.index)
    free = compare(bounds, observed_regions_df, ["free"], report_extra=False)
    populated = zoneinfo_df[zoneinfo_df["present"] > 0]
    outside = (pd.Series(0, index=populated.index) if untracked is None
               else untracked.reindex(populated.index).fillna(0).astype("int64"))
    expected = pd.DataFrame({"region_present_sum": populated["present"] - outside})
    if outside.any():
        expected["region_free_sum_min"] = populated["nr_free_pages"] - outside
        expected["region_free_sum_max"] = populated["nr_free_pages"]
    else:
        expected["region_free_sum"] = populated["nr_free_pages"]
    summed = ["free", "present"]
    managed = "managed" in observed_regions_df.columns   # series 0008: each region's managed pages
    if managed:
        summed.append("managed")
        expected["region_managed_sum"] = populated["managed"] - outside
        bounds = bounds.rename(columns={"free_min": "managed_min", "free_max": "managed_max"})
        free = pd.concat([free, compare(bounds, observed_regions_df, ["managed"], report_extra=False)],
                         ignore_index=True)
    sums = observed_regions_df.groupby(level=[0, 1])[summed].sum()
    # a zone that only hotplug populated (an onlined Movable zone) has no region at all
    regionless = expected.index.difference(model_regions_df.groupby(level=[0, 1]).size().index)
    sums = sums.reindex(sums.index.union(regionless), fill_value=0)
    if "regions_free" in zoneinfo_df.columns:
        sums["free"] = zoneinfo_df["regions_free"].reindex(sums.index).fillna(sums["free"])
    observed = sums.rename(columns={k: f"region_{k}_sum" for k in summed})
    totals = compare(
        expected,
        observed,
        [f"region_{k}_sum" for k in summed],
        {"region_free_sum": free_tolerance},
    )
    return pd.concat([geometry, free, totals], ignore_index=True)


def check_banked_whole(regions: pd.DataFrame) -> pd.DataFrame:
    """Every banked region is wholly free: one row of mem_regions/regions, so safe on a busy guest."""
    banked = regions[regions["banked"] != 0]
    expected = pd.DataFrame({"free": banked["present"]}, index=banked.index)
    return compare(expected, banked, ["free"])


def check_bank(regions: pd.DataFrame, free_blocks: pd.DataFrame, bank_on: bool) -> pd.DataFrame:
    """The bank against the model on a quiet guest (after a drain): the two files must agree.

    Every banked region is wholly free and has no block left on the free lists; per zone,
    at most one bankable region stays in the buddy lists (the cache) when the bank is on,
    and none is banked when it is off.
    """
    state = bank_state(regions, free_blocks)
    names = list(state.index.names)
    rows: list[tuple[str, str, object, Number, str]] = []
    for idx, r in state[state["banked"]].iterrows():
        key = _key(names, idx)
        rows.append((key, "free", int(r["present"]), int(r["free"]), OK if r["whole"] else DIFF))
        rows.append((key, "listed", 0, int(r["listed"]), OK if r["listed"] == 0 else DIFF))
    outside = (state["bankable"] & ~state["banked"]).groupby(level=[0, 1]).sum()
    banked = state["banked"].groupby(level=[0, 1]).sum()
    for idx in outside.index:
        key = _key(names[:2], idx)
        if bank_on:
            n = int(outside[idx])
            rows.append((key, "bankable_outside_bank", "[0, 1]", n, OK if n <= 1 else DIFF))
        else:
            n = int(banked[idx])
            rows.append((key, "banked_regions", 0, n, OK if n == 0 else DIFF))
    return pd.DataFrame(rows, columns=TABLE_COLUMNS, dtype=object)


#: the outcomes of a region kcompactd took up for evacuation (kernel-patches 0009)
EVAC_OUTCOMES = ("skipped", "success", "fail", "busy", "abort")


def check_evacuation(vmstat: pd.DataFrame, nodes: int) -> pd.DataFrame:
    """The evacuation counters of one /proc/vmstat read account for every region taken up.

    Each ``region_evac_queued`` ends in exactly one outcome (EVAC_OUTCOMES); kcompactd runs
    one attempt at a time per node, so up to ``nodes`` may be in flight when the file is
    read. Pages that failed to migrate never exceed the pages tried.
    """
    row = vmstat.iloc[-1]
    queued = int(row["region_evac_queued"])
    in_flight = queued - sum(int(row[f"region_evac_{k}"]) for k in EVAC_OUTCOMES)
    rows: list[tuple[str, str, object, Number, str]] = [
        ("vmstat", "region_evac_queued - outcomes", f"[0, {nodes}]", in_flight,
         OK if 0 <= in_flight <= nodes else DIFF),
    ]
    failed_pages = int(row["region_evac_pages_failed"])
    scanned = int(row["region_evac_pages_scanned"])
    rows.append(("vmstat", "region_evac_pages_failed", f"<= pages_scanned ({scanned})", failed_pages,
                 OK if failed_pages <= scanned else DIFF))
    return pd.DataFrame(rows, columns=TABLE_COLUMNS, dtype=object)


#: mm/vmstat.c calculate_normal_threshold(): "The maximum threshold is 125"
MAX_VMSTAT_THRESHOLD = 125


def unfolded_vmstat_bound(zoneinfo: pd.DataFrame) -> int:
    """Pages by which a printed nr_free_pages may lag the exact count (the largest zone's bound).

    Each CPU batches up to its "vm stats threshold" of NR_FREE_PAGES changes before
    folding them into the zone counter zoneinfo prints, so the printed value is exact
    only within threshold x CPUs, even right after /proc/sys/vm/stat_refresh (the
    snapshot's own processes allocate). The region counts are exact under the zone lock.
    The threshold is read from the capture, so it is capped at the kernel's own
    maximum: an inflated figure must not widen the tolerance enough to hide a leak.
    """
    if "vm_stats_threshold" not in zoneinfo.columns or "pcp_cpus" not in zoneinfo.columns:
        return 0
    threshold = zoneinfo["vm_stats_threshold"].fillna(0).clip(upper=MAX_VMSTAT_THRESHOLD)
    drift = threshold * zoneinfo["pcp_cpus"].fillna(0)
    return int(drift.to_numpy().max())


# --------------------------------------------------------------------------- the checks of a capture

#: parsed frames of one snapshot, by harness.metrics.parse_snapshot key
Frames = Mapping[str, pd.DataFrame]


@dataclass(frozen=True)
class Check:
    """One comparison of a capture with the model; ``name`` is the verdict table's ``check`` column."""

    name: str
    #: the verdict table, or None when the capture has nothing this check looks at
    run: Callable[[Frames, Layout, ModelInputs], pd.DataFrame | None]


def _missing_file(name: str) -> pd.DataFrame:
    return pd.DataFrame([(name, "file", "captured", None, MISSING)], columns=TABLE_COLUMNS, dtype=object)


def _zone_layout(frames: Frames, layout: Layout, inputs: ModelInputs) -> pd.DataFrame:
    if "zoneinfo" not in frames:
        return _missing_file("/proc/zoneinfo")  # every kernel has it: a snapshot without it is broken
    return check_layout(layout.zones, frames["zoneinfo"])


def _node_memtotal(frames: Frames, layout: Layout, inputs: ModelInputs) -> pd.DataFrame | None:
    meminfo = frames.get("node_meminfo")
    if meminfo is None or meminfo.empty:
        return None
    bounds = layout.nodes[["memtotal_kb_min", "memtotal_kb_max"]].rename(
        columns={"memtotal_kb_min": "MemTotal_kB_min", "memtotal_kb_max": "MemTotal_kB_max"})
    return compare(bounds.astype("float64"), meminfo, ["MemTotal_kB"])


def _region_stats(frames: Frames, layout: Layout, inputs: ModelInputs) -> pd.DataFrame | None:
    # The region lines of /proc/zoneinfo come from the same read as nr_free_pages (and
    # their locked sum, where the kernel prints it); the debugfs file is read apart.
    regions = frames.get("zoneinfo.regions")
    if regions is None or regions.empty:
        regions = frames.get("mem_regions.regions")
    if regions is None or regions.empty:
        if inputs.regions_reported:
            # the boot log says the series set up regions: their statistics must be there
            return pd.DataFrame([("regions", "region statistics", "reported (dmesg: memory regions)", None,
                                  MISSING)], columns=TABLE_COLUMNS, dtype=object)
        return None  # a kernel without the series
    debugfs = frames.get("mem_regions.regions")
    if debugfs is not None and "managed" in debugfs.columns and "managed" not in regions.columns:
        # managed pages change only at boot, hotplug and ballooning: another read is as good
        regions = regions.join(debugfs["managed"])
    zoneinfo = frames.get("zoneinfo")
    if zoneinfo is None:
        return None  # reported missing by the layout check
    return check_regions(predict_regions(layout), regions, zoneinfo, free_tolerance=unfolded_vmstat_bound(zoneinfo),
                         untracked=layout.untracked)


def _bank(frames: Frames, layout: Layout, inputs: ModelInputs) -> pd.DataFrame | None:
    regions = frames.get("mem_regions.regions")
    if regions is None or "banked" not in regions.columns:
        return None  # a kernel without the region bank
    return check_banked_whole(regions)


def _evacuation(frames: Frames, layout: Layout, inputs: ModelInputs) -> pd.DataFrame | None:
    vmstat = frames.get("vmstat")
    if vmstat is None or "region_evac_queued" not in vmstat.columns:
        return None  # a kernel without targeted evacuation
    return check_evacuation(vmstat, len(layout.nodes))


#: Everything check_capture compares, in table order.
CHECKS: tuple[Check, ...] = (
    Check("layout", _zone_layout),      # /proc/zoneinfo spanned, present, managed, start_pfn
    Check("node", _node_memtotal),      # nodeN/meminfo MemTotal within the model's bounds
    Check("regions", _region_stats),    # region geometry and sums, when the kernel reports regions
    Check("bank", _bank),               # banked regions wholly free, when the kernel banks regions
    Check("evacuation", _evacuation),   # every evacuation taken up has one outcome
)


def check_capture(frames: Frames, inputs: ModelInputs, declared: DeclaredNodes | None = None) -> pd.DataFrame:
    """Check one parsed snapshot (harness.metrics.parse_snapshot) against the model; run every CHECKS entry.

    inputs come from harness.metrics.parse_model_inputs(); declared is what the topology
    declares (harness.model.inputs.declared_nodes), by default what the guest's dmesg
    says its SRAT held. Memory blocks that hotplug moved between zones (the snapshot's
    memory_blocks) are followed by harness.model.hotplug. Returns the verdict tables of all
    checks with a ``check`` column.
    """
    layout = apply_memory_blocks(layout_of(inputs, declared), frames.get("memory_blocks"))
    tables = []
    for check in CHECKS:
        table = check.run(frames, layout, inputs)
        if table is not None:
            tables.append(table.assign(check=check.name))
    return pd.concat(tables, ignore_index=True)
