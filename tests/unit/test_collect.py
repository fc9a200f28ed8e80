"""Snapshot collection: the one-round-trip command's real output split back into files."""

from pathlib import Path

import pytest

from harness.errors import ParseError
from harness.metrics import parse_snapshot
from harness.metrics.collect import MARK, capture_name, snapshot_command, split_snapshot

RAW = Path(__file__).resolve().parents[1] / "data" / "snapshot" / "raw-regions-two-node.txt"


def test_real_output_splits_into_every_file():
    files = split_snapshot(RAW.read_text(), RAW.name)
    names = sorted(capture_name(p) for p in files)
    assert names == sorted([
        "uptime", "zoneinfo", "buddyinfo", "pagetypeinfo", "vmstat",
        "node0-meminfo", "node1-meminfo", "node0-numastat", "node1-numastat",
        "node0-vmstat", "node1-vmstat",
        "mem_regions/regions", "mem_regions/free_blocks", "mem_regions/config"])
    assert float(files["uptime"].split()[0]) > 0
    frames = parse_snapshot({capture_name(p): t for p, t in files.items() if p != "uptime"})
    # both nodes' zones, and the series' region rows for both nodes
    assert set(frames["zoneinfo"].index.get_level_values("node")) == {0, 1}
    assert set(frames["mem_regions.regions"].index.get_level_values("node")) == {0, 1}


def test_garbled_output_names_the_line():
    with pytest.raises(ParseError, match=r"x:1: output does not start with a file marker"):
        split_snapshot("hello\n" + MARK + "uptime\n1.0 2.0\n", "x")
    with pytest.raises(ParseError, match="no uptime marker"):
        split_snapshot(MARK + "/proc/vmstat\nnr_free_pages 1\n", "y")


def test_command_reads_every_file_and_refreshes_only_when_asked():
    assert "stat_refresh" in snapshot_command(True)
    assert "stat_refresh" not in snapshot_command(False)
    assert capture_name("/sys/devices/system/node/node3/numastat") == "node3-numastat"
    assert capture_name("/sys/kernel/debug/mem_regions/free_blocks") == "mem_regions/free_blocks"
