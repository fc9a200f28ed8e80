"""The model against real guest captures (tests/data/captures/<kernel>-<topology>/).

Each capture holds the guest's dmesg.txt (BIOS-e820, SRAT, command line), its config
and one quiescent snapshot; the whole check pipeline runs on it offline.
"""

from pathlib import Path

import pytest

from harness.checks import check_capture, failed, model_inputs, render
from harness.metrics import parse_snapshot, read_capture_dir

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"
DIRS = sorted(p for p in CAPTURES.glob("*") if (p / "dmesg.txt").exists() and (p / "zoneinfo").exists())
SECTION = 128 << 20


def _check(capture, node_ranges=None):
    files = read_capture_dir(str(capture))
    inputs = model_inputs(files.pop("dmesg.txt"), files.pop("config", None), f"{capture.name}/dmesg.txt")
    memmap = [k for k in files if k.startswith("firmware-memmap/")]
    frames = parse_snapshot({k: v for k, v in files.items() if k not in memmap})
    return frames, check_capture(frames, inputs, node_ranges)


@pytest.mark.parametrize("capture", DIRS, ids=[p.name for p in DIRS])
def test_capture_matches_model(capture):
    frames, table = _check(capture)
    assert {"start_pfn", "spanned", "present", "managed", "MemTotal_kB"} <= set(table["field"])
    if "regions" in frames.get("zoneinfo", {}).columns or "mem_regions.regions" in frames:
        assert "regions" in set(table["check"]), "a regions kernel's capture must get region checks"
    assert not failed(table), "\n" + render(table, only_failures=True)


@pytest.mark.parametrize("capture", [p for p in DIRS if p.name.endswith("-two-node")],
                         ids=lambda p: p.name)
def test_shifted_srat_makes_the_check_fail(capture):
    """Model the boundary one section off: spanned/present/start_pfn must be reported."""
    shifted = {0: [(0, (1 << 30) + SECTION)], 1: [((1 << 30) + SECTION, 2 << 30)]}
    _, table = _check(capture, shifted)
    diffs = table[table["verdict"] != "ok"]
    assert {"spanned", "present"} <= set(diffs["field"]), render(table)
