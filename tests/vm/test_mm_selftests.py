"""`harness selftests` for real: the kernel's own mm selftests on vanilla and regions, two topologies.

The default set runs in four guests (four-node, whose 4 CPUs the migration test needs,
and interleaved-small; vanilla and regions); the series must not turn a test that
passes on vanilla into a failure, and the run keeps every program's raw output.
"""

import json

import pandas as pd
import pytest

from harness import cli, selftests
from harness.selftests import tap

TOPOLOGIES = ("four-node", "interleaved-small")
VARIANTS = ("vanilla", "regions")


@pytest.fixture(scope="module")
def run(tmp_path_factory, rh_build):
    rh_build("vanilla"), rh_build("regions")   # build errors surface here, not as a run failure
    out = tmp_path_factory.mktemp("selftests")
    # two guests at once on a local dask cluster, as a developer would on this 2-core machine
    status = cli.main(["selftests", "--flavors", ",".join(VARIANTS), "--topology", ",".join(TOPOLOGIES),
                       "--parallel", "2", "--out", str(out)])
    (run_dir,) = out.iterdir()
    return status, run_dir


def test_no_selftest_passes_on_vanilla_and_fails_on_regions(run):
    status, run_dir = run
    assert status == 0, (run_dir / "summary.txt").read_text()
    verdicts = pd.read_csv(run_dir / "verdicts.csv", keep_default_na=False)
    assert set(verdicts["verdict"]) <= {"same", "fixed", "fails on both", "skipped", "flaky"}, verdicts


def test_every_test_ran_in_every_guest_and_kept_its_output(run):
    _, run_dir = run
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["status"] == "ok" and meta["tests"] == list(selftests.DEFAULT)
    results = pd.read_csv(run_dir / "results.csv", keep_default_na=False)
    programs = results[results["subtest"] == ""]
    assert len(programs) == len(selftests.DEFAULT) * len(TOPOLOGIES) * len(VARIANTS)
    assert not (programs["result"] == "not run").any(), programs
    for row in programs.itertuples():
        raw = run_dir / f"{row.variant}@{row.topology}" / "tap" / f"{row.test}.tap"
        assert raw.is_file() == (not row.reason.startswith("not started")), row
    # the set was chosen to run on these guests: on vanilla, only migration on 2 CPUs is a skip
    vanilla = programs[programs["variant"] == "vanilla"]
    skipped = vanilla[vanilla["result"] == tap.SKIP]
    assert skipped[["topology", "test"]].values.tolist() == [["interleaved-small", "migration_thp"]]
    assert set(vanilla["result"]) <= {tap.PASS, tap.SKIP, "flaky"}, vanilla[vanilla["result"] != tap.PASS]
    # subtests are parsed from the TAP: cow alone prints hundreds
    cow = results[(results["test"] == "cow") & (results["subtest"] != "")]
    assert len(cow) > 100
