"""Run the model on real guest captures (tests/data/captures/<kernel>-<topology>/) and check it.

Each capture directory holds dmesg.txt (BIOS-e820 and SRAT lines, the command line),
zoneinfo and config. The test is skipped when no capture has been saved yet.
"""

import re
from pathlib import Path

import pandas as pd
import pytest

from harness.checks import check_layout, check_regions, compare, failed, render
from harness.model.layout import PAGE_SHIFT, compute_layout, zones_from_kconfig
from harness.model.regions import predict_regions

from test_model_layout import parse_dmesg

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"
DIRS = sorted(p for p in CAPTURES.glob("*") if (p / "dmesg.txt").exists() and (p / "zoneinfo").exists())

SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def mem_limit(dmesg):
    m = re.search(r"Command line:.*?\bmem=(\d+)([KMGT]?)\b", dmesg, re.I)
    return int(m[1]) * SUFFIX[m[2].upper()] if m else None


def parse_zoneinfo_full(text):
    """Return (zones frame, regions frame or None, region size in pages or None) from /proc/zoneinfo."""
    zones, regions, size, cur = {}, [], None, None
    names = {"pages free": "nr_free_pages", "spanned": "spanned", "present": "present",
             "managed": "managed", "start_pfn:": "start_pfn"}
    for line in text.splitlines():
        m = re.match(r"Node (\d+), zone\s+(\S+)", line)
        if m:
            cur = (int(m[1]), m[2])
            zones[cur] = {}
            continue
        m = re.match(r"\s+(pages free|spanned|present|managed|start_pfn:)\s+(\d+)$", line)
        if m and cur:
            zones[cur][names[m[1]]] = int(m[2])
        m = re.match(r"\s+regions:\s+\d+ size (\d+)", line)
        if m:
            size = int(m[1])
        m = re.match(r"\s+region (\d+): start_pfn (\d+) end_pfn (\d+) present (\d+) free (\d+)", line)
        if m and cur:
            regions.append((*cur, *map(int, m.groups())))
    zdf = pd.DataFrame.from_dict(zones, orient="index")
    zdf.index = pd.MultiIndex.from_tuples(zdf.index, names=["node", "zone"])
    rdf = None
    if regions:
        rdf = pd.DataFrame(regions, columns=["node", "zone", "region", "start_pfn", "end_pfn", "present", "free"])
        rdf = rdf.set_index(["node", "zone", "region"])
    return zdf, rdf, size


def model_for(capture):
    dmesg = (capture / "dmesg.txt").read_text(errors="replace")
    e820, srat = parse_dmesg(dmesg)
    assert e820, f"{capture}/dmesg.txt has no BIOS-e820 lines"
    config = (capture / "config").read_text() if (capture / "config").exists() else None
    zones, regions, size = parse_zoneinfo_full((capture / "zoneinfo").read_text())
    zone_names = zones_from_kconfig(config) if config else tuple(zones.index.get_level_values("zone").unique())
    kw = {"mem_region_size": size << PAGE_SHIFT} if size else {}
    layout = compute_layout(e820, srat, zone_names, mem_limit=mem_limit(dmesg), **kw)
    return layout, zones, regions


@pytest.mark.skipif(not DIRS, reason="no captures under tests/data/captures yet")
@pytest.mark.parametrize("capture", DIRS, ids=[p.name for p in DIRS])
def test_layout_matches_capture(capture):
    layout, zones, _ = model_for(capture)
    exact = layout.zones.assign(start_pfn=layout.zones["start_pfn"].where(layout.zones["present"] > 0))
    table = compare(exact, zones, ["spanned", "present", "start_pfn"])
    assert not failed(table), "\n" + render(table, only_failures=True)


@pytest.mark.skipif(not DIRS, reason="no captures under tests/data/captures yet")
@pytest.mark.parametrize("capture", DIRS, ids=[p.name for p in DIRS])
def test_managed_within_bounds_on_capture(capture):
    layout, zones, _ = model_for(capture)
    table = check_layout(layout.zones, zones)
    assert not failed(table), "\n" + render(table, only_failures=True)


@pytest.mark.skipif(not DIRS, reason="no captures under tests/data/captures yet")
@pytest.mark.parametrize("capture", DIRS, ids=[p.name for p in DIRS])
def test_regions_match_capture(capture):
    layout, zones, regions = model_for(capture)
    if regions is None:
        pytest.skip("vanilla kernel: zoneinfo has no region lines")
    table = check_regions(predict_regions(layout), regions, zones)
    assert not failed(table), "\n" + render(table, only_failures=True)
