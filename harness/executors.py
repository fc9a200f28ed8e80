"""Where jobs run: in this process one after another, or on dask.distributed workers (local, remote, over ssh).

An executor takes tasks (one job each: a picklable function and its payload, the
kernel key it boots, its plan order) and hands every result to `deliver` on the
caller's thread, as a guest directory staged under `staging/<job id>/`. The caller
commits it into the run. Executors are registered in EXECUTORS (one per kind):

  sequential   in this process, plan order (the default; what `harness run` always did)
  local        `--parallel N`: a dask LocalCluster of N worker processes, one thread each
  scheduler    `--scheduler tcp://HOST:PORT`: the workers of a running `dask scheduler`
  ssh          `--ssh-hosts a,b,c`: dask's SSHCluster starts a scheduler on the first
               host and workers on every host (`--parallel N` workers per host)

Dask runs the matrix; nothing here schedules. What is ours: kernels are shipped by
content key (a worker whose cache has kernels/<key>/ is not sent it again), a task
checks that its worker runs the same harness as the client, results come back as a
tar of the guest directory, and a job whose worker died is rerun by dask elsewhere up
to JOB_ATTEMPTS times in all, then reported as an infrastructure failure (resumable).
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import io
import logging
import os
import re
import shutil
import socket
import sys
import tarfile
import tempfile
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import InfraError, UserError
from harness.fs import atomic_write, disk_full_is_infra
from harness.paths import REPO_ROOT, cache_root

log = logging.getLogger(__name__)

#: attempts of one job in all when its worker dies under it (dask allowed-failures + 1)
#: or its task raises (dask retries + 1): a bound, so a guest that kills workers cannot loop
JOB_ATTEMPTS = 3
#: the files of a cached kernel a worker needs to boot it and to check the guest against the model
KERNEL_FILES = ("bzImage", ".config", "metadata.json")
#: seconds to wait for the first worker of a scheduler or an ssh cluster
WORKER_WAIT = 120.0

#: a job's function: (payload, workdir) -> outcome; it writes the guest directory workdir/<dir>
JobFn = Callable[[dict[str, Any], Path], Any]


@dataclass(frozen=True)
class Task:
    """One job for an executor: what to call, with what, which kernel it needs, where it stands in the plan."""

    job_id: str
    order: int
    dir: str
    kernel_key: str
    payload: dict[str, Any]


@dataclass
class Delivery:
    """A finished task: the function's outcome and its staged guest directory, or why there is none."""

    task: Task
    outcome: Any = None
    staged: Path | None = None
    host: str = ""
    worker: str = ""
    error: str = ""          # set when the task itself could not run (lost workers, another harness)


Deliver = Callable[[Delivery], None]


@dataclass(frozen=True)
class ExecOptions:
    """The executor options of `harness run`; at most one of parallel-alone, scheduler, ssh_hosts."""

    parallel: int | None = None
    scheduler: str | None = None
    ssh_hosts: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        if self.scheduler:
            return "scheduler"
        if self.ssh_hosts:
            return "ssh"
        if self.parallel is not None and self.parallel > 1:
            return "local"
        return "sequential"

    def describe(self) -> str:
        if self.kind == "local":
            return f"local dask cluster, {self.parallel} workers"
        if self.kind == "scheduler":
            return f"dask scheduler {self.scheduler}"
        if self.kind == "ssh":
            return f"dask over ssh: {','.join(self.ssh_hosts)} ({self.parallel or 1} per host)"
        return "sequential"


_ADDRESS = re.compile(r"^(tcp|tls)://[^\s/:]+:\d{1,5}$")
_HOST = re.compile(r"^[A-Za-z0-9_.@-]+$")


def validate(opts: ExecOptions) -> None:
    """Bad executor options fail before anything is built, naming the option and what to give."""
    if opts.parallel is not None and opts.parallel < 1:
        raise UserError(f"--parallel {opts.parallel}: give the number of guests to run at once (1 or more)")
    if opts.scheduler and opts.ssh_hosts:
        raise UserError("--scheduler and --ssh-hosts: give one (a running scheduler, or hosts to start one on)")
    if opts.scheduler and opts.parallel is not None:
        raise UserError("--parallel with --scheduler: the scheduler's workers decide how many guests run at once; "
                        "start more `dask worker` processes instead")
    if opts.scheduler is not None and not _ADDRESS.match(opts.scheduler):
        raise UserError(f"--scheduler {opts.scheduler!r}: give the address `dask scheduler` prints, "
                        "e.g. tcp://10.0.0.5:8786")
    for h in opts.ssh_hosts:
        if not _HOST.match(h):
            raise UserError(f"--ssh-hosts: {h!r} is not a host name; give them comma-separated, e.g. lab1,lab2")


class Executor(ABC):
    """Runs tasks and delivers each result once, on the caller's thread."""

    name: str = ""

    @abstractmethod
    def run(self, fn: JobFn, tasks: list[Task], kernels: dict[str, Path], staging: Path,
            deliver: Deliver, progress: Callable[[str], None]) -> None:
        """Run every task; kernels maps each kernel key to its cache directory on this machine."""


class Sequential(Executor):
    """In this process, in plan order: the guest directory is written straight into the staging area."""

    name = "sequential"

    def run(self, fn: JobFn, tasks: list[Task], kernels: dict[str, Path], staging: Path,
            deliver: Deliver, progress: Callable[[str], None]) -> None:
        for t in tasks:
            workdir = staging / t.job_id
            workdir.mkdir(parents=True, exist_ok=True)
            outcome = fn(t.payload, workdir)
            deliver(Delivery(t, outcome, workdir / t.dir, host=socket.gethostname(), worker="local"))


# --------------------------------------------------------------------------- what a worker runs

@functools.cache
def harness_digest(root: str = str(REPO_ROOT)) -> str:
    """sha256 over the harness package and qemu-configs/: client and workers must agree on it."""
    h = hashlib.sha256()
    base = Path(root)
    for top in ("harness", "qemu-configs"):
        for p in sorted((base / top).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith((".pyc", ".tmp")):
                h.update(p.relative_to(base).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def kernel_bundle(directory: Path) -> dict[str, bytes]:
    """The files of a cached kernel a worker needs, read on the client."""
    return {name: (Path(directory) / name).read_bytes() for name in KERNEL_FILES}


def has_kernel(key: str) -> bool:
    """Whether this machine's kernel cache holds `key` (the files a job reads, and metadata of that key)."""
    from harness.kernel import cached_build

    d = cache_root() / "kernels" / key
    return cached_build(key) is not None and all((d / n).is_file() for n in KERNEL_FILES)


def install_kernel(key: str, bundle: dict[str, bytes]) -> str:
    """Put a shipped kernel into this machine's cache as kernels/<key>/ (whole or not at all)."""
    if has_kernel(key):
        return "present"
    if set(bundle) != set(KERNEL_FILES):
        raise InfraError(f"kernel {key[:12]}: shipped files {sorted(bundle)}, expected {list(KERNEL_FILES)}")
    kernels = cache_root() / "kernels"
    with disk_full_is_infra(f"receiving kernel {key[:12]}", kernels):
        kernels.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=kernels, prefix=f".tmp-{key[:12]}-"))
        try:
            for name, data in bundle.items():
                atomic_write(tmp / name, data)
            try:
                os.rename(tmp, kernels / key)
            except OSError:
                if not has_kernel(key):   # not another worker of this machine finishing first
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if not has_kernel(key):
        raise InfraError(f"kernel {key[:12]}: installed into {kernels / key}, but its metadata does not "
                         "name that key (damaged in transit?)")
    return "installed"


def pack_dir(directory: Path) -> bytes:
    """A directory as a gzip'd tar, entries relative to it (a guest directory going home)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        tar.add(directory, arcname=".")
    return buf.getvalue()


def unpack_dir(blob: bytes, dest: Path) -> None:
    """Extract pack_dir's blob into dest (which must not exist); refuses links out and absolute names."""
    dest = Path(dest)
    dest.mkdir(parents=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise InfraError(f"{dest}: a worker sent back an unreadable guest directory ({exc})") from exc


def remote_job(fn: JobFn, payload: dict[str, Any], kernel_key: str, digest: str, dirname: str) -> dict[str, Any]:
    """The dask task: check the worker, run the job in a scratch directory, send the guest directory back."""
    from distributed import get_worker

    worker = get_worker().address
    host = socket.gethostname()
    mine = harness_digest()
    if mine != digest:
        return {"error": f"worker {worker} on {host} runs another harness (code {mine}, client {digest}): "
                         "check out the client's commit there and run `bash ci/setup.sh`",
                "host": host, "worker": worker}
    if not has_kernel(kernel_key):
        return {"kernel_missing": kernel_key, "host": host, "worker": worker}
    scratch = _job_scratch()
    workdir = Path(tempfile.mkdtemp(prefix=f"{dirname}-", dir=scratch))
    try:
        outcome = fn(payload, workdir)
        guest_dir = workdir / dirname
        blob = pack_dir(guest_dir) if guest_dir.is_dir() else None
        return {"outcome": outcome, "tree": blob, "host": host, "worker": worker}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


#: a job's scratch directory older than this belongs to a worker that was killed mid-job: removed
STALE_SCRATCH = 24 * 3600.0


def _job_scratch() -> Path:
    root = cache_root() / "jobs"
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        with contextlib.suppress(OSError):
            if time.time() - old.stat().st_mtime > STALE_SCRATCH:
                shutil.rmtree(old, ignore_errors=True)
    return root


def _kernels_present(keys: list[str]) -> dict[str, bool]:
    return {k: has_kernel(k) for k in keys}


# --------------------------------------------------------------------------- dask

@dataclass
class Dask(Executor):
    """Tasks on dask.distributed workers; `connect` yields a Client and closes it and its cluster after."""

    connect: Callable[[], contextlib.AbstractContextManager[Any]]
    name: str = "dask"
    #: (worker, key) pairs already sent: a worker that still reports the key missing is an error
    _pushed: set[tuple[str, str]] = field(default_factory=set)

    def run(self, fn: JobFn, tasks: list[Task], kernels: dict[str, Path], staging: Path,
            deliver: Deliver, progress: Callable[[str], None]) -> None:
        from distributed import as_completed

        if not logging.getLogger().isEnabledFor(logging.DEBUG):
            # dask's scheduler logs every worker and client coming and going (set on its import)
            logging.getLogger("distributed").setLevel(logging.WARNING)
        with self.connect() as client:
            workers = list(client.scheduler_info()["workers"])
            progress(f"dask: {len(workers)} workers at {client.scheduler.address}")
            self._ship(client, kernels, workers, progress)
            digest = harness_digest()
            bundles: dict[str, dict[str, bytes]] = {}
            by_key: dict[str, Task] = {}

            def submit(t: Task, attempt: int) -> Any:
                key = f"job-{t.job_id}-{attempt}"
                by_key[key] = t
                # plan order as priority: interleaved repetitions start in the order they were planned
                return client.submit(remote_job, fn, t.payload, t.kernel_key, digest, t.dir, key=key,
                                     pure=False, retries=JOB_ATTEMPTS - 1, priority=-t.order)

            pending = {f.key: f for f in (submit(t, 0) for t in tasks)}
            futures = as_completed(list(pending.values()))
            resubmits: dict[str, int] = {}
            try:
                for fut in futures:
                    t = by_key[fut.key]
                    pending.pop(fut.key, None)
                    try:
                        res = fut.result()
                    except Exception as exc:  # noqa: BLE001 (KilledWorker, a task that raised JOB_ATTEMPTS times)
                        deliver(Delivery(t, error=_lost(exc)))
                        continue
                    finally:
                        fut.release()
                    if "kernel_missing" in res:
                        # a worker that joined after the start: send it the kernel, run the job again
                        w = res["worker"]
                        if (w, t.kernel_key) in self._pushed or resubmits.get(t.job_id, 0) >= JOB_ATTEMPTS:
                            deliver(Delivery(t, error=f"worker {w} still lacks kernel {t.kernel_key[:12]} after "
                                                      "it was sent", host=res["host"], worker=w))
                            continue
                        bundle = bundles.setdefault(t.kernel_key, kernel_bundle(kernels[t.kernel_key]))
                        client.run(install_kernel, t.kernel_key, bundle, workers=[w])
                        self._pushed.add((w, t.kernel_key))
                        resubmits[t.job_id] = resubmits.get(t.job_id, 0) + 1
                        again = submit(t, resubmits[t.job_id])
                        pending[again.key] = again
                        futures.add(again)
                        continue
                    if "error" in res:
                        deliver(Delivery(t, error=res["error"], host=res["host"], worker=res["worker"]))
                        continue
                    staged = None
                    if res["tree"] is not None:
                        staged = staging / t.job_id / t.dir
                        shutil.rmtree(staged.parent, ignore_errors=True)
                        unpack_dir(res["tree"], staged)
                    deliver(Delivery(t, res["outcome"], staged, host=res["host"], worker=res["worker"]))
            finally:
                # an error or Ctrl-C here: no job keeps running for a client that is gone
                if pending:
                    client.cancel(list(pending.values()), force=True)

    def _ship(self, client: Any, kernels: dict[str, Path], workers: list[str],
              progress: Callable[[str], None]) -> None:
        """Send each kernel to the workers whose cache lacks its key, once."""
        keys = sorted(kernels)
        present: dict[str, dict[str, bool]] = client.run(_kernels_present, keys)
        for key in keys:
            missing = [w for w in workers if not present.get(w, {}).get(key, False)]
            if not missing:
                continue
            bundle = kernel_bundle(kernels[key])
            size = sum(len(b) for b in bundle.values())
            progress(f"dask: sending kernel {key[:12]} ({size >> 10} KiB) to {len(missing)} worker(s)")
            client.run(install_kernel, key, bundle, workers=missing)
            self._pushed.update((w, key) for w in missing)


def _lost(exc: BaseException) -> str:
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        return (f"the job's worker died under it {JOB_ATTEMPTS} times (dask KilledWorker: {exc}); "
                "`harness run --resume RUN` runs it again")
    return f"{type(exc).__name__}: {exc}"[:4000]


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    """Dask's own config for our clusters: bounded retries of a dead worker's task, no dashboard."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": JOB_ATTEMPTS - 1,
                          "distributed.worker.daemon": False}):
        yield


@contextlib.contextmanager
def _local_client(n: int) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    with _quiet_dask():
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               memory_limit=0, silence_logs=logging.WARNING)
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()


@contextlib.contextmanager
def _scheduler_client(address: str) -> Iterator[Any]:
    from distributed import Client

    try:
        client = Client(address, timeout=30)
    except OSError as exc:
        raise InfraError(f"--scheduler {address}: cannot connect ({exc}); is `dask scheduler` running there "
                         "and the port open?") from exc
    try:
        _wait_for_workers(client, f"--scheduler {address}",
                          f"start workers with `dask worker {address} --nthreads 1` after `bash ci/setup.sh`")
        yield client
    finally:
        client.close()


def ssh_cluster_options(hosts: tuple[str, ...], per_host: int, python: str) -> dict[str, Any]:
    """SSHCluster's arguments: the scheduler on the first host, per_host one-thread workers on every host."""
    return {"hosts": [hosts[0], *hosts], "remote_python": python,
            "worker_options": {"nthreads": 1, "n_workers": per_host, "memory_limit": 0},
            "scheduler_options": {"port": 0, "dashboard_address": ":0",
                                  "allowed_failures": JOB_ATTEMPTS - 1}}


@contextlib.contextmanager
def _ssh_client(hosts: tuple[str, ...], per_host: int) -> Iterator[Any]:
    from distributed import Client, SSHCluster

    # the workers' python: the same venv path as ours (same checkout path and user on every host)
    python = os.environ.get("REGION_HARNESS_REMOTE_PYTHON", sys.executable)
    try:
        cluster = SSHCluster(**ssh_cluster_options(hosts, per_host, python))
    except Exception as exc:  # noqa: BLE001 (asyncssh and dask raise many kinds; all mean "could not start")
        raise InfraError(f"--ssh-hosts {','.join(hosts)}: cannot start the cluster ({type(exc).__name__}: {exc}); "
                         f"check `ssh {hosts[0]} {python} -c 'import harness'` works without a password") from exc
    try:
        with Client(cluster) as client:
            _wait_for_workers(client, f"--ssh-hosts {','.join(hosts)}", "see the workers' logs above")
            yield client
    finally:
        cluster.close()


def _wait_for_workers(client: Any, what: str, hint: str) -> None:
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT)
    except TimeoutError:
        raise InfraError(f"{what}: no worker connected within {WORKER_WAIT:.0f} s; {hint}") from None


def _make_sequential(opts: ExecOptions) -> Executor:
    return Sequential()


def _make_local(opts: ExecOptions) -> Executor:
    n = opts.parallel or 1
    return Dask(lambda: _local_client(n), name=f"local:{n}")


def _make_scheduler(opts: ExecOptions) -> Executor:
    address = opts.scheduler or ""
    return Dask(lambda: _scheduler_client(address), name=f"scheduler:{address}")


def _make_ssh(opts: ExecOptions) -> Executor:
    hosts, per_host = opts.ssh_hosts, opts.parallel or 1
    return Dask(lambda: _ssh_client(hosts, per_host), name=f"ssh:{','.join(hosts)}")


#: the one registry of executors: ExecOptions.kind -> factory
EXECUTORS: dict[str, Callable[[ExecOptions], Executor]] = {
    "sequential": _make_sequential,
    "local": _make_local,
    "scheduler": _make_scheduler,
    "ssh": _make_ssh,
}


def make(opts: ExecOptions) -> Executor:
    validate(opts)
    return EXECUTORS[opts.kind](opts)

