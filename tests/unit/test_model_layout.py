"""Layout model against numbers measured on real 6.12 guests and the 6.18 host."""

import re

import pytest

from harness.checks import check_layout, compare, failed
from harness.errors import UserError
from harness.metrics import parse_config_text
from harness.model import ModelInputError
from harness.model.layout import predict_layout, predict_nodes, zones_from_kconfig

M, G = 1 << 20, 1 << 30


def test_interleaved_ground_truth(interleaved_layout):
    """The measured guest: node0 DMA32 389120/258048, node1 DMA32 from 131072, 393183/262111."""
    z = interleaved_layout.zones
    assert z.loc[(0, "DMA32"), ["start_pfn", "spanned", "present"]].tolist() == [4096, 389120, 258048]
    assert z.loc[(1, "DMA32"), ["start_pfn", "spanned", "present"]].tolist() == [131072, 393183, 262111]
    # first usable page is pfn 1 (trim_bios_range), 640K-1M is a hole: 158 + 3840 pages
    assert z.loc[(0, "DMA"), ["start_pfn", "spanned", "present"]].tolist() == [1, 4095, 3998]


def test_every_zone_of_every_node_is_listed_empty_ones_with_start_pfn_0(interleaved_layout):
    z = interleaved_layout.zones
    assert list(z.index) == [(n, zone) for n in (0, 1) for zone in ("DMA", "DMA32", "Normal", "Movable")]
    for key in [(1, "DMA"), (0, "Normal"), (1, "Normal"), (0, "Movable"), (1, "Movable")]:
        assert z.loc[key, ["start_pfn", "spanned", "present", "managed_max"]].tolist() == [0, 0, 0, 0]


def test_managed_bounds(q35_2g, interleaved_srat, defconfig_zones, interleaved_layout):
    z = interleaved_layout.zones
    # the whole first MiB stays reserved: what q35 guests show as DMA managed 3840
    assert z.loc[(0, "DMA"), "managed_max"] == 3840
    assert z.loc[(0, "DMA32"), "managed_max"] == 258048
    assert (z["managed_min"] <= z["managed_max"]).all()
    assert (z["managed_max"] <= z["present"]).all()
    nodes = predict_nodes(q35_2g, interleaved_srat, defconfig_zones)
    assert nodes.loc[0, "memtotal_kb_max"] == (3840 + 258048) * 4
    assert nodes.loc[1, ["node_start_pfn", "node_spanned", "node_present"]].tolist() == [131072, 393183, 262111]
    assert nodes.loc[0, ["node_start_pfn", "node_spanned", "node_present"]].tolist() == [1, 393215, 262046]
    # 8 sections of 128 MiB hold node0 memory: 8 * 512 pages of struct page
    assert nodes.loc[0, "reserve_budget_pages"] == 8 * 512 + (128 * M >> 12)
    assert (nodes["memtotal_kb_min"] < nodes["memtotal_kb_max"]).all()


def test_tinyconfig_has_no_dma_zone_so_dma32_starts_at_pfn_1(q35_2g, interleaved_srat):
    z = predict_layout(q35_2g, interleaved_srat, ("DMA32",))
    assert z.loc[(0, "DMA32"), ["start_pfn", "spanned", "present"]].tolist() == [1, 393215, 262046]
    assert "DMA" not in z.index.get_level_values("zone")


def test_mem_limit_removes_ram_above_the_address(q35_2g, defconfig_zones):
    z = predict_layout(q35_2g, None, defconfig_zones, mem_limit=1 * G)
    assert z.loc[(0, "DMA32"), ["start_pfn", "spanned", "present"]].tolist() == [4096, 258048, 258048]


def test_no_srat_gives_one_node(q35_2g, defconfig_zones):
    z = predict_layout(q35_2g, None, defconfig_zones)
    assert z.index.get_level_values("node").unique().tolist() == [0]
    assert z.loc[(0, "DMA32"), ["spanned", "present"]].tolist() == [524255 - 4096] * 2


def test_unaligned_node_boundary_loses_the_straddling_page(q35_2g, defconfig_zones):
    half = 512 * M + 2048
    z = predict_layout(q35_2g, {0: [(0, half)], 1: [(half, 2 * G)]}, defconfig_zones)
    assert z.loc[(0, "DMA32"), "present"] == 131072 - 4096  # pfn 131072 straddles
    assert z.loc[(1, "DMA32"), ["start_pfn", "present"]].tolist() == [131073, 524255 - 131073]


def test_above_4g_memory_goes_to_normal(defconfig_zones):
    fw = [(0, 0x9FC00, "usable"), (0x100000, 0x80000000, "usable"), (0x100000000, 0x180000000, "usable")]
    z = predict_layout(fw, {0: [(0, 2 * G)], 1: [(4 * G, 6 * G)]}, defconfig_zones)
    assert z.loc[(1, "Normal"), ["start_pfn", "spanned", "present"]].tolist() == [1 << 20, 1 << 19, 1 << 19]
    assert z.loc[(1, "DMA32"), "spanned"] == 0
    assert z.loc[(0, "Normal"), "spanned"] == 0


def test_node_span_over_a_zone_of_other_node_memory_gives_spanned_without_present(defconfig_zones):
    # node0 = [0,16M)+[4G,5G), node1 = [16M,2G): node0's span covers all of DMA32, none of
    # it node0's memory, so zoneinfo shows spanned > 0 with present 0 (and no start_pfn)
    fw = [(0, 0x9FC00, "usable"), (0x100000, 0x80000000, "usable"), (0x100000000, 0x140000000, "usable")]
    z = predict_layout(fw, {0: [(0, 16 * M), (4 * G, 5 * G)], 1: [(16 * M, 2 * G)]}, defconfig_zones)
    assert z.loc[(0, "DMA32"), ["start_pfn", "spanned", "present", "managed_max"]].tolist() == \
        [4096, (1 << 20) - 4096, 0, 0]


def test_bad_inputs_are_user_errors(q35_2g, interleaved_srat, defconfig_zones):
    with pytest.raises(ModelInputError, match="not modelled"):
        predict_layout(q35_2g, interleaved_srat, defconfig_zones, movablecore=512 * M)
    with pytest.raises(ModelInputError, match="overlaps"):
        predict_layout(q35_2g, {0: [(0, 1 * G)], 1: [(512 * M, 2 * G)]}, defconfig_zones)
    with pytest.raises(ModelInputError, match="no node"):
        predict_layout(q35_2g, {0: [(0, 1 * G)]}, defconfig_zones)
    with pytest.raises(ModelInputError, match="unknown e820 type"):
        predict_layout([(0, G, "RAM")], None)
    with pytest.raises(ModelInputError, match="power of two"):
        predict_layout(q35_2g, None, mem_region_size=384 * M)
    with pytest.raises(UserError, match="unknown zone"):
        predict_layout(q35_2g, None, ("HighMem",))


def test_zones_from_kconfig(data_dir):
    config = parse_config_text((data_dir / "kernel" / "vanilla-6.12.118.config").read_text(), strict=False)
    # the project's tinyconfig-based build: no ZONE_DMA, no ZONE_DEVICE
    assert zones_from_kconfig({name: opt.value for name, opt in config.items()}) == ("DMA32", "Normal", "Movable")
    assert zones_from_kconfig({"ZONE_DMA32": "y", "ZONE_DMA": "n"}) == ("DMA32", "Normal", "Movable")
    assert zones_from_kconfig({"ZONE_DMA": "y", "ZONE_DMA32": "y", "ZONE_DEVICE": "y"}) == \
        ("DMA", "DMA32", "Normal", "Movable", "Device")


# --- the SRAT shifted by one 128 MiB section must be caught -----------------------------

# zoneinfo as measured on the guest (only the fields we measured; others unknown)
MEASURED = {
    (0, "DMA32"): {"start_pfn": 4096, "spanned": 389120, "present": 258048},
    (1, "DMA32"): {"start_pfn": 131072, "spanned": 393183, "present": 262111},
}


def _measured_frame():
    import pandas as pd

    df = pd.DataFrame.from_dict(MEASURED, orient="index")
    df.index = pd.MultiIndex.from_tuples(df.index, names=["node", "zone"])
    return df


def _check_measured(model):
    return compare(model.loc[list(MEASURED)], _measured_frame(), ["start_pfn", "spanned", "present"])


def test_check_passes_on_the_right_srat(interleaved_layout):
    table = _check_measured(interleaved_layout.zones)
    assert not failed(table), table
    assert len(table) == 6


def test_check_fails_when_srat_is_shifted_by_one_section(q35_2g, defconfig_zones):
    s = 128 * M
    shifted = {
        0: [(0, 512 * M + s), (1 * G + s, 1 * G + 512 * M + s)],
        1: [(512 * M + s, 1 * G + s), (1 * G + 512 * M + s, 2 * G)],
    }
    table = _check_measured(predict_layout(q35_2g, shifted, defconfig_zones))
    assert failed(table)
    diffs = table[table["verdict"] == "DIFF"]
    assert set(diffs["field"]) >= {"present", "spanned", "start_pfn"}
    assert set(diffs["key"]) == {"node0/DMA32", "node1/DMA32"}


# --- the 6.18 host (no SRAT, ZONE_DEVICE): same layout rules ---------------------------


def parse_dmesg(text):
    """Return (e820 entries, SRAT node ranges or None) from a boot log."""
    e820, srat = [], {}
    for m in re.finditer(r"BIOS-e820: \[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\] (.+?)\s*$", text, re.M):
        e820.append((int(m[1], 16), int(m[2], 16) + 1, m[3]))
    for m in re.finditer(r"SRAT: Node (\d+) PXM \d+ \[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\]", text):
        srat.setdefault(int(m[1]), []).append((int(m[2], 16), int(m[3], 16) + 1))
    return e820, (srat or None)


def parse_zoneinfo(text):
    """Return {(node, zone): {field: int}} with the few zoneinfo fields the checks use."""
    import pandas as pd

    zones, cur = {}, None
    names = {"pages free": "nr_free_pages", "spanned": "spanned", "present": "present", "managed": "managed",
             "start_pfn:": "start_pfn"}
    for line in text.splitlines():
        m = re.match(r"Node (\d+), zone\s+(\S+)", line)
        if m:
            cur = zones.setdefault((int(m[1]), m[2]), {})
            continue
        m = re.match(r"\s+(pages free|spanned|present|managed|start_pfn:)\s+(\d+)$", line)
        if m and cur is not None:
            cur[names[m[1]]] = int(m[2])
    df = pd.DataFrame.from_dict(zones, orient="index")
    df.index = pd.MultiIndex.from_tuples(df.index, names=["node", "zone"])
    return df


def test_host_618_layout_matches_zoneinfo(data_dir):
    host = data_dir / "host-6.18"
    e820, srat = parse_dmesg((host / "dmesg.txt").read_text())
    assert srat is None and len(e820) == 5
    observed = parse_zoneinfo((host / "zoneinfo").read_text())
    model = predict_layout(e820, srat, ("DMA", "DMA32", "Device"))
    # managed is left out: the host reserves gigantic pages at boot (Normal managed << present)
    table = compare(model.assign(start_pfn=model["start_pfn"].where(model["present"] > 0)), observed,
                    ["spanned", "present", "start_pfn"])
    assert not failed(table), table
    assert (table["verdict"] == "ok").sum() == 5 * 2 + 3


def test_check_layout_flags_managed_outside_bounds_on_host(data_dir):
    host = data_dir / "host-6.18"
    e820, srat = parse_dmesg((host / "dmesg.txt").read_text())
    table = check_layout(predict_layout(e820, srat, ("DMA", "DMA32", "Device")),
                         parse_zoneinfo((host / "zoneinfo").read_text()))
    bad = table[table["verdict"] != "ok"]
    assert bad[["key", "field"]].values.tolist() == [["node0/Normal", "managed"]]
