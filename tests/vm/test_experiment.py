"""The consolidation experiment end to end on a small scale: samples, the table, verdicts."""

import pandas as pd

from harness import cli


def test_consolidation_experiment(tmp_path, rh_build, capsys):
    rh_build("regions")
    # two of the four default variants keep CI short: the baseline and the full series
    status = cli.main(["experiment", "consolidation", "--variants", "regions+mem_region_sort=0,regions",
                       "--topology", "one-node", "--repeat", "2", "--seconds", "6", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    (run,) = tmp_path.iterdir()
    samples = pd.read_csv(run / "consolidation.csv")
    assert sorted(samples["variant"].unique()) == ["regions", "regions+mem_region_sort=0"]
    assert sorted(samples["repetition"]) == [1, 1, 2, 2]
    # 16M regions on 2 GiB: about 128 of them, and never more free than the model allows
    assert (samples["optimum_free_regions_after"] > 100).all()
    assert (samples["free_regions_after"] <= samples["optimum_free_regions_after"]).all()
    assert ((samples["free_regions_pct_optimum_after"] > 0) & (samples["free_regions_pct_optimum_after"] <= 100)).all()
    assert "wholly free regions (mean ± 95% CI" in out and "% of optimum" in out and "evac CPU ms" in out
    assert (samples["workload_seconds"] >= 6).all()
    assert (run / "consolidation-verdicts" / "compare.csv").is_file()
