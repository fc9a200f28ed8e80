"""Jobs as pure functions: deterministic ids, the interleaved plan, shards, resume selection, merging entries."""

import subprocess
import sys
from dataclasses import replace

import pytest

from harness import jobs
from harness.errors import UserError

SETTINGS = {"seconds": "5", "interval": "5.0", "append": "", "region_size": "16M"}


def _plan(repeat=3, variants=("vanilla", "regions", "regions+mem_region_sort=0"),
          topologies=("one-node", "two-node")):
    return jobs.plan(list(variants), list(topologies), "stress", repeat, SETTINGS)


def test_job_id_is_a_stable_hash_of_the_spec():
    spec = jobs.JobSpec("regions", "two-node", "stress", 2, 7, tuple(sorted(SETTINGS.items())))
    # a golden value: the id must not move with Python's hash seed, dict order or the machine
    assert spec.id == jobs.job_id(spec) == "7061533d916c4d6c"
    code = ("from harness import jobs; print(jobs.JobSpec('regions', 'two-node', 'stress', 2, 7, "
            f"tuple(sorted({SETTINGS!r}.items()))).id)")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert other.stdout.strip() == spec.id


@pytest.mark.parametrize("change", [
    {"variant": "vanilla"}, {"topology": "one-node"}, {"workload": "churn"}, {"repetition": 3}, {"seed": 8},
    {"settings": tuple(sorted({**SETTINGS, "seconds": "6"}.items()))},
])
def test_every_field_of_the_spec_is_in_its_id(change):
    spec = jobs.JobSpec("regions", "two-node", "stress", 2, 7, tuple(sorted(SETTINGS.items())))
    assert replace(spec, **change).id != spec.id


def test_spec_and_job_round_trip_through_json():
    for job in _plan():
        assert jobs.Job.from_json(job.to_json()) == job


def test_an_edited_job_entry_is_refused():
    data = _plan()[0].to_json()
    data["spec"]["repetition"] = 9
    with pytest.raises(UserError, match="hashes to"):
        jobs.Job.from_json(data)


def test_plan_interleaves_repetitions_and_names_directories_as_before():
    plan = _plan(repeat=2, topologies=("one-node",))
    assert [(j.spec.variant, j.spec.repetition) for j in plan] == [
        ("vanilla", 1), ("regions", 1), ("regions+mem_region_sort=0", 1),
        ("vanilla", 2), ("regions", 2), ("regions+mem_region_sort=0", 2)]
    assert [j.order for j in plan] == list(range(6))
    assert plan[0].dir == "vanilla-one-node-r1"
    assert jobs.plan(["vanilla"], ["two-node"], "stress", 1, SETTINGS)[0].dir == "vanilla-two-node"


def test_seeds_pair_the_variants_of_one_repetition():
    plan = _plan(repeat=2, topologies=("one-node",))
    assert len({j.spec.seed for j in plan[:3]}) == 1
    assert plan[0].spec.seed != plan[3].spec.seed


def test_a_variant_given_twice_is_an_error():
    with pytest.raises(UserError, match="same guest twice"):
        jobs.plan(["vanilla", "vanilla"], ["one-node"], "stress", 1, SETTINGS)


@pytest.mark.parametrize("text", ["", "1", "0/2", "3/2", "1/0", "a/b", "1/2/3", "-1/2"])
def test_bad_shards_name_the_option(text):
    with pytest.raises(UserError, match="--shard"):
        jobs.parse_shard(text)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 18, 25])
def test_shards_partition_the_plan_evenly_and_keep_plan_order(n):
    plan = _plan()
    slices = [jobs.select_shard(plan, k, n) for k in range(1, n + 1)]
    ids = [j.id for s in slices for j in s]
    assert sorted(ids) == sorted(j.id for j in plan)            # every job once
    assert max(map(len, slices)) - min(map(len, slices)) <= 1   # balanced
    for s in slices:
        assert [j.order for j in s] == sorted(j.order for j in s)


def test_a_shard_depends_on_ids_only_not_on_the_plan_layout():
    plan = _plan()
    shuffled = list(reversed(plan))
    for k in (1, 2, 3):
        assert {j.id for j in jobs.select_shard(plan, k, 3)} == {j.id for j in jobs.select_shard(shuffled, k, 3)}
    by_id = sorted(plan, key=lambda j: j.id)
    assert jobs.select_shard(plan, 1, 3)[0].id in {j.id for j in by_id[::3]}


def test_resume_reruns_missing_and_infrastructure_failures_only():
    plan = _plan(repeat=1, topologies=("one-node",))   # three jobs
    a, b, c = plan
    entries = [{"job": a.id, "status": "error"}, {"job": b.id, "status": "check-failed"}]
    present = {a.dir, b.dir}
    assert jobs.select_resume(plan, entries, present) == [a, c]
    entries = [{"job": j.id, "status": s} for j, s in zip(plan, ("ok", "kernel-problem", "check-failed"),
                                                           strict=True)]
    assert jobs.select_resume(plan, entries, {j.dir for j in plan}) == []
    assert jobs.select_resume(plan, entries, {a.dir, c.dir}) == [b]   # its directory is gone


def test_merge_entries_dedupes_by_id_and_digest():
    one = {"job": "j1", "dir": "a", "status": "ok", "digest": "d1"}
    two = {"job": "j2", "dir": "b", "status": "ok", "digest": "d2"}
    merged = jobs.merge_entries([("run1", [one]), ("run2", [two, dict(one)])])
    assert set(merged) == {"j1", "j2"} and merged["j1"][0] == "run1"


def test_merge_entries_prefers_a_result_to_an_infrastructure_failure():
    failed = {"job": "j1", "dir": "a", "status": "error", "digest": None}
    done = {"job": "j1", "dir": "a", "status": "check-failed", "digest": "d9"}
    assert jobs.merge_entries([("r1", [failed]), ("r2", [done])])["j1"] == ("r2", done)
    assert jobs.merge_entries([("r2", [done]), ("r1", [failed])])["j1"] == ("r2", done)


def test_merge_entries_refuses_two_different_results_for_one_job():
    a = {"job": "j1", "dir": "vanilla-one-node", "status": "ok", "digest": "d1"}
    b = {**a, "digest": "d2"}
    with pytest.raises(jobs.MergeConflict, match="j1 .*vanilla-one-node.* run-a and run-b"):
        jobs.merge_entries([("run-a", [a]), ("run-b", [b])])
    with pytest.raises(UserError, match="no job id"):
        jobs.merge_entries([("old-run", [{"dir": "x", "status": "ok"}])])
