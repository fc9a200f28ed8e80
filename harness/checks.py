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
from collections.abc import Iterable, Mapping

import pandas as pd

from harness.errors import CheckFailed, ParseError
from harness.model import ModelInputError

TABLE_COLUMNS = ["key", "field", "expected", "observed", "verdict"]
OK, DIFF, MISSING = "ok", "DIFF", "missing"


def _key(names: list[str | None], value: object) -> str:
    """Format an index entry the way people name zones: node0/DMA32/region2."""
    values = value if isinstance(value, tuple) else (value,)
    parts = []
    for name, v in zip(names, values):
        parts.append(f"{name}{v}" if name in ("node", "region") else str(v))
    return "/".join(parts)


def _is_missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA


def _plain(v: object) -> object:
    """Show integral numbers as ints (NaN-carrying columns turn pages into floats)."""
    if _is_missing(v):
        return None
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if hasattr(v, "item"):  # numpy scalar
        return _plain(v.item())
    return v


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
    rows = []
    for idx, exp in expected.iterrows():
        key = _key(names, idx)
        obs = observed.loc[idx] if idx in observed.index else None
        for f in fields:
            t = tol.get(f, 0) or 0
            if modes[f] == "exact":
                want = _plain(exp[f])
                if want is None:
                    continue
                shown = want
                lo, hi = want - t, want + t
            else:
                lo, hi = _plain(exp[f"{f}_min"]), _plain(exp[f"{f}_max"])
                if lo is None or hi is None:
                    continue
                shown = f"[{lo}, {hi}]"
                lo, hi = lo - t, hi + t
            got = None if obs is None or f not in obs.index else _plain(obs[f])
            if got is None:
                verdict = MISSING
            else:
                verdict = OK if lo <= got <= hi else DIFF
            rows.append((key, f, shown, got, verdict))
    if report_extra:
        for idx in observed.index:
            if idx in expected.index:
                continue
            obs = observed.loc[idx]
            for f in fields:
                if f in obs.index and not _is_missing(obs[f]):
                    rows.append((_key(list(observed.index.names), idx), f, None, _plain(obs[f]), DIFF))
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

    lines = [[c for c in TABLE_COLUMNS]] + [[cell(r[c]) for c in TABLE_COLUMNS] for _, r in shown.iterrows()]
    widths = [max(len(line[i]) for line in lines) for i in range(len(TABLE_COLUMNS))]
    # numbers read best right-aligned; names and verdicts left-aligned
    right = {2, 3}
    out = []
    for n, line in enumerate(lines):
        out.append(
            "  ".join(v.rjust(w) if i in right and n else v.ljust(w) for i, (v, w) in enumerate(zip(line, widths))).rstrip()
        )
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    out.append(f"{len(table)} checked, {len(bad)} not ok")
    return "\n".join(out)


def check_layout(model_df: pd.DataFrame, zoneinfo_df: pd.DataFrame, tolerance=None) -> pd.DataFrame:
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
) -> pd.DataFrame:
    """Check the kernel's regions: geometry and present per region equal the model; sums match zoneinfo.

    Per zone, the regions' free pages must add up to zoneinfo's nr_free_pages and their
    present pages to zoneinfo's present. nr_free_pages is a per-cpu batched counter read
    at a different instant than the regions file, so a busy guest may need
    free_tolerance (pages); an idle one should match exactly.
    """
    geometry = compare(model_regions_df, observed_regions_df, ["start_pfn", "end_pfn", "present"])
    populated = zoneinfo_df[zoneinfo_df["present"] > 0]
    expected = pd.DataFrame(
        {"region_free_sum": populated["nr_free_pages"], "region_present_sum": populated["present"]}
    )
    sums = observed_regions_df.groupby(level=[0, 1])[["free", "present"]].sum()
    observed = sums.rename(columns={"free": "region_free_sum", "present": "region_present_sum"})
    totals = compare(
        expected,
        observed,
        ["region_free_sum", "region_present_sum"],
        {"region_free_sum": free_tolerance},
    )
    return pd.concat([geometry, totals], ignore_index=True)


def model_inputs(dmesg_text: str, config_text: str | None, source: str = "dmesg") -> dict:
    """What the layout model needs that only the guest knows: firmware map, zones, boot params.

    Read from the boot log (BIOS-e820 lines, "Command line:") and the kernel .config.
    """
    from harness.metrics import parse_e820, parse_numa_layout, strip_dmesg_prefix
    from harness.model.layout import zones_from_kconfig

    e820 = parse_e820(dmesg_text, source)
    numa = parse_numa_layout(dmesg_text, source)
    srat: dict[int, list[tuple[int, int]]] = {}
    for r in numa.srat_memory.itertuples():
        srat.setdefault(int(r.node), []).append((int(r.start), int(r.end)))
    memoryless = sorted(int(n) for n, flag in numa.initmem["memoryless"].items() if flag)
    firmware = e820[e820["table"] == "BIOS-e820"]
    if firmware.empty:
        raise ParseError(source, None, "no BIOS-e820 lines: not a boot log, or it was cut")
    cmdline = ""
    for line in strip_dmesg_prefix(dmesg_text).splitlines():
        if line.startswith("Command line:"):
            cmdline = line.split(":", 1)[1].strip()
            break
    params = dict(p.split("=", 1) for p in cmdline.split() if "=" in p)
    kw: dict = {}
    if "mem" in params:
        kw["mem_limit"] = _memparse(params["mem"], source)
    if "mem_region_size" in params:
        kw["mem_region_size"] = _memparse(params["mem_region_size"], source)
    zones = zones_from_kconfig(config_text) if config_text else ("DMA", "DMA32", "Normal", "Movable")
    return {
        "firmware_map": [(int(r.start), int(r.end), str(r.type)) for r in firmware.itertuples()],
        "zones": zones,
        "cmdline": cmdline,
        "kwargs": kw,
        "srat_ranges": srat or None,       # what the kernel was told (None: no SRAT)
        "memoryless": memoryless,          # "Initmem setup node N as memoryless"
    }


def _memparse(value: str, source: str) -> int:
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    num, suffix = value.rstrip("KMGTkmgt"), value[len(value.rstrip("KMGTkmgt")):].upper()
    try:
        return int(num, 0) * units[suffix]
    except (ValueError, KeyError):
        raise ParseError(source, None, f"boot parameter value {value!r} is not a size") from None


def unfolded_vmstat_bound(zoneinfo: pd.DataFrame) -> int:
    """Pages by which a printed nr_free_pages may lag the exact count (the largest zone's bound).

    Each CPU batches up to its "vm stats threshold" of NR_FREE_PAGES changes before
    folding them into the zone counter zoneinfo prints, so the printed value is exact
    only within threshold x CPUs, even right after /proc/sys/vm/stat_refresh (the
    snapshot's own processes allocate). The region counts are exact under the zone lock.
    """
    if "vm_stats_threshold" not in zoneinfo.columns or "pcp_cpus" not in zoneinfo.columns:
        return 0
    return int((zoneinfo["vm_stats_threshold"].fillna(0) * zoneinfo["pcp_cpus"].fillna(0)).max())


def check_capture(frames: dict[str, pd.DataFrame], inputs: dict,
                  node_ranges: dict[int, list[tuple[int, int]]] | None = None,
                  memoryless: list[int] | None = None) -> pd.DataFrame:
    """Check one parsed snapshot (harness.metrics.parse_snapshot) against the model.

    inputs come from model_inputs(). node_ranges is the declared memory per node
    (node -> [(start, end_exclusive)] bytes, from the topology) and memoryless the
    declared nodes with CPUs only; by default both are what the guest's dmesg says
    its SRAT held. Layout is always checked; regions too when the kernel reports them.
    """
    from harness.model.layout import compute_layout
    from harness.model.regions import predict_regions

    if node_ranges is None:
        node_ranges = inputs["srat_ranges"]
    if memoryless is None:
        memoryless = inputs["memoryless"]
    layout = compute_layout(inputs["firmware_map"], node_ranges, inputs["zones"],
                            memoryless_nodes=memoryless, **inputs["kwargs"])
    zoneinfo = frames["zoneinfo"]
    tables = [check_layout(layout.zones, zoneinfo).assign(check="layout")]
    meminfo = frames.get("node_meminfo")
    if meminfo is not None and not meminfo.empty:
        bounds = layout.nodes[["memtotal_kb_min", "memtotal_kb_max"]].rename(
            columns={"memtotal_kb_min": "MemTotal_kB_min", "memtotal_kb_max": "MemTotal_kB_max"})
        tables.append(compare(bounds.astype("float64"), meminfo, ["MemTotal_kB"]).assign(check="node"))
    # The region lines of /proc/zoneinfo come from the same read as nr_free_pages, so
    # their sum is compared with it; the debugfs file is read later in the snapshot.
    regions = frames.get("zoneinfo.regions")
    if regions is None or regions.empty:
        regions = frames.get("mem_regions.regions")
    if regions is not None and not regions.empty:
        tables.append(check_regions(predict_regions(layout), regions, zoneinfo,
                                    free_tolerance=unfolded_vmstat_bound(zoneinfo)).assign(check="regions"))
    return pd.concat(tables, ignore_index=True)
