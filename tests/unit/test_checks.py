"""compare/render/failed and the layout and region checks, on the measured interleaved layout."""

import pandas as pd
import pytest

from harness.checks import check_layout, check_regions, compare, failed, raise_if_failed, render
from harness.errors import CheckFailed
from harness.model.layout import compute_layout
from harness.model.regions import predict_regions


@pytest.fixture(scope="module")
def layout(interleaved_layout):
    return interleaved_layout


def zoneinfo_like(layout, managed=None):
    """A zoneinfo frame as the metrics parser gives it, consistent with the model."""
    z = layout.zones
    df = pd.DataFrame(
        {
            "nr_free_pages": (z["managed_max"] * 0.9).astype("int64"),
            "spanned": z["spanned"],
            "present": z["present"],
            "managed": z["managed_max"] if managed is None else managed,
            # zoneinfo prints no start_pfn for unpopulated zones
            "start_pfn": z["start_pfn"].where(z["present"] > 0).astype("Int64"),
        }
    )
    return df


def regions_like(layout, zoneinfo):
    r = predict_regions(layout).copy()
    r["free"] = 0
    # spread each zone's free pages over its regions, lowest first, no region over its present
    for (node, zone), z in zoneinfo[zoneinfo["present"] > 0].iterrows():
        left = int(z["nr_free_pages"])
        for region, present in r.loc[(node, zone), "present"].items():
            take = min(left, int(present))
            r.loc[(node, zone, region), "free"] = take
            left -= take
    return r


def test_compare_exact_bounds_missing_extra():
    idx = pd.MultiIndex.from_tuples([(0, "DMA"), (0, "DMA32")], names=["node", "zone"])
    expected = pd.DataFrame({"present": [3998, 100], "managed_min": [3000, 50], "managed_max": [3840, 100]}, index=idx)
    obs_idx = pd.MultiIndex.from_tuples([(0, "DMA"), (1, "DMA32")], names=["node", "zone"])
    observed = pd.DataFrame({"present": [3998, 7], "managed": [3841, 7]}, index=obs_idx)
    t = compare(expected, observed, ["present", "managed"])
    assert list(t.columns) == ["key", "field", "expected", "observed", "verdict"]
    got = t[["key", "field", "verdict"]].values.tolist()
    assert got == [
        ["node0/DMA", "present", "ok"],
        ["node0/DMA", "managed", "DIFF"],
        ["node0/DMA32", "present", "missing"],
        ["node0/DMA32", "managed", "missing"],
        ["node1/DMA32", "present", "DIFF"],
        ["node1/DMA32", "managed", "DIFF"],
    ]
    assert t.loc[1, "expected"] == "[3000, 3840]"
    assert failed(t)
    # a tolerance of one page makes managed 3841 acceptable
    t2 = compare(expected.iloc[:1], observed.iloc[:1], ["present", "managed"], tolerance={"managed": 1})
    assert not failed(t2)


def test_render_is_aligned_and_summarises():
    idx = pd.Index([0, 1], name="node")
    t = compare(pd.DataFrame({"present": [5, 123456]}, index=idx), pd.DataFrame({"present": [5, 7]}, index=idx),
                ["present"])
    text = render(t)
    lines = text.splitlines()
    assert lines[0].split() == ["key", "field", "expected", "observed", "verdict"]
    col = lines[0].index("verdict")
    assert lines[2][col:].startswith("ok") and lines[3][col:].startswith("DIFF")  # columns aligned
    assert lines[2].index("5 ") + 1 == lines[3].index("123456 ") + 6  # numbers right-aligned
    assert "node1" in text and "DIFF" in text
    assert lines[-1] == "2 checked, 1 not ok"
    assert "node0" not in render(t, only_failures=True)
    with pytest.raises(CheckFailed, match="node1"):
        raise_if_failed(t, "layout")


def test_check_layout_flags_managed_outside_bounds_and_missing_zone(layout):
    zi = zoneinfo_like(layout)
    zi.loc[(0, "DMA"), "managed"] = 3998  # more than the first-MiB reservation allows
    zi = zi.drop(index=(1, "Normal"))
    t = check_layout(layout.zones, zi)
    bad = t[t["verdict"] != "ok"][["key", "field", "verdict"]].values.tolist()
    assert ["node0/DMA", "managed", "DIFF"] in bad
    assert ["node1/Normal", "spanned", "missing"] in bad


def test_check_layout_fails_for_srat_shifted_by_a_section(layout, q35_2g, defconfig_zones):
    M, G, s = 1 << 20, 1 << 30, 128 << 20
    shifted = {0: [(0, 512 * M + s), (G + s, G + 512 * M + s)], 1: [(512 * M + s, G + s), (G + 512 * M + s, 2 * G)]}
    wrong = compute_layout(q35_2g, shifted, defconfig_zones)
    t = check_layout(wrong.zones, zoneinfo_like(layout))
    assert failed(t)
    diffs = t[t["verdict"] == "DIFF"]
    assert {"node0/DMA32", "node1/DMA32"} <= set(diffs["key"])
    # regions see it too: region present counts move by 128 MiB worth of pages
    zi = zoneinfo_like(layout)
    tr = check_regions(predict_regions(wrong), regions_like(layout, zi), zi)
    assert failed(tr)
    assert "present" in set(tr[tr["verdict"] == "DIFF"]["field"])


def test_check_regions_ok_and_failures(layout):
    zi = zoneinfo_like(layout)
    obs = regions_like(layout, zi)
    model = predict_regions(layout)
    t = check_regions(model, obs, zi)
    assert not failed(t), render(t)
    assert set(t["field"]) == {"start_pfn", "end_pfn", "present", "free", "region_free_sum", "region_present_sum"}

    # a region free count that went below zero prints as 2^64 - 3: named by region and field
    under = obs.copy().astype({"free": object})
    under.loc[(1, "DMA32", 0), "free"] = 2**64 - 3
    t = check_regions(model, under, zi)
    bad_rows = t[t["verdict"] != "ok"][["key", "field"]].values.tolist()
    assert ["node1/DMA32/region0", "free"] in bad_rows

    # a kernel that counts the other node's pages in node0's region 1
    bad = obs.copy()
    bad.loc[(0, "DMA32", 1), "present"] = 131072
    t = check_regions(model, bad, zi)
    rows = t[t["verdict"] != "ok"][["key", "field"]].values.tolist()
    assert rows == [["node0/DMA32/region1", "present"], ["node0/DMA32", "region_present_sum"]]

    # free pages lost from the region statistics
    leak = obs.copy()
    leak.loc[(1, "DMA32", 0), "free"] -= 3
    t = check_regions(model, leak, zi)
    assert t[t["verdict"] != "ok"][["key", "field"]].values.tolist() == [["node1/DMA32", "region_free_sum"]]
    assert not failed(check_regions(model, leak, zi, free_tolerance=3))

    # a region the model does not know, and one missing
    extra = pd.concat([obs, obs.loc[[(1, "DMA32", 2)]].rename(index={2: 3}, level="region")])
    t = check_regions(model, extra.drop(index=(0, "DMA32", 0)), zi)
    verdicts = t[t["verdict"] != "ok"].groupby("verdict")["key"].apply(set).to_dict()
    assert "node1/DMA32/region3" in verdicts["DIFF"]
    assert verdicts["missing"] == {"node0/DMA32/region0"}


def test_the_locked_region_sum_is_compared_where_zoneinfo_prints_it(layout):
    zi = zoneinfo_like(layout)
    obs = regions_like(layout, zi)
    model = predict_regions(layout)
    # the lockless region lines moved on after nr_free_pages was printed...
    moved = obs.copy()
    moved.loc[(1, "DMA32", 0), "free"] -= 40
    locked = zi.assign(regions_free=zi["nr_free_pages"].where(zi["present"] > 0))
    assert failed(check_regions(model, moved, zi))
    # ...but the sum taken under the zone lock with it agrees: no alarm
    assert not failed(check_regions(model, moved, locked)), render(check_regions(model, moved, locked))
    # and a locked sum that disagrees is the failure, whatever the lines say
    leak = locked.copy()
    leak.loc[(1, "DMA32"), "regions_free"] -= 3
    t = check_regions(model, obs, leak)
    assert t[t["verdict"] != "ok"][["key", "field", "observed"]].values.tolist() == [
        ["node1/DMA32", "region_free_sum", int(zi.loc[(1, "DMA32"), "nr_free_pages"]) - 3]]


def test_an_inflated_vmstat_threshold_cannot_hide_a_leak(layout):
    from harness.checks import MAX_VMSTAT_THRESHOLD, unfolded_vmstat_bound

    zi = zoneinfo_like(layout).assign(vm_stats_threshold=100_000, pcp_cpus=2)
    assert unfolded_vmstat_bound(zi) == MAX_VMSTAT_THRESHOLD * 2
    obs = regions_like(layout, zi)
    leak = obs.copy()
    leak.loc[(1, "DMA32", 0), "free"] -= 100_000   # a 100k-page leak from the region statistics
    t = check_regions(predict_regions(layout), leak, zi, free_tolerance=unfolded_vmstat_bound(zi))
    assert ["node1/DMA32", "region_free_sum"] in t[t["verdict"] != "ok"][["key", "field"]].values.tolist()


def test_stripped_region_data_fails_when_the_boot_log_reports_regions(data_dir):
    from harness.checks import check_capture
    from harness.metrics import load_capture, parse_model_inputs

    capture = data_dir / "captures" / "6.12-regions-two-node"
    inputs = parse_model_inputs((capture / "dmesg.txt").read_text(), (capture / "config").read_text())
    assert inputs.regions_reported
    frames = load_capture(str(capture))
    assert not failed(check_capture(frames, inputs))
    stripped = {k: v for k, v in frames.items() if k not in ("zoneinfo.regions", "mem_regions.regions")}
    t = check_capture(stripped, inputs)
    assert failed(t) and "region statistics" in set(t["field"])
    vanilla = data_dir / "captures" / "6.12-vanilla-two-node"
    v_inputs = parse_model_inputs((vanilla / "dmesg.txt").read_text(), (vanilla / "config").read_text())
    assert not v_inputs.regions_reported
    assert not failed(check_capture(load_capture(str(vanilla)), v_inputs))
