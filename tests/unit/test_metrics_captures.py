"""Parse every guest capture under tests/data/captures/<kernel>-<topology>/ and check kernel invariants.

A new capture directory is picked up automatically; with none, the parametrization is
empty (pytest reports it as such, nothing is skipped silently).
"""

import pytest


@pytest.fixture(scope="module")
def capture(capture_dir, capture_frames):
    """(directory, parsed frames) of one capture (the conftest parametrizes capture_dir)."""
    return capture_dir, capture_frames


def test_capture_parses_known_files(capture):
    path, out = capture
    files = {p.name for p in path.iterdir()}
    for name, key in (("zoneinfo", "zoneinfo"), ("buddyinfo", "buddyinfo"),
                      ("pagetypeinfo", "pagetypeinfo.free"), ("vmstat", "vmstat"),
                      ("dmesg.txt", "dmesg.e820")):
        if name in files:
            assert key in out, f"{path.name}/{name} was not parsed"


def test_zoneinfo_invariants(capture):
    path, out = capture
    if "zoneinfo" not in out:
        pytest.fail(f"{path.name} has no zoneinfo")
    z = out["zoneinfo"]
    assert (z["spanned"] >= z["present"]).all()
    assert (z["present"] >= z["managed"]).all()
    populated = z[z["present"] > 0]
    assert populated["start_pfn"].notna().all()
    assert (populated["pcp_cpus"] > 0).all()
    # one protection entry per zone the node lists
    per_node = z.groupby(level="node").size()
    nprot = sum(c.startswith("protection_") for c in z.columns)
    assert (per_node == nprot).all()
    nodes_with_memory = sorted(set(populated.index.get_level_values("node")))
    assert sorted(out["zoneinfo.node_stats"].index) == nodes_with_memory
    if "node_meminfo" in out:
        assert set(out["node_meminfo"].index) >= set(nodes_with_memory)
    if not out["zoneinfo.regions"].empty:
        r = out["zoneinfo.regions"]
        counts = r.groupby(level=["node", "zone"]).size()
        for key, n in counts.items():
            assert z.loc[key, "regions"] == n
        assert (r["end_pfn"] > r["start_pfn"]).all()
        assert (r["present"] <= r["end_pfn"] - r["start_pfn"]).all()


def test_buddyinfo_matches_zoneinfo_zones(capture):
    path, out = capture
    if "buddyinfo" not in out or "zoneinfo" not in out:
        pytest.fail(f"{path.name} lacks buddyinfo or zoneinfo")
    b = out["buddyinfo"]
    zones = set(b.index.droplevel("order"))
    populated = out["zoneinfo"]
    populated = set(populated[populated["managed"] > 0].index)
    assert zones <= set(out["zoneinfo"].index)
    assert populated <= zones


def test_pagetypeinfo_shape(capture):
    path, out = capture
    if "pagetypeinfo.free" not in out:
        pytest.skip(f"{path.name} has no pagetypeinfo (it is root-only on newer kernels)")
    free = out["pagetypeinfo.free"]
    assert set(free.index.get_level_values("order")) == set(range(free.index.levshape[3]))


def test_dmesg_layout_consistent(capture):
    path, out = capture
    if "dmesg.e820" not in out:
        pytest.skip(f"{path.name} has no dmesg.txt")
    usable = out["dmesg.e820"]
    usable = usable[(usable["type"] == "usable") & (usable["table"] == usable["table"].iloc[0])]
    for _, r in out["dmesg.early_node_ranges"].iterrows():
        assert ((usable["start"] <= r["start"]) & (usable["end"] >= r["end"])).any(), \
            f"early range {r['start']:#x}-{r['end']:#x} outside every usable e820 entry"
