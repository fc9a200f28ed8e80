"""The model against real guest captures (tests/data/captures/<kernel>-<topology>/).

Each capture holds the guest's dmesg.txt (BIOS-e820, SRAT, command line), its config
and one quiescent snapshot; the whole check pipeline runs on it offline.
"""

import pytest

from harness.checks import CHECKS, check_capture, failed, render
from harness.errors import ParseError
from harness.metrics import parse_model_inputs, parse_snapshot
from harness.model.inputs import DeclaredNodes

SECTION = 128 << 20


def _check(capture_dir, files, declared=None):
    files = dict(files)
    if "dmesg.txt" not in files:
        pytest.skip(f"{capture_dir.name} has no dmesg.txt")
    inputs = parse_model_inputs(files.pop("dmesg.txt"), files.pop("config", None), f"{capture_dir.name}/dmesg.txt")
    frames = parse_snapshot({k: v for k, v in files.items() if not k.startswith("firmware-memmap/")})
    return frames, check_capture(frames, inputs, declared)


def test_capture_matches_model(capture_dir, capture_files):
    frames, table = _check(capture_dir, capture_files)
    assert {"start_pfn", "spanned", "present", "managed", "MemTotal_kB"} <= set(table["field"])
    if capture_dir.name.startswith("6.12-regions-"):
        # decided by what the kernel is, not by what the capture happens to contain
        regions = table[table["check"] == "regions"]
        assert {"start_pfn", "present", "free", "region_free_sum"} <= set(regions["field"]), \
            "a regions kernel's capture must get region checks"
    assert set(table["check"]) <= {c.name for c in CHECKS}
    # zoneinfo prints no start_pfn for an unpopulated zone: it is checked on the populated ones only
    layout_rows = table[table["check"] == "layout"]
    assert (layout_rows["field"] == "start_pfn").sum() == int((frames["zoneinfo"]["present"] > 0).sum())
    assert not failed(table), "\n" + render(table, only_failures=True)


@pytest.mark.captures("*-two-node")
def test_shifted_srat_makes_the_check_fail(capture_dir, capture_files):
    """Model the boundary one section off: spanned/present/start_pfn must be reported."""
    boundary = (1 << 30) + SECTION
    shifted = DeclaredNodes({0: ((0, boundary),), 1: ((boundary, 2 << 30),)})
    _, table = _check(capture_dir, capture_files, shifted)
    diffs = table[table["verdict"] != "ok"]
    assert {"spanned", "present"} <= set(diffs["field"]), render(table)


@pytest.mark.captures("*-two-node")
def test_model_inputs_of_a_boot_log(capture_dir, capture_files):
    inputs = parse_model_inputs(capture_files["dmesg.txt"], capture_files.get("config"), "dmesg.txt")
    assert inputs.firmware_map[0][0] == 0 and all(t for _, _, t in inputs.firmware_map)
    assert sorted(inputs.srat_ranges) == [0, 1] and inputs.memoryless == ()
    assert "Normal" in inputs.zones and "console=" in inputs.cmdline


def test_bad_boot_parameter_names_the_source_and_parameter(data_dir):
    dmesg = (data_dir / "captures" / "6.12-vanilla-one-node" / "dmesg.txt").read_text()
    line = next(i for i, l in enumerate(dmesg.splitlines(), 1) if "Command line:" in l)
    bad = dmesg.replace("Command line: ", "Command line: mem_region_size=16Q ", 1)
    with pytest.raises(ParseError, match=r"mem_region_size='16Q' is not a size") as e:
        parse_model_inputs(bad, None, "guest/dmesg.txt")
    assert (e.value.source, e.value.line) == ("guest/dmesg.txt", line)
    sized = parse_model_inputs(dmesg.replace("Command line: ", "Command line: mem=1G mem_region_size=0x1000000 ", 1),
                               None, "dmesg")
    assert (sized.mem_limit, sized.mem_region_size) == (1 << 30, 16 << 20)
    with pytest.raises(ParseError, match="no BIOS-e820 lines"):
        parse_model_inputs("[    0.000000] Linux version 6.12\n", None, "dmesg")


def test_regions_managed_pages_add_up_to_the_zone_s():
    """Series 0008's managed column: per zone its sum is zoneinfo's managed, exactly, and a
    region that manages one page too many or more than it has fails by name."""
    from pathlib import Path

    from harness.fs import read_tree
    capture = Path(__file__).resolve().parents[1] / "data" / "captures" / "6.12-managed-interleaved"
    files = read_tree(capture)
    frames, table = _check(capture, files)
    sums = table[table["field"] == "region_managed_sum"]
    assert len(sums) == int((frames["zoneinfo"]["present"] > 0).sum()) and not failed(table)
    per_region = table[(table["check"] == "regions") & (table["field"] == "managed")]
    assert len(per_region) == len(frames["mem_regions.regions"])
    lines = files["mem_regions/regions"].splitlines()
    head = lines[0].split()
    row = lines[2].split()                              # node 0 DMA32, region 1: the kernel image's
    row[head.index("managed")] = str(int(row[head.index("present")]) + 1)
    bad = dict(files, **{"mem_regions/regions": "\n".join([*lines[:2], " ".join(row), *lines[3:]]) + "\n"})
    _, table = _check(capture, bad)
    wrong = table[table["verdict"] != "ok"]
    assert set(wrong["field"]) == {"managed", "region_managed_sum"}, render(table, only_failures=True)
    assert set(wrong["key"]) == {"node0/DMA32", "node0/DMA32/region1"}, wrong.to_string()
