"""The consolidation experiment's analysis of a finished run (harness.experiments.analyze), on
runs built from real captures (6.12-evacuate-two-node: churn plus stragglers, evacuation on)."""

import json
import math

from test_results import make_run

from harness import experiments


def test_a_finished_run_gives_the_tables_and_the_verdicts(tmp_path):
    variants = ("regions+mem_region_sort=0", "regions+mem_region_evacuate=1")
    run = make_run(tmp_path / "run", dict.fromkeys(variants, [0, 0, 0]), capture="6.12-evacuate-two-node")
    samples, table, verdicts = experiments.analyze(run, variants)
    assert len(samples) == 6 and sorted(samples["repetition"].unique()) == [1, 2, 3]
    # the capture: every region counted once, none freer than the model allows
    assert (samples["free_regions_after"] <= samples["optimum_free_regions_after"]).all()
    assert (samples["free_regions_after"] > 100).all()
    # the price: wall time from the run's metadata (20.1, 20.2, 20.3 s); before == after in
    # these guests, so no evacuation happened in between (0 ms; pages per region undefined)
    row = table.set_index("variant").loc[variants[1]]
    assert math.isclose(row["workload_seconds"], 20.2) and row["workload_seconds_ci"] > 0
    assert row["region_evac_cpu_ms"] == 0 and math.isnan(row["region_evac_pages_per_region"])
    assert (run / "consolidation.csv").is_file() and (run / "consolidation-verdicts" / "compare.csv").is_file()
    assert set(verdicts["metric"]) == set(experiments.VERDICTS)
    out = experiments.render(table)
    assert "% of optimum" in out and "evac CPU ms" in out and "20.2 ±" in out


def test_guests_whose_infrastructure_failed_give_no_sample(tmp_path):
    variants = ("regions+mem_region_sort=0", "regions")
    run = make_run(tmp_path / "run", dict.fromkeys(variants, [0, 0]), capture="6.12-evacuate-two-node")
    meta = (run / "metadata.json").read_text().replace('"status": "ok", "workload', '"status": "error", "workload', 1)
    (run / "metadata.json").write_text(meta)
    samples, table, verdicts = experiments.analyze(run, variants)
    assert len(samples) == 3
    assert table.set_index("variant")["n"].to_dict() == {variants[0]: 1, variants[1]: 2}
    # and no verdict counts it either
    assert set(verdicts["n_base"]) == {1} and set(verdicts["n_new"]) == {2}


def test_the_analysis_reads_each_guest_once(tmp_path, monkeypatch):
    from harness.results import compare
    variants = ("regions+mem_region_sort=0", "regions", "regions+mem_region_evacuate=1")
    run = make_run(tmp_path / "run", dict.fromkeys(variants, [0, 0]), capture="6.12-evacuate-two-node")
    reads = []
    real = compare.extract_metrics
    monkeypatch.setattr(compare, "extract_metrics", lambda d, *a: reads.append(d.name) or real(d, *a))
    _, _, verdicts = experiments.analyze(run, variants)
    assert sorted(reads) == sorted(p.name for p in run.iterdir() if p.is_dir() and "-two-node" in p.name)
    assert set(verdicts["new"]) == set(variants[1:])


def test_a_policy_that_regresses_fails_the_experiment(tmp_path, capsys):
    from harness import cli

    variants = ("regions+mem_region_sort=0", "regions+mem_region_evacuate=1")
    run = make_run(tmp_path / "run", dict.fromkeys(variants, [0] * 8), capture="6.12-evacuate-two-node")
    meta = json.loads((run / "metadata.json").read_text())
    for g in meta["guests"]:
        if g["flavor"] == variants[1]:
            g["workload_seconds"] += 10.0  # the policy's workload takes 10 s longer, every time
    (run / "metadata.json").write_text(json.dumps(meta))
    args = ["experiment", "consolidation", "--variants", ",".join(variants), "--from", str(run)]
    assert cli.main(args) != 0
    out = capsys.readouterr()
    assert "workload_seconds" in out.out + out.err and "REGRESSION" in out.out
    for g in meta["guests"]:
        g["workload_seconds"] = 20.0 + g["repetition"] / 10
    (run / "metadata.json").write_text(json.dumps(meta))
    assert cli.main(args) == 0
    assert cli.main(["experiment", "consolidation", "--from", str(tmp_path)]) != 0  # not a run directory
