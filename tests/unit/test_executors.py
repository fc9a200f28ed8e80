"""The dask executor on a real LocalCluster with toy jobs: kernels shipped by key, results back, dead workers.

The jobs here write a small guest directory instead of booting one (tests/vm runs real
guests): what is tested is dask's side of things, with worker processes that really die.
"""

import contextlib
import json
import os
from dataclasses import fields
from pathlib import Path

import pytest

from harness import executors
from harness.errors import InfraError
from harness.kernel.build import BuildMetadata

KEY = "f" * 64


def _metadata(key):
    values = {f.name: ([] if f.type.startswith("list") else {} if f.type.startswith("dict") else
                       0 if f.type == "int" else "x") for f in fields(BuildMetadata)}
    values.update(key=key, flavor="vanilla", package_version=None, schema=1)
    return json.dumps(BuildMetadata(**values).to_json())


def toy_job(payload, workdir):
    """Write workdir/<dir>; die (the whole worker process) while a marker says so."""
    marks = Path(payload["marks"])
    attempts = marks / f"{payload['name']}.attempts"
    with attempts.open("a") as fh:
        fh.write(f"{os.getpid()}\n")
    n = len(attempts.read_text().split())
    if n <= payload.get("die_times", 0):
        os._exit(9)    # as SIGKILL would: no cleanup, the worker is gone mid-job
    guest = workdir / payload["name"]
    (guest / "snapshots").mkdir(parents=True)
    (guest / "console.log").write_text(f"job {payload['name']} attempt {n}\n")
    kernel = Path(os.environ["REGION_HARNESS_CACHE"]) / "kernels" / payload["key"] / "bzImage"
    return {"name": payload["name"], "attempt": n, "bzimage": kernel.read_bytes().decode()}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two one-thread worker processes whose cache root is their own (empty) one."""
    from distributed import Client, LocalCluster

    worker_cache = tmp_path_factory.mktemp("worker-cache")
    # the nannies pass env to every worker they start, restarts after a killed worker included
    # (an os.environ set around the start would reach only the first ones)
    with executors._quiet_dask():
        lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                          memory_limit=0, env={"REGION_HARNESS_CACHE": str(worker_cache)})
    client = Client(lc)
    yield client, worker_cache
    client.close()
    lc.close()


@pytest.fixture
def client_kernel(tmp_path):
    d = tmp_path / "client-kernels" / KEY
    d.mkdir(parents=True)
    (d / "bzImage").write_text("the kernel image")
    (d / ".config").write_text("CONFIG_NUMA=y\n")
    (d / "metadata.json").write_text(_metadata(KEY))
    return d


def _tasks(tmp_path, n, **extra):
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    return [executors.Task(f"id{k}", k, f"guest-{k}", KEY,
                           {"name": f"guest-{k}", "marks": str(marks), "key": KEY, **extra}) for k in range(n)]


def _run(client, tasks, kernels, tmp_path):
    ex = executors.Dask(lambda: contextlib.nullcontext(client))
    got = []
    ex.run(toy_job, tasks, kernels, tmp_path / "staging", got.append, lambda m: None)
    return got


def test_jobs_run_on_workers_get_the_kernel_once_and_come_back_whole(cluster, client_kernel, tmp_path):
    client, worker_cache = cluster
    got = _run(client, _tasks(tmp_path, 4), {KEY: client_kernel}, tmp_path)
    assert sorted(d.task.job_id for d in got) == ["id0", "id1", "id2", "id3"]
    for d in got:
        assert not d.error and d.outcome["bzimage"] == "the kernel image"
        assert (d.staged / "console.log").read_text().startswith(f"job {d.task.dir} ")
        assert (d.staged / "snapshots").is_dir() and d.worker.startswith("tcp://")
    installed = worker_cache / "kernels" / KEY
    assert sorted(p.name for p in installed.iterdir()) == sorted(executors.KERNEL_FILES)
    # both workers have the key now: nothing is sent again
    present = client.run(executors._kernels_present, [KEY])
    assert all(v[KEY] for v in present.values())
    sent = []
    ex = executors.Dask(lambda: contextlib.nullcontext(client))
    ex._ship(client, {KEY: client_kernel}, list(present), sent.append)
    assert sent == []


def test_a_worker_dying_mid_job_reruns_the_job_elsewhere_once(cluster, client_kernel, tmp_path):
    client, _ = cluster
    tasks = _tasks(tmp_path, 3)
    tasks[1] = executors.Task("id1", 1, "guest-1", KEY, {**tasks[1].payload, "die_times": 1})
    got = _run(client, tasks, {KEY: client_kernel}, tmp_path)
    assert sorted(d.task.job_id for d in got) == ["id0", "id1", "id2"]      # each job exactly once
    again = next(d for d in got if d.task.job_id == "id1")
    assert not again.error and again.outcome["attempt"] == 2
    client.wait_for_workers(2, timeout=60)   # the nanny restarted the dead worker


def test_a_job_that_kills_every_worker_is_given_up_after_the_bound(cluster, client_kernel, tmp_path):
    client, _ = cluster
    tasks = _tasks(tmp_path, 1, die_times=99)
    (got,) = _run(client, tasks, {KEY: client_kernel}, tmp_path)
    assert "died under it" in got.error and got.outcome is None
    attempts = (tmp_path / "marks" / "guest-0.attempts").read_text().split()
    assert len(attempts) == executors.JOB_ATTEMPTS
    client.wait_for_workers(2, timeout=60)


def test_a_worker_with_another_harness_refuses_the_job(cluster, client_kernel, tmp_path, monkeypatch):
    client, _ = cluster
    monkeypatch.setattr(executors, "harness_digest", lambda: "0" * 16)
    (got,) = _run(client, _tasks(tmp_path, 1), {KEY: client_kernel}, tmp_path)
    assert "runs another harness" in got.error and "ci/setup.sh" in got.error


def test_pack_and_unpack_round_trip_and_refuse_a_damaged_blob(tmp_path):
    src = tmp_path / "guest"
    (src / "snapshots" / "before").mkdir(parents=True)
    (src / "snapshots" / "before" / "zoneinfo").write_text("Node 0, zone DMA32\n")
    (src / "vm.json").write_text("{}")
    blob = executors.pack_dir(src)
    executors.unpack_dir(blob, tmp_path / "back")
    from harness.fs import tree_digest
    assert tree_digest(tmp_path / "back") == tree_digest(src)
    with pytest.raises(InfraError, match="unreadable guest directory"):
        executors.unpack_dir(blob[: len(blob) // 2], tmp_path / "half")


def test_install_kernel_is_whole_or_nothing(tmp_path, monkeypatch, client_kernel):
    monkeypatch.setenv("REGION_HARNESS_CACHE", str(tmp_path / "cache"))
    bundle = executors.kernel_bundle(client_kernel)
    with pytest.raises(InfraError, match="shipped files"):
        executors.install_kernel(KEY, {"bzImage": b"x"})
    with pytest.raises(InfraError, match="does not name that key"):
        executors.install_kernel("e" * 64, bundle)
    assert not executors.has_kernel(KEY)
    assert executors.install_kernel(KEY, bundle) == "installed"
    assert executors.install_kernel(KEY, bundle) == "present"
    assert not [p for p in (tmp_path / "cache" / "kernels").iterdir() if p.name.startswith(".tmp")]


def test_executor_registry_and_ssh_cluster_arguments():
    assert set(executors.EXECUTORS) == {"sequential", "local", "scheduler", "ssh"}
    assert isinstance(executors.make(executors.ExecOptions()), executors.Sequential)
    assert isinstance(executors.make(executors.ExecOptions(parallel=1)), executors.Sequential)
    assert executors.make(executors.ExecOptions(parallel=2)).name == "local:2"
    assert executors.make(executors.ExecOptions(scheduler="tcp://10.0.0.5:8786")).name == "scheduler:tcp://10.0.0.5:8786"
    opts = executors.ssh_cluster_options(("lab1", "lab2"), 3, "/venv/bin/python")
    assert opts["hosts"] == ["lab1", "lab1", "lab2"]       # the scheduler on the first host, a worker on each
    assert opts["worker_options"] == {"nthreads": 1, "n_workers": 3, "memory_limit": 0}
    assert opts["remote_python"] == "/venv/bin/python"
    assert opts["scheduler_options"]["allowed_failures"] == executors.JOB_ATTEMPTS - 1
