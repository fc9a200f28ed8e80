"""The evacuation counters (kernel-patches 0009) and their check, on a real capture.

6.12-evacuate-two-node: the regions kernel with mem_region_evacuate=1 and 16M regions,
snapshot taken after the churn-pagecache workload (tests/data/capture.py --workload).
"""

import math
from pathlib import Path

from test_results import make_guest

from harness import checks
from harness.metrics import load_capture, parse_mem_regions, parse_mem_regions_config, parse_model_inputs
from harness.results import store
from harness.results.metrics import METRICS, NO_EVACUATION, extract_metrics

CAPTURE = Path(__file__).resolve().parents[1] / "data" / "captures" / "6.12-evacuate-two-node"


def _vmstat():
    return load_capture(str(CAPTURE))["vmstat"]


def test_the_workload_evacuated_regions_and_every_attempt_has_one_outcome():
    v = _vmstat().iloc[0]
    assert v["region_evac_success"] > 0 and v["region_evac_pages_migrated"] > 0
    inputs = parse_model_inputs((CAPTURE / "dmesg.txt").read_text(), (CAPTURE / "config").read_text())
    table = checks.check_capture(load_capture(str(CAPTURE)), inputs)
    assert not checks.failed(table), checks.render(table, only_failures=True)
    assert "evacuation" in set(table["check"])


def test_an_outcome_lost_or_counted_twice_is_a_diff():
    assert not checks.failed(checks.check_evacuation(_vmstat(), nodes=2))
    for delta in (1, -3):  # an outcome counted twice; three lost (more than two nodes have in flight)
        v = _vmstat().copy()
        v["region_evac_success"] += delta
        assert checks.failed(checks.check_evacuation(v, nodes=2)), delta
    # one attempt in flight per node is not a failure, three on two nodes is
    v = _vmstat().copy()
    v["region_evac_queued"] += 2
    assert not checks.failed(checks.check_evacuation(v, nodes=2))
    v["region_evac_queued"] += 1
    assert checks.failed(checks.check_evacuation(v, nodes=2))
    v = _vmstat().copy()
    v["region_evac_pages_failed"] = v["region_evac_pages_scanned"] + 1
    assert checks.failed(checks.check_evacuation(v, nodes=2))


def test_regions_show_their_evacuation_state():
    regions = parse_mem_regions((CAPTURE / "mem_regions" / "regions").read_text(), "regions")
    assert {"evac_attempts", "evac_failures", "evac_errno"} <= set(regions.columns)
    tried = regions[regions["evac_attempts"] > 0]
    assert not tried.empty
    assert (tried["evac_failures"] <= tried["evac_attempts"]).all()
    config = parse_mem_regions_config((CAPTURE / "mem_regions" / "config").read_text(), "config")
    assert config["evacuate"] == 1 and config["evacuate_pages"] == 32


def _bump(guest, **extra):
    vm = guest / "snapshots" / "after" / "vmstat"
    lines = []
    for ln in vm.read_text().splitlines():
        name, value = ln.split()
        lines.append(f"{name} {int(value) + extra.get(name, 0)}")
    vm.write_text("\n".join(lines) + "\n")
    store.write_metrics(guest)


def test_the_price_is_pages_migrated_per_region_freed(tmp_path):
    g = make_guest(tmp_path, "evac", "6.12-evacuate-two-node", boot=6.0)
    assert math.isnan(extract_metrics(g)["region_evac_pages_per_region"])  # nothing freed in between
    _bump(g, region_evac_success=4, region_evac_pages_migrated=100)
    m = extract_metrics(g)
    assert m["region_evac_success_delta"] == 4 and m["region_evac_pages_per_region"] == 25
    vanilla = extract_metrics(make_guest(tmp_path, "vanilla", "6.12-vanilla-two-node", boot=6.0))
    assert math.isnan(vanilla["region_evac_success_delta"]) and math.isnan(vanilla["region_evac_pages_per_region"])
    assert METRICS["region_evac_pages_per_region"].undefined_when == NO_EVACUATION


def _bump_evac_cpu(guest, us):
    """Add us microseconds of evacuation CPU time to every zone of the after snapshot."""
    zones = guest / "snapshots" / "after" / "mem_regions" / "zones"
    head, *rows = zones.read_text().splitlines()
    col = head.split().index("evac_cpu_us")
    out = [head]
    for row in rows:
        parts = row.split()
        parts[col] = str(int(parts[col]) + us)
        out.append(" ".join(parts))
    zones.write_text("\n".join(out) + "\n")
    store.write_metrics(guest)


def test_the_price_includes_kcompactd_cpu_time_evacuating(tmp_path):
    g = make_guest(tmp_path, "evac", "6.12-evacuate-two-node", boot=6.0)
    zones = (CAPTURE / "mem_regions" / "zones").read_text().splitlines()
    assert sum(int(r.split()[-1]) for r in zones[1:]) > 0  # the capture's workload evacuated
    assert extract_metrics(g)["region_evac_cpu_ms"] == 0
    _bump_evac_cpu(g, 750)
    assert extract_metrics(g)["region_evac_cpu_ms"] == 0.75 * (len(zones) - 1)
    older = extract_metrics(make_guest(tmp_path, "bank", "6.12-bank-two-node", boot=6.0))
    assert math.isnan(older["region_evac_cpu_ms"])  # zones without the column: not measured
