"""Snapshot collection: the one-round-trip command's real output split back into files, taken, sampled and saved."""

import time
from pathlib import Path

import pytest

from harness.errors import ParseError, VMError
from harness.fs import read_tree
from harness.metrics import parse_snapshot
from harness.metrics.snapshot import MARK, Snapshot, capture_name, snapshot_command, split_snapshot
from harness.vm.snapshots import Sampler, save_snapshot, take_snapshot
from harness.vm.ssh import Result

RAW = Path(__file__).resolve().parents[1] / "data" / "snapshot" / "raw-regions-two-node.txt"


class FakeGuest:
    """Answers the snapshot command with the recorded output of a real guest."""

    name = "fake"

    def __init__(self, fail_after=None):
        self.calls = 0
        self.fail_after = fail_after

    def run(self, cmd, timeout=60, check=False):
        assert cmd == snapshot_command(refresh="stat_refresh" in cmd)
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise VMError("guest is gone")
        return Result(0, RAW.read_text(), "")


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


def test_take_and_save_a_snapshot(tmp_path):
    snap = take_snapshot(FakeGuest(), "before")
    assert snap.label == "before" and snap.guest_uptime > 0 and abs(snap.host_time - time.time()) < 60
    assert "zoneinfo" in snap.files and "uptime" not in snap.files
    (tmp_path / "before.tmp").mkdir()
    (tmp_path / "before.tmp" / "stale").write_text("left by a crashed save\n")
    dest = save_snapshot(snap, tmp_path)
    assert dest == tmp_path / "before" and not (tmp_path / "before.tmp").exists()
    saved = read_tree(dest)
    assert saved.pop("time") == snap.clock_text()
    assert saved == snap.files
    assert snap.clock_text().startswith("host ") and "\nguest_uptime " in snap.clock_text()


def test_sampler_collects_until_exit_and_keeps_the_error():
    with Sampler(FakeGuest(), interval=0.01) as sampler:
        time.sleep(0.2)
    assert len(sampler.snapshots) >= 2 and not sampler.errors
    assert [s.label for s in sampler.snapshots[:2]] == ["during-000", "during-001"]
    with Sampler(FakeGuest(fail_after=1), interval=0.01) as failing:
        time.sleep(0.2)
    assert len(failing.snapshots) == 1
    assert [str(e) for e in failing.errors] == ["guest is gone"]


def test_snapshot_is_plain_data():
    snap = Snapshot("x", 1.5, 2.25, {"vmstat": "nr_free_pages 1\n"})
    assert snap.clock_text() == "host 1.500\nguest_uptime 2.25\n"
