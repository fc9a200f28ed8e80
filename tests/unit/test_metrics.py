"""Unit tests of harness.metrics on real captures: this host (tests/data/host-6.18) and a two-node
guest running our regions kernel (tests/data/captures/6.12-regions-two-node)."""

import logging
from pathlib import Path

import pandas as pd
import pytest

from harness import metrics as M
from harness.errors import ParseError
from harness.metrics import registry
from harness.metrics.registry import REGISTRY, KernelFile, find_entry, single

DATA = Path(__file__).resolve().parents[1] / "data"
HOST = DATA / "host-6.18"
REG = DATA / "captures" / "6.12-regions-two-node"
EXTFRAG = DATA / "captures" / "6.12-vanilla-interleaved-small" / "extfrag"
BANK = DATA / "captures" / "6.12-bank-two-node"
THP = DATA / "captures" / "6.12-thpchallenge-two-node"
HOTPLUG = DATA / "captures" / "6.12-hotplug-four-node"
MEMREG = REG / "mem_regions"


def text(path: Path) -> str:
    return path.read_text()


def replace_line(content: str, lineno: int, new: str) -> str:
    lines = content.split("\n")
    lines[lineno - 1] = new
    return "\n".join(lines)


def line_of(content: str, needle: str) -> int:
    return next(i for i, l in enumerate(content.split("\n"), 1) if needle in l)


# --- zoneinfo ---------------------------------------------------------------

@pytest.fixture(scope="module")
def host_zi():
    return M.parse_zoneinfo(text(HOST / "zoneinfo"), "zoneinfo")


def test_zoneinfo_zone_rows_and_values(host_zi):
    z = host_zi.zones
    assert list(z.index) == [(0, "DMA"), (0, "DMA32"), (0, "Normal"), (0, "Movable"), (0, "Device")]
    assert z.loc[(0, "DMA"), ["pages_free", "min", "spanned", "present", "managed"]].tolist() == \
        [3840, 29, 4095, 3998, 3840]
    assert z.loc[(0, "DMA32"), "start_pfn"] == 4096
    assert z.loc[(0, "Normal"), "managed"] == 1441792
    assert z.loc[(0, "Normal"), "numa_hit"] == 5541255
    assert z.loc[(0, "DMA"), ["protection_0", "protection_1", "protection_4"]].tolist() == [0, 3019, 8651]
    # 6.18 adds nr_free_pages_blocks: unknown fields are kept
    assert z.loc[(0, "DMA32"), "nr_free_pages_blocks"] == 771072
    assert z.loc[(0, "Normal"), "pcp_count"] == 41320 + 21892
    assert z.loc[(0, "Normal"), "vm_stats_threshold"] == 28
    assert z.loc[(0, "DMA32"), "pcp_cpus"] == 2


def test_zoneinfo_unpopulated_zone_is_a_row(host_zi):
    mov = host_zi.zones.loc[(0, "Movable")]
    assert mov["present"] == 0 and mov["min"] == 32 and mov["pcp_cpus"] == 0
    assert mov["nr_free_pages"] == 0
    assert pd.isna(mov["start_pfn"])
    assert host_zi.zones["start_pfn"].dtype == "Int64"


def test_zoneinfo_node_stats_and_pagesets(host_zi):
    ns = host_zi.node_stats
    assert list(ns.index) == [0]
    assert ns.loc[0, "nr_inactive_file"] == 701726
    assert ns.loc[0, "nr_written"] == 1196837
    assert ns.shape[1] == 51
    ps = host_zi.pagesets
    assert ps.loc[(0, "Normal", 1), "count"] == 21892
    assert ps.loc[(0, "DMA32", 0), ["high", "batch", "high_min", "high_max"]].tolist() == [3678, 63, 3678, 48307]
    assert host_zi.regions.empty


def test_zoneinfo_region_lines():
    zi = M.parse_zoneinfo(text(REG / "zoneinfo"), "zoneinfo")
    r = zi.regions
    assert list(r.index.names) == ["node", "zone", "region"]
    assert list(r.index) == [(0, "DMA32", 0), (0, "DMA32", 1), (1, "DMA32", 0), (1, "DMA32", 1)]
    assert r.loc[(0, "DMA32", 0)].tolist() == [1, 131072, 130974, 116500]
    assert r.loc[(1, "DMA32", 0)].tolist() == [262144, 393216, 131072, 129439]
    assert r.loc[(1, "DMA32", 1), "end_pfn"] == 524255  # last region ends with the zone
    # Region free counts are exact; the zone's nr_free_pages is the global vmstat counter,
    # which lags by at most vm_stats_threshold per CPU (both nodes are 12 pages apart here).
    for node, region_free, zone_free in [(0, 116500 + 125952, 242464), (1, 129439 + 123555, 253006)]:
        assert r.loc[node, "free"].sum() == region_free
        zone = zi.zones.loc[(node, "DMA32")]
        assert zone["nr_free_pages"] == zone_free
        assert abs(region_free - zone_free) <= zone["vm_stats_threshold"] * zone["pcp_cpus"]
    assert zi.zones.loc[(0, "DMA32"), ["regions", "region_size"]].tolist() == [2, 131072]
    assert zi.zones.loc[(0, "Normal"), "regions"] == 0
    # 6.12 pagesets: no high_min/high_max
    assert list(zi.pagesets.columns) == ["count", "high", "batch", "vm_stats_threshold"]
    assert zi.node_stats.loc[0, "nr_kernel_stack"] == 488


def test_zoneinfo_locked_region_sum():
    """Series 0002 prints the regions' free sum on the header, taken under the zone lock."""
    zi = M.parse_zoneinfo(text(DATA / "captures" / "6.12-regions-interleaved" / "zoneinfo"), "zoneinfo")
    z = zi.zones
    assert z.loc[(0, "DMA32"), ["regions", "region_size", "regions_free"]].tolist() == [8, 131072, 504959]
    assert z.loc[(1, "Normal"), "regions_free"] == 1018912
    assert z.loc[(1, "DMA32"), ["regions", "regions_free"]].tolist() == [0, 0]   # unpopulated, like regions
    # a quiescent guest: the locked sum equals nr_free_pages, the lockless lines too
    populated = z[z["regions"] > 0]
    assert (populated["regions_free"] == populated["nr_free_pages"]).all()
    assert zi.regions.groupby(level=[0, 1])["free"].sum().tolist() == populated["regions_free"].tolist()
    # an older kernel's header has no sum: the column is not invented
    assert "regions_free" not in M.parse_zoneinfo(text(REG / "zoneinfo"), "zoneinfo").zones.columns
    with pytest.raises(ParseError, match="unrecognised line"):
        M.parse_zoneinfo(text(DATA / "captures" / "6.12-regions-interleaved" / "zoneinfo").replace(
            "regions:     8 size 131072 free 504959", "regions:     8 size 131072 fre 504959"), "zoneinfo")


def test_zoneinfo_region_count_mismatch():
    content = text(REG / "zoneinfo")
    line = "  region 1: start_pfn 131072 end_pfn 262144 present 131072 free 125952\n"
    assert content.count(line) == 1
    bad = content.replace(line, "")
    with pytest.raises(ParseError, match="announces 2 regions but lists 1") as e:
        M.parse_zoneinfo(bad, "zi-regions")
    assert e.value.source == "zi-regions"


def test_zoneinfo_truncated_mid_line():
    content = text(HOST / "zoneinfo")
    cut = content[: content.index("        spanned  5505024") + len("        spann")]
    with pytest.raises(ParseError) as e:
        M.parse_zoneinfo(cut, "host-6.18/zoneinfo")
    assert (e.value.source, e.value.line) == ("host-6.18/zoneinfo", 152)
    assert "host-6.18/zoneinfo:152" in str(e.value)


def test_zoneinfo_truncated_mid_number_is_caught_by_missing_newline():
    content = text(HOST / "zoneinfo")
    cut = content[: content.index("        spanned  5505024") + len("        spanned  55")]
    with pytest.raises(ParseError) as e:
        M.parse_zoneinfo(cut, "zoneinfo")
    assert e.value.line == 152


def test_zoneinfo_truncated_at_line_boundary():
    content = text(HOST / "zoneinfo")
    cut = "\n".join(content.split("\n")[:160]) + "\n"
    with pytest.raises(ParseError, match="truncated") as e:
        M.parse_zoneinfo(cut, "zoneinfo")
    assert e.value.line == 160


def test_zoneinfo_corrupt_number():
    content = text(HOST / "zoneinfo")
    bad = replace_line(content, 108, "        managed  77x918")
    with pytest.raises(ParseError, match="expected a number") as e:
        M.parse_zoneinfo(bad, "zoneinfo")
    assert (e.value.source, e.value.line) == ("zoneinfo", 108)


def test_zoneinfo_missing_zone_header():
    content = text(HOST / "zoneinfo")
    with pytest.raises(ParseError, match="before any") as e:
        M.parse_zoneinfo(content.split("\n", 1)[1], "zoneinfo")
    assert e.value.line == 1


def test_zoneinfo_lines_before_the_first_header():
    content = text(HOST / "zoneinfo")
    body = content.split("\n", 1)[1]
    for first in ("    cpu: 0", "  pages free     3840", "  protection: (0, 1)", "        nr_free_pages 3840"):
        with pytest.raises(ParseError, match="before any 'Node N, zone NAME' header") as e:
            M.parse_zoneinfo(first + "\n" + body, "zoneinfo")
        assert e.value.line == 1, first


def test_zoneinfo_garbled_input_raises_only_parse_errors():
    """Cut, garble or drop lines of a real capture: a ParseError or a parse, never another exception."""
    lines = text(REG / "zoneinfo").split("\n")
    for i in range(0, len(lines) - 1, 2):
        line = lines[i]
        garbled = ([], [line[: len(line) // 2]], [line.replace("0", "x", 1)], [line + " 7"], [line.split(":")[0] + ":"])
        for new in garbled:
            try:
                M.parse_zoneinfo("\n".join(lines[:i] + new + lines[i + 1:]), "zoneinfo")
            except ParseError:
                pass


def test_zoneinfo_garbled_zone_header():
    content = text(HOST / "zoneinfo")
    bad = replace_line(content, 145, "Node 0 zone   Normal")
    with pytest.raises(ParseError, match="garbled zone header") as e:
        M.parse_zoneinfo(bad, "zoneinfo")
    assert e.value.line == 145


def test_zoneinfo_empty():
    with pytest.raises(ParseError, match="empty"):
        M.parse_zoneinfo("", "zoneinfo")


# --- buddyinfo / pagetypeinfo ----------------------------------------------

def test_buddyinfo_values():
    b = M.parse_buddyinfo(text(HOST / "buddyinfo"), "buddyinfo")
    assert b.loc[(0, "DMA32", 10), "free_blocks"] == 752
    assert b.loc[(0, "Normal", 0), "free_blocks"] == 1599
    assert len(b) == 33
    pages = (b["free_blocks"] * (2 ** b.index.get_level_values("order"))).groupby(level="zone").sum()
    assert pages["DMA"] == 256 + 512 + 3 * 1024


def test_buddyinfo_wrong_field_count():
    content = text(HOST / "buddyinfo")
    bad = replace_line(content, 2, "Node 0, zone    DMA32      2      2      4      2      5      4")
    with pytest.raises(ParseError, match="orders") as e:
        M.parse_buddyinfo(bad, "buddyinfo")
    assert (e.value.source, e.value.line) == ("buddyinfo", 2)


def test_buddyinfo_non_numeric():
    content = text(HOST / "buddyinfo")
    bad = content.replace("   1599 ", "   15#9 ")
    with pytest.raises(ParseError) as e:
        M.parse_buddyinfo(bad, "buddyinfo")
    assert e.value.line == 3


def test_pagetypeinfo_values():
    p = M.parse_pagetypeinfo(text(HOST / "pagetypeinfo"), "pagetypeinfo")
    assert (p.pageblock_order, p.pages_per_block) == (9, 512)
    assert p.free.loc[(0, "Normal", "Movable", 2), "free_blocks"] == 2194
    assert p.free.loc[(0, "Normal", "Reclaimable", 0), "free_blocks"] == 593
    assert not p.free["capped"].any()
    assert p.blocks.loc[(0, "Normal", "Movable"), "pageblocks"] == 2478
    assert p.blocks.groupby(level="migratetype").sum().loc["Unmovable", "pageblocks"] == 99
    assert p.mixed.empty


def test_pagetypeinfo_capped_count():
    content = text(HOST / "pagetypeinfo")
    line = line_of(content, "zone   Normal, type      Movable")
    bad = replace_line(content, line, content.split("\n")[line - 1].replace("   941 ", ">100000 ", 1))
    p = M.parse_pagetypeinfo(bad)
    row = p.free.loc[(0, "Normal", "Movable", 0)]
    assert row["free_blocks"] == 100000 and row["capped"]


def test_pagetypeinfo_truncated_row():
    content = text(HOST / "pagetypeinfo")
    line = line_of(content, "zone   Normal           98")
    bad = replace_line(content, line, "Node 0, zone   Normal           98         2478")
    with pytest.raises(ParseError) as e:
        M.parse_pagetypeinfo(bad, "pagetypeinfo")
    assert (e.value.source, e.value.line) == ("pagetypeinfo", line)


# --- vmstat and per-node files ----------------------------------------------

def test_vmstat():
    v = M.parse_vmstat(text(HOST / "vmstat"), "vmstat")
    assert v.shape == (1, 192)
    assert v.loc[0, "nr_free_pages"] == 1174590
    assert v.columns[0] == "nr_free_pages"


def test_vmstat_garbled():
    content = text(HOST / "vmstat")
    with pytest.raises(ParseError) as e:
        M.parse_vmstat(replace_line(content, 3, "nr_zone_inactive_anon"), "vmstat")
    assert (e.value.source, e.value.line) == ("vmstat", 3)
    with pytest.raises(ParseError) as e:
        M.parse_vmstat(content[:-3], "vmstat")
    assert e.value.line == 192


def test_node_meminfo():
    m = M.parse_node_meminfo(text(HOST / "node0-meminfo"), "node0-meminfo")
    assert m.index.tolist() == [0]
    assert m.loc[0, "MemTotal_kB"] == 8874200
    assert m.loc[0, "FileHugePages_kB"] == 10240
    assert m.loc[0, "HugePages_Total"] == 0
    with pytest.raises(ParseError) as e:
        M.parse_node_meminfo(text(HOST / "node0-meminfo").replace("8874200", "88742O0"), "node0-meminfo")
    assert (e.value.source, e.value.line) == ("node0-meminfo", 1)


def test_node_numastat_and_vmstat():
    n = M.parse_node_numastat(text(HOST / "node0-numastat"), "tests/data/host-6.18/node0-numastat")
    assert n.loc[0].tolist() == [5542829, 0, 0, 1126, 5542829, 0]
    v = M.parse_node_vmstat(text(HOST / "node0-vmstat"), "whatever", node=3)
    assert v.index.tolist() == [3] and v.loc[3, "nr_free_pages"] == 1174590
    with pytest.raises(ParseError, match="node number"):
        M.parse_node_vmstat(text(HOST / "node0-vmstat"), "vmstat")


# --- dmesg --------------------------------------------------------------------

def test_strip_dmesg_prefix():
    assert M.strip_dmesg_prefix("[    0.003002]   DMA      [mem 0x1000-0xffffff]") == "  DMA      [mem 0x1000-0xffffff]"
    assert M.strip_dmesg_prefix("<6>[   12.500000][    T1] Zone ranges:\r") == "Zone ranges:"
    assert M.strip_dmesg_prefix("  node   0: [mem 0x1000-0x9efff]") == "  node   0: [mem 0x1000-0x9efff]"
    assert M.strip_dmesg_prefix("[    0.1] a\n[    0.2] b") == "a\nb"


def test_e820_from_dmesg():
    e = M.parse_e820(text(HOST / "dmesg.txt"), "dmesg.txt")
    assert len(e) == 5 and set(e["table"]) == {"BIOS-e820"}
    first = e.iloc[0]
    assert (first["start"], first["end"], first["type"]) == (0, 0x9FC00, "usable")
    assert e.iloc[4][["start", "end"]].tolist() == [0x100000000, 0x640000000]
    assert e.loc[e["type"] == "usable", "size"].sum() == 0x9FC00 + (0xC0000000 - 0x100000) + 0x540000000


def test_e820_garbled():
    content = text(HOST / "dmesg.txt")
    line = line_of(content, "BIOS-e820: [mem 0x0000000000100000")
    bad = replace_line(content, line, "[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x00000000bf")
    with pytest.raises(ParseError) as e:
        M.parse_e820(bad, "dmesg.txt")
    assert (e.value.source, e.value.line) == ("dmesg.txt", line)


def test_numa_layout_from_dmesg():
    L = M.parse_numa_layout(text(HOST / "dmesg.txt"), "dmesg.txt")
    assert L.zone_ranges.loc["DMA32", ["start", "end"]].tolist() == [0x1000000, 0x100000000]
    assert L.zone_ranges.loc["Normal", "end_pfn"] == 0x640000
    assert L.zone_ranges.loc["Device", "empty"] and pd.isna(L.zone_ranges.loc["Device", "start"])
    assert L.early_node_ranges[["node", "start_pfn", "end_pfn"]].values.tolist() == \
        [[0, 1, 0x9F], [0, 0x100, 0xC0000], [0, 0x100000, 0x640000]]
    assert L.initmem.loc[0, ["start", "end"]].tolist() == [0x1000, 0x640000000]
    assert L.node_data.loc[0, "end"] == 0x640000000
    assert L.unavailable["pages"].tolist() == [1, 97]
    assert L.srat_memory.empty and L.movable_zone_start.empty  # this host fakes one node


SRAT_LOG = """\
[    0.000000] ACPI: SRAT: Node 0 PXM 0 [mem 0x00000000-0x1fffffff]
[    0.000000] ACPI: SRAT: Node 1 PXM 1 [mem 0x20000000-0x3fffffff] hotplug
[    0.000000] SRAT: PXM 0 -> APIC 0x00 -> Node 0
[    0.000000] SRAT: PXM 1 -> APIC 0x01 -> Node 1
[    0.000000] NODE_DATA(1) allocated [mem 0x3ffd5000-0x3fffffff]
[    0.000000] Movable zone start for each node
[    0.000000]   Node 1: 0x0000000030000000
[    0.000000] Early memory node ranges
[    0.000000]   node   0: [mem 0x0000000000001000-0x000000000009efff]
[    0.000000]   node   1: [mem 0x0000000020000000-0x000000003fffffff]
[    0.000000] Initmem setup node 2 as memoryless
"""


def test_numa_layout_srat_lines():
    L = M.parse_numa_layout(SRAT_LOG, "console.log")
    assert L.srat_memory[["node", "pxm", "start", "end", "hotplug"]].values.tolist() == \
        [[0, 0, 0, 0x20000000, False], [1, 1, 0x20000000, 0x40000000, True]]
    assert L.srat_cpus[["pxm", "apic_id", "node"]].values.tolist() == [[0, 0, 0], [1, 1, 1]]
    assert L.movable_zone_start.loc[1, "start_pfn"] == 0x30000
    assert L.initmem.loc[2, "memoryless"] and pd.isna(L.initmem.loc[2, "start"])
    bad = SRAT_LOG.replace("[mem 0x20000000-0x3fffffff] hotplug", "[mem 0x20000000-")
    with pytest.raises(ParseError) as e:
        M.parse_numa_layout(bad, "console.log")
    assert (e.value.source, e.value.line) == ("console.log", 2)
    bad = SRAT_LOG.replace("  node   1: [mem 0x0000000020000000-", "  node   1: [mem 0x00000000200")
    with pytest.raises(ParseError) as e:
        M.parse_numa_layout(bad, "console.log")
    assert e.value.line == 10


# --- firmware memmap --------------------------------------------------------

def test_firmware_memmap():
    f = M.read_firmware_memmap(str(HOST / "firmware-memmap"))
    assert f.index.tolist() == [0, 1, 2, 3, 4]
    assert f.loc[0, ["start", "end", "type"]].tolist() == [0, 0x9FC00, "System RAM"]
    assert f.loc[4, "end"] == 0x640000000
    e = M.parse_e820(text(HOST / "dmesg.txt"))
    assert f["start"].tolist() == e["start"].tolist() and f["end"].tolist() == e["end"].tolist()
    with pytest.raises(ParseError) as err:
        M.parse_firmware_memmap({0: {"start": "0x0\n", "end": "0x9fb", "type": "System RAM\n"}}, "memmap")
    assert err.value.source == "memmap/0/end" and err.value.line == 1


# --- our debugfs files and the test module ----------------------------------

def test_mem_regions_debugfs():
    r = M.parse_mem_regions(text(MEMREG / "regions"), "regions")
    zi = M.parse_zoneinfo(text(REG / "zoneinfo"))
    # Same frame shape and layout as the zoneinfo region lines; the free counts differ
    # because the two files were read at different moments of the same boot.
    pd.testing.assert_frame_equal(r.drop(columns="free"), zi.regions.drop(columns="free"))
    assert r.dtypes.equals(zi.regions.dtypes)
    assert r.loc[(0, "DMA32", 0)].tolist() == [1, 131072, 130974, 116503]
    assert r["free"].tolist() == [116503, 125952, 129257, 123555]
    fb = M.parse_mem_free_blocks(text(MEMREG / "free_blocks"), "free_blocks")
    assert fb.loc[(0, "DMA32", 0, "Movable", 10), "free_blocks"] == 112
    assert fb.loc[(1, "DMA32", 1, "Movable", 8), "free_blocks"] == 2
    assert len(fb) == 176  # 2 nodes x 2 regions x 4 migratetypes x 11 orders
    # a region that holds only order-10 blocks: its free_blocks add up to its free count
    assert fb.loc[(0, "DMA32", 1, "Movable", 10), "free_blocks"] * 1024 == r.loc[(0, "DMA32", 1), "free"]
    assert M.parse_mem_regions_config(text(MEMREG / "config")) == {"region_size_pages": 131072, "sorted": 1}
    content = text(MEMREG / "regions")
    assert content.split("\n")[1] == "0 DMA32 0 1 131072 130974 116503"
    with pytest.raises(ParseError) as e:
        M.parse_mem_regions(replace_line(content, 2, "0 DMA32 0 1 131072 130974"), "regions")
    assert (e.value.source, e.value.line) == ("regions", 2)
    content = text(MEMREG / "free_blocks")
    assert content.split("\n")[2] == "0 DMA32 0 Movable 7 4 3 3 3 4 1 2 1 1 112"
    with pytest.raises(ParseError) as e:
        M.parse_mem_free_blocks(replace_line(content, 3, "0 DMA32 0 Movable 7 4 3 3 3 4 1 2 1 1 1l2"),
                                "free_blocks")
    assert (e.value.source, e.value.line) == ("free_blocks", 3)


def test_region_alloc_test_output():
    # alloc nid=0 order=9 count=3 mt=movable; free; bench nid=0 order=0 count=1000 (TCG guest)
    pfns = M.parse_alloc_pfns(text(REG / "control-alloc"))["pfn"].tolist()
    assert pfns == [14336, 14848, 15360]
    assert all(p % 512 == 0 for p in pfns)  # order-9 blocks are 512-aligned
    assert M.parse_control_result(text(REG / "control-free")) == {"freed": 3}
    assert M.parse_control_result(text(REG / "control-bench")) == {"ns_per_op": 4792.0}
    # since 2026-12-03 bench also says which order its allocations split: here, with
    # split=1, bench nid=0 order=4 count=1000 split=1 (every block of orders 4-9 held)
    split = text(REG / "control-bench-split")
    assert M.parse_control_result(split) == {"ns_per_op": 3499.0, "split_from": 10}
    for bad in ("split_from 10\n", "ns_per_op 3499\nns_per_op 1\n", "freed 3\nns_per_op 1\n",
                "ns_per_op 3499\nsplit_from ten\n", ""):
        with pytest.raises(ParseError):
            M.parse_control_result(bad)
    content = text(REG / "control-alloc")
    with pytest.raises(ParseError) as e:
        M.parse_alloc_pfns(replace_line(content, 2, "148x8"), "control")
    assert (e.value.source, e.value.line) == ("control", 2)


# --- snapshot dispatch ------------------------------------------------------

def test_parse_snapshot_host_capture():
    out = M.load_capture(str(HOST))
    assert out["zoneinfo"].loc[(0, "DMA32"), "managed"] == 772918
    assert out["node_meminfo"].loc[0, "MemFree_kB"] == 4698360
    assert out["node_numastat"].loc[0, "numa_hit"] == 5542829
    assert out["firmware_memmap"].shape == (5, 4)
    assert out["dmesg.zone_ranges"].shape[0] == 4
    live = M.parse_snapshot({"/proc/buddyinfo": text(HOST / "buddyinfo"),
                             "/sys/devices/system/node/node0/vmstat": text(HOST / "node0-vmstat"),
                             "/sys/kernel/debug/mem_regions/regions": text(MEMREG / "regions"),
                             "/sys/kernel/debug/mem_regions/config": text(MEMREG / "config")})
    assert set(live) == {"buddyinfo", "node_vmstat", "mem_regions.regions", "mem_regions.config"}
    assert live["mem_regions.config"].loc[0, "sorted"] == 1


def test_parse_snapshot_error_names_the_file():
    with pytest.raises(ParseError) as e:
        M.parse_snapshot({"node0-numastat": "numa_hit 1\nnuma_miss\n"})
    assert (e.value.source, e.value.line) == ("node0-numastat", 2)


def test_unknown_and_clock_files_are_skipped(caplog):
    with caplog.at_level(logging.WARNING, logger="harness.metrics.snapshot"):
        out = M.parse_snapshot({"time": "host 1.0\n", "uptime": "1.0 2.0\n", "config": "CONFIG_X=y\n",
                                "vmstat": text(HOST / "vmstat")})
    assert set(out) == {"vmstat"}
    assert [r.getMessage() for r in caplog.records] == ["no parser for captured file config: skipped"]


# --- the registry -------------------------------------------------------------

def _example(guest_path):
    """A concrete guest path for a registry glob."""
    return guest_path.replace("node*", "node1").replace("memmap/*/*", "memmap/3/start").replace("memory*", "memory12")


def test_every_guest_file_is_matched_by_its_entry_as_path_and_capture_name():
    for entry in REGISTRY:
        for guest_path in entry.guest_paths:
            path = _example(guest_path)
            names = [path] if not entry.live else [path, M.capture_name(path)]
            for name in names:
                found = find_entry(name)
                assert found is not None and found[0] is entry, (guest_path, name)
    # a per-node file also ends in "vmstat": the longer match wins
    assert find_entry("/sys/devices/system/node/node0/vmstat")[0].frames == ("node_vmstat",)
    assert find_entry("node0/vmstat")[0].frames == ("node_vmstat",)
    assert find_entry("/proc/vmstat")[0].frames == ("vmstat",)
    assert find_entry("firmware-memmap/12/type")[1]["entry"] == "12"
    assert find_entry("dmesg.txt")[0].live is False
    assert find_entry("nr_vmstat") is None and find_entry("config") is None


def test_snapshot_command_reads_the_live_entries_in_registry_order():
    assert M.live_paths() == (
        "/proc/zoneinfo", "/proc/buddyinfo", "/proc/pagetypeinfo", "/proc/vmstat",
        "/sys/devices/system/node/node*/meminfo", "/sys/devices/system/node/node*/numastat",
        "/sys/devices/system/node/node*/vmstat", "/sys/devices/system/memory/block_size_bytes",
        "/sys/devices/system/memory/memory*/state", "/sys/devices/system/memory/memory*/valid_zones",
        "/sys/kernel/debug/mem_regions/regions",
        "/sys/kernel/debug/mem_regions/free_blocks", "/sys/kernel/debug/mem_regions/config",
        "/sys/kernel/debug/mem_regions/zones", "/sys/kernel/debug/extfrag/unusable_index",
        "/sys/kernel/debug/extfrag/extfrag_index", "/sys/kernel/tracing/events/kmem/mm_page_alloc_extfrag/hist")
    cmd = M.snapshot_command()
    others = [p for p in M.live_paths(small=False) if p not in M.snapshot.TOGETHER]
    assert " ".join(others) in cmd
    # the memory blocks' one-line files (two per block) are read by the shell, not a cat each
    small = " ".join(M.live_paths(small=True))
    assert small.startswith("/sys/devices/system/memory/") and f"for f in {small}; do" in cmd
    assert "cat" not in cmd.split(f"for f in {small}; do")[1].split("done")[0]
    # regions and zoneinfo last, back to back, read by the shell itself (no fork between them)
    last = cmd[cmd.index(" ".join(others)) + 1:]
    assert "for f in /sys/kernel/debug/mem_regions/regions /proc/zoneinfo; do" in last
    assert "cat" not in last.split("for f in /sys/kernel/debug/mem_regions/regions")[1]


def test_entries_produce_exactly_their_declared_frames():
    out = {**M.load_capture(HOST), **M.load_capture(REG), **M.load_capture(EXTFRAG), **M.load_capture(BANK),
           **M.load_capture(THP), **M.load_capture(HOTPLUG)}
    declared = [key for entry in REGISTRY for key in entry.frames]
    assert len(declared) == len(set(declared)), "two entries declare the same frame"
    assert set(out) == set(declared)
    assert M.load_capture(HOST)["dmesg.initmem"].index.name == "node"


def test_a_new_parser_is_one_registry_line(monkeypatch):
    def parse_slabinfo(content, source):
        rows = [line.split()[:2] for line in content.splitlines()[2:]]
        return pd.DataFrame(rows, columns=["name", "active_objs"]).astype({"active_objs": "int64"})

    line = KernelFile("/proc/slabinfo", "slabinfo", single(parse_slabinfo, "slabinfo"))
    monkeypatch.setattr(registry, "REGISTRY", (*REGISTRY, line))
    assert "/proc/slabinfo" in M.snapshot_command()
    slabinfo = "slabinfo - version: 2.1\n# name <active_objs> ...\nkmalloc-64 1280 1280 64 64 1\n"
    out = M.parse_snapshot({"/proc/slabinfo": slabinfo, "vmstat": text(HOST / "vmstat")})
    assert set(out) == {"vmstat", "slabinfo"}
    assert out["slabinfo"].loc[0, "active_objs"] == 1280
