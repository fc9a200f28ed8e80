"""Build a kernel flavor (source + series + config fragments) into the content-addressed kernel cache.

Layout under the cache root (see cache.cache_root()):

    src/linux-<version>/          pristine trees (source.py)
    flavors/<flavor>/src          the source for the flavor, patched (patches.py): hard links to
                                  an extracted tarball (patching replaces files, never
                                  writes through a link), a copy of a developer's tree
    flavors/<flavor>/build        the O= build dir, kept so rebuilds are incremental
    kernels/<key>/                bzImage, .config, System.map, build.log, metadata.json
    kernels/prekeys/<prekey>      cheap inputs -> key, so a cache hit skips configure
    ccache/                       shared by all flavors (same relative paths in each)

The key is the sha256 of the source identity, the patch contents in order, the final
.config and the compiler; the final .config only exists after configure (a few
seconds, under the build lock), so a pre-key of the inputs that determine it maps
straight to the key on the next call.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as _dt
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from harness.errors import BuildError, ConfigError, HarnessError, InfraError, PatchError
from harness.fs import atomic_write, disk_full_is_infra, raise_if_disk_full, write_json
from harness.fs import read_json_state as read_json
from harness.kernel.cache import build_lock
from harness.kernel.config import Flavor, configure, configure_commands, load_flavor
from harness.kernel.patches import Patch, parse_series, patches_digest, sync_series
from harness.kernel.source import KernelSource, check_clean_for_o_build, resolve_source
from harness.paths import PATCHES_DIR, cache_root
from harness.table import render_table

log = logging.getLogger(__name__)

#: bump when the key recipe or the artifact layout changes
SCHEMA = 1
#: the compiler through ccache: the same command line in every flavor dir keeps .cmd files stable
CC = "ccache gcc"
TARGET = "bzImage"
PROGRESS_EVERY = 10.0
_PR_SET_PDEATHSIG = 1  # seconds between "N objects compiled" lines

Progress = Callable[[str], None]


@dataclass
class PatchStep:
    """One row of the --each-patch table: the series up to and including `patch`."""

    patch: str
    applied: bool = False
    built: bool = False
    seconds: float = 0.0
    cached: bool = False
    key: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class BuildMetadata:
    """kernels/<key>/metadata.json: what was built from what, how long it took, how to redo it."""

    key: str
    flavor: str
    description: str
    kernel_version: str
    package_version: str | None
    source: dict[str, str]
    patches: list[dict[str, str]]
    fragments: list[dict[str, str]]
    compiler: str
    toolchain: str
    target: str
    jobs: int
    durations: dict[str, float]
    bzimage_size: int
    ccache: dict[str, int]
    reproducer: list[str]
    reproducer_harness: str
    started: str
    finished: str
    schema: int = SCHEMA

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> BuildMetadata | None:
        """The metadata of a cache entry, or None when it is from another schema or damaged."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            return None
        try:
            return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
        except TypeError:
            return None


@dataclass
class BuildResult:
    """A built (or cached) kernel: its artifacts and metadata."""

    flavor: str
    key: str
    directory: Path
    metadata: BuildMetadata
    cached: bool
    steps: list[PatchStep] | None = None  # only for each_patch builds

    @property
    def bzimage(self) -> Path:
        return self.directory / "bzImage"

    @property
    def config_path(self) -> Path:
        return self.directory / ".config"

    @property
    def system_map(self) -> Path:
        return self.directory / "System.map"

    @property
    def log_path(self) -> Path:
        return self.directory / "build.log"


# --------------------------------------------------------------------------- keys

def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return f"{cmd[0]}: not found"
    return out.splitlines()[0].strip() if out else ""


def compiler_version() -> str:
    """`gcc --version` first line: part of the cache key (a new gcc makes a different kernel)."""
    return _first_line(["gcc", "--version"])


def toolchain_id() -> str:
    """Compiler and linker: everything on the host that changes olddefconfig's output for us."""
    return f"{compiler_version()} | {_first_line(['ld', '--version'])}"


def cache_key(source_identity: str, patch_contents: list[bytes], config_text: str, compiler: str) -> str:
    """sha256 of what determines the kernel image: source, patch bytes in order, final .config, compiler."""
    recipe = {
        "schema": SCHEMA,
        "source": source_identity,
        "patches": [hashlib.sha256(c).hexdigest() for c in patch_contents],
        "config": hashlib.sha256(config_text.encode()).hexdigest(),
        "compiler": compiler,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def pre_key(source_identity: str, fragments: list[Path] | tuple[Path, ...], patch_contents: list[bytes],
            toolchain: str) -> str:
    """sha256 of the inputs that determine the final .config and the key; no configure needed."""
    recipe = {
        "schema": SCHEMA,
        "source": source_identity,
        # content, not names: editing a fragment must miss, renaming it needn't
        "fragments": [hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in fragments],
        "patches": [hashlib.sha256(c).hexdigest() for c in patch_contents],
        "toolchain": toolchain,
        "make": [CC, TARGET],
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def config_key(source_identity: str, fragments: list[Path] | tuple[Path, ...], patches: list[Patch],
               toolchain: str) -> str:
    """sha256 of what determines the final .config: configure takes ~12 s, so its output is memoized.

    Only patches that touch a Kconfig file can change the .config; the others (the
    usual edit-rebuild loop on mm/page_alloc.c) reuse it without running configure.
    """
    kconfig_patches = [p.sha256 for p in patches
                       if any(Path(f).name.startswith("Kconfig") for f in p.touched_files())]
    recipe = {
        "schema": SCHEMA,
        "source": source_identity,
        "fragments": [hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in fragments],
        "kconfig_patches": kconfig_patches,
        "toolchain": toolchain,
        "make": [CC],
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------- helpers

def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _default_progress(msg: str) -> None:
    log.info("%s", msg)


def error_excerpt(log_text: str, context: int = 2, max_lines: int = 40) -> str:
    """The last compiler errors of a build log ("error:" lines with a few lines around them)."""
    lines = log_text.splitlines()
    hits = [i for i, line in enumerate(lines) if "error:" in line or re.search(r"\*\*\* .*Error \d+", line)]
    if not hits:
        return "\n".join(lines[-25:])
    keep: list[int] = []
    for i in hits:
        for j in range(max(0, i - context), min(len(lines), i + context + 2)):
            if j not in keep:
                keep.append(j)
    keep.sort()
    out, prev = [], None
    for j in keep[-max_lines:]:
        if prev is not None and j != prev + 1:
            out.append("...")
        out.append(lines[j])
        prev = j
    return "\n".join(out)


def _ccache_stats(env: dict) -> dict[str, int]:
    """Hit/miss counters of ccache (best effort; diffed around a build for the metadata)."""
    try:
        out = subprocess.run(["ccache", "--print-stats"], env=env, capture_output=True,
                             text=True, check=False).stdout
    except FileNotFoundError:
        return {}
    stats = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[1].strip().isdigit():
            stats[parts[0]] = int(parts[1])
    return stats


@dataclass
class _Context:
    """Everything one build() call works with."""

    flavor: Flavor
    source: KernelSource
    patches: list[Patch]
    jobs: int
    progress: Progress
    root: Path
    workdir: Path
    srctree: Path
    builddir: Path
    env: dict
    toolchain: str
    compiler: str
    durations: dict = field(default_factory=dict)
    lock_wait: float = 0.0
    #: the build lock's descriptor while it is held (handed to make, see build_lock)
    lock_fd: int | None = None

    @property
    def make_vars(self) -> list[str]:
        return [f"CC={CC}"]


def _workdir(root: Path, flavor: Flavor, source: KernelSource) -> Path:
    # Debian's tree keeps the plain name (the layout set up by hand); another source
    # gets its own dirs so switching sources does not throw away the incremental build
    name = flavor.name if source.is_default else f"{flavor.name}@{source.short_id}"
    return root / "flavors" / name


def _prepare_tree(ctx: _Context) -> None:
    """Make <workdir>/src a full tree of the pristine source (done once per source).

    A tree the harness extracted is linked, not copied (`cp -al`: seconds instead of
    writing 1.7 GB again per flavor). That is safe because nothing writes into a
    flavor tree in place: kbuild writes only under O=, and sync_series replaces a
    patched file by rename. A developer's own tree is copied, never linked.
    """
    if ctx.srctree == ctx.source.path:
        check_clean_for_o_build(ctx.srctree)
        return
    state_path = ctx.workdir / "src-state.json"
    state = read_json(state_path) or {}
    src = ctx.srctree
    if src.is_dir() and state.get("source") == ctx.source.identity:
        return
    if src.is_dir() and not state and ctx.source.is_default and (src / "Makefile").exists():
        from harness.kernel.source import read_version
        if read_version(src) == ctx.source.version:
            # the copy made by hand before the harness existed: adopt it as pristine
            write_json(state_path, {"source": ctx.source.identity, "adopted": True})
            return
    how = "copy" if ctx.source.kind == "tree" else "link"
    ctx.progress(f"{how}: {ctx.source.path} -> {src} (once per flavor and source)")
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=ctx.workdir, prefix=".src-"))
    try:
        if ctx.source.kind == "tree":
            # a developer's tree: leave .git behind, it is large and not part of the build
            cmd = (f"tar -C {shlex.quote(str(ctx.source.path))} --exclude=.git -cf - . "
                   f"| tar -C {shlex.quote(str(tmp))} -xf -")
            proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True)
        else:
            proc = subprocess.run(["cp", "-al", f"{ctx.source.path}/.", str(tmp)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise_if_disk_full(proc.stderr, f"copying the source to {tmp}")
            raise InfraError(f"copying the source to {tmp} failed: {proc.stderr.strip()[-500:]}")
        if src.exists():
            old = ctx.workdir / f".src-old-{os.getpid()}"
            os.rename(src, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, src)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # a fresh copy is pristine: forget what an older series touched
    (ctx.workdir / "patch-state.json").unlink(missing_ok=True)
    write_json(state_path, {"source": ctx.source.identity})


def _run_make(ctx: _Context, log_fh, patches_count: int) -> None:
    """make bzImage, teeing output to the log and reporting the compiled-object count every ~10 s."""
    cmd = ["make", "-C", str(ctx.srctree), f"O={ctx.builddir}", f"-j{ctx.jobs}", *ctx.make_vars, TARGET]
    log_fh.write(f"$ {' '.join(shlex.quote(c) for c in cmd)}\n")
    log_fh.flush()
    # make leads its own process group (killed as one), dies with the harness (PDEATHSIG,
    # re-checked against a parent that died before prctl ran), and holds the build lock's
    # descriptor so the lock is only free once every compiler child has exited
    parent = os.getpid()
    proc = subprocess.Popen(cmd, cwd=ctx.workdir, env=ctx.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1,
                            start_new_session=True, pass_fds=() if ctx.lock_fd is None else (ctx.lock_fd,),
                            preexec_fn=lambda: _die_with(parent))
    count = [0]
    compiled = re.compile(r"^\s+(CC|AS)\s")

    out = proc.stdout
    assert out is not None  # stdout=PIPE

    def reader() -> None:
        for line in out:
            log_fh.write(line)
            if compiled.match(line):
                count[0] += 1

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    start = time.monotonic()
    try:
        while True:
            try:
                proc.wait(timeout=PROGRESS_EVERY)
                break
            except subprocess.TimeoutExpired:
                ctx.progress(f"build: {count[0]} objects compiled, {time.monotonic() - start:.0f} s")
    except BaseException:
        # interrupted (Ctrl-C, SIGTERM): stop make and every compiler it started
        _kill_group(proc)
        raise
    finally:
        t.join(timeout=30)
        log_fh.flush()
    if proc.returncode != 0:
        log_fh.close()
        text = Path(log_fh.name).read_text(errors="replace")
        # the next build overwrites build/build.log: keep the failed one where the error points
        failed = ctx.workdir / "failed-build.log"
        shutil.copyfile(log_fh.name, failed)
        raise_if_disk_full(text, f"the kernel build, see {failed}")
        raise BuildError(f"make {TARGET} failed for flavor {ctx.flavor.name} ({ctx.source.describe()}, "
                         f"{patches_count} patch(es)) with exit code {proc.returncode}",
                         log_path=str(failed), excerpt=error_excerpt(text))
    ctx.progress(f"build: done, {count[0]} objects compiled in {time.monotonic() - start:.0f} s")


def _die_with(parent: int) -> None:
    """In the forked child before exec: SIGKILL when the harness dies, even if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:  # the parent died between fork and prctl
        os._exit(1)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _ccache_env(root: Path, workdir: Path) -> dict[str, str]:
    """ccache settings for one flavor dir.

    BASEDIR + NOHASHDIR make objects of different flavor dirs share cache entries.
    DEPEND: kbuild compiles with -Wp,-MMD, so ccache can take the include list from the
    compiler's own dependency file instead of running the preprocessor a second time on
    every miss; the make of a cold build takes 28 % less (BENCHMARKS.md). Hits come from
    direct mode either way.
    """
    return {"CCACHE_DIR": str(root / "ccache"), "CCACHE_BASEDIR": str(workdir),
            "CCACHE_NOHASHDIR": "1", "CCACHE_DEPEND": "1"}


def _reproducer(ctx: _Context) -> list[str]:
    q = shlex.quote
    env = " ".join(f"{k}={q(v)}" for k, v in _ccache_env(ctx.root, ctx.workdir).items())
    cmds = [f"cd {q(str(ctx.workdir))}"]
    cmds += [" ".join(q(c) for c in cmd)
             for cmd in configure_commands(ctx.srctree, ctx.builddir, ctx.flavor.fragments, ctx.make_vars)]
    cmds.append(f"flock {q(str(ctx.root / 'build.lock'))} env {env} make -C {q(str(ctx.srctree))} "
                f"O={q(str(ctx.builddir))} -j{ctx.jobs} {q('CC=' + CC)} {TARGET}")
    return cmds


def _lookup(root: Path, key: str) -> BuildMetadata | None:
    meta = BuildMetadata.from_json(read_json(root / "kernels" / key / "metadata.json"))
    return meta if meta and meta.key == key else None


def cached_build(key: str) -> BuildResult | None:
    """The cache entry kernels/<key> as a BuildResult, or None when it is absent or damaged."""
    root = cache_root()
    meta = _lookup(root, key)
    return BuildResult(meta.flavor, key, root / "kernels" / key, meta, cached=True) if meta else None


def _store(ctx: _Context, key: str, patches: list[Patch], log_path: Path, started: str,
           t0: float, ccache: dict, force: bool = False) -> BuildResult:
    """Copy the artifacts into kernels/<key>/ through a temp dir + rename (never half an entry)."""
    kernels = ctx.root / "kernels"
    kernels.mkdir(parents=True, exist_ok=True)
    final = kernels / key
    tmp = Path(tempfile.mkdtemp(dir=kernels, prefix=f".tmp-{key[:12]}-"))
    try:
        shutil.copy2(ctx.builddir / "arch/x86/boot/bzImage", tmp / "bzImage")
        shutil.copy2(ctx.builddir / ".config", tmp / ".config")
        shutil.copy2(ctx.builddir / "System.map", tmp / "System.map")
        shutil.copy2(log_path, tmp / "build.log")
        ctx.durations["total"] = round(time.monotonic() - t0, 3)
        meta = BuildMetadata(
            key=key,
            flavor=ctx.flavor.name,
            description=ctx.flavor.description,
            kernel_version=ctx.source.version,
            package_version=ctx.source.package_version,
            source={"kind": ctx.source.kind, "identity": ctx.source.identity,
                    "path": str(ctx.source.path), "description": ctx.source.describe()},
            patches=patches_digest(patches),
            fragments=[{"name": Path(f).name, "sha256": hashlib.sha256(Path(f).read_bytes()).hexdigest()}
                       for f in ctx.flavor.fragments],
            compiler=ctx.compiler,
            toolchain=ctx.toolchain,
            target=TARGET,
            jobs=ctx.jobs,
            durations={k: round(v, 3) for k, v in ctx.durations.items()},
            bzimage_size=(tmp / "bzImage").stat().st_size,
            ccache=ccache,
            reproducer=_reproducer(ctx),
            reproducer_harness=f"python -c 'from harness.kernel import build; build({ctx.flavor.name!r})'",
            started=started,
            finished=_now(),
        )
        write_json(tmp / "metadata.json", meta.to_json())
        if final.exists() and force:
            # --force replaces the entry; move it aside first (rename cannot replace a dir)
            trash = kernels / f".old-{key[:12]}-{os.getpid()}"
            os.rename(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "metadata.json").exists():
                raise
            # an identical build finished first: keep its entry
            meta = BuildMetadata.from_json(read_json(final / "metadata.json")) or meta
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return BuildResult(flavor=ctx.flavor.name, key=key, directory=final, metadata=meta, cached=False)


def _configure_memo(ctx: _Context, patches: list[Patch], log_fh) -> str:
    """Configure, unless the build dir already holds the .config these inputs produced last time."""
    key = config_key(ctx.source.identity, ctx.flavor.fragments, patches, ctx.toolchain)
    memo = ctx.root / "configs" / f"{key}.config"
    current = ctx.builddir / ".config"
    if memo.exists() and current.exists() and memo.read_bytes() == current.read_bytes():
        ctx.progress("configure: unchanged inputs, .config already in place (verified when made)")
        log_fh.write(f"# configure skipped: {current} equals {memo}\n")
        return current.read_text()
    ctx.progress(f"configure: tinyconfig + {', '.join(Path(f).name for f in ctx.flavor.fragments)}")
    text = configure(ctx.srctree, ctx.builddir, ctx.flavor.fragments, ctx.make_vars, ctx.env, log_file=log_fh,
                     partial_series=len(patches) < len(ctx.patches))
    # saved only after verify_config passed inside configure()
    atomic_write(memo, text)
    return text


def _build_once(ctx: _Context, patches: list[Patch], t0: float, force: bool = False) -> BuildResult:
    """Sync the series, configure, look the key up, and make on a miss. Caller holds the lock."""
    started = _now()
    ctx.durations = {"extract": ctx.source.extract_seconds, "lock_wait": ctx.lock_wait}
    log_path = ctx.builddir / "build.log"
    with disk_full_is_infra(f"building flavor {ctx.flavor.name}", cache_root()):
        t = time.monotonic()
        _prepare_tree(ctx)
        if ctx.flavor.patches:
            res = sync_series(patches, ctx.source.path, ctx.srctree, ctx.source.describe(), ctx.workdir)
            ctx.progress(f"patch: {len(patches)} patch(es), {len(res['changed'])} file(s) changed")
        elif ctx.srctree != ctx.source.path and (ctx.workdir / "patch-state.json").exists():
            # the flavor used to be patched: restore the pristine files
            sync_series([], ctx.source.path, ctx.srctree, ctx.source.describe(), ctx.workdir)
        ctx.durations["patch"] = time.monotonic() - t

        t = time.monotonic()
        ctx.builddir.mkdir(parents=True, exist_ok=True)
        # line-buffered: people tail -f this log while make runs
        with open(log_path, "w", buffering=1) as log_fh:
            config_text = _configure_memo(ctx, patches, log_fh)
            ctx.durations["configure"] = time.monotonic() - t
            key = cache_key(ctx.source.identity, [p.content for p in patches], config_text, ctx.compiler)
            meta = None if force else _lookup(ctx.root, key)
            if meta is not None:
                ctx.progress(f"cache hit after configure: kernels/{key[:16]}")
                return BuildResult(ctx.flavor.name, key, ctx.root / "kernels" / key, meta, cached=True)
            ctx.progress(f"build: make -j{ctx.jobs} {TARGET} in {ctx.builddir}")
            t = time.monotonic()
            before = _ccache_stats(ctx.env)
            _run_make(ctx, log_fh, len(patches))
            after = _ccache_stats(ctx.env)
            ctx.durations["build"] = time.monotonic() - t
        ccache = {k: after[k] - before.get(k, 0) for k in
                  ("direct_cache_hit", "preprocessed_cache_hit", "cache_miss") if k in after}
        return _store(ctx, key, patches, log_path, started, t0, ccache, force)


def _remember_prekey(root: Path, prekey: str, key: str) -> None:
    write_json(root / "kernels" / "prekeys" / f"{prekey}.json", {"key": key})


def _prekey_hit(root: Path, prekey: str) -> tuple[str, BuildMetadata] | None:
    entry = read_json(root / "kernels" / "prekeys" / f"{prekey}.json")
    if not entry:
        return None
    meta = _lookup(root, entry.get("key", ""))
    return (entry["key"], meta) if meta else None


def format_steps(steps: list[PatchStep]) -> str:
    """The --each-patch table as text."""
    rows = [("patch", "applied", "built", "seconds")]
    for s in steps:
        built = ("yes (cached)" if s.cached else "yes") if s.built else "no"
        rows.append((s.patch, "yes" if s.applied else "no", built, f"{s.seconds:.1f}"))
    return render_table(rows)


def build(flavor: str | Path | Flavor, source: str | os.PathLike | KernelSource | None = None,
          jobs: int | None = None, each_patch: bool = False, progress: Progress | None = None,
          *, patches_dir: Path | None = None, flavors_dir: Path | None = None,
          force: bool = False) -> BuildResult:
    """Build `flavor` (a name from qemu-configs/kernel/, a .yaml path or a Flavor) and return its artifacts.

    source: None (Debian's linux-source-6.12), a tarball path, a kernel tree, or a KernelSource.
    each_patch: build after every patch of the series in turn; the result is the last
    build and .steps holds the (patch, applied, built, seconds) table; if a step fails,
    the error raised carries the table (and `.steps`).
    force: ignore the pre-key and the kernel cache, always run make.
    Raises ConfigError/PatchError/SourceError (bad input), BuildError/InfraError (infrastructure).
    """
    t0 = time.monotonic()
    progress = progress or _default_progress
    root = cache_root()
    fl = flavor if isinstance(flavor, Flavor) else load_flavor(flavor, flavors_dir)
    src = source if isinstance(source, KernelSource) else resolve_source(source)
    progress(f"source: {src.describe()} at {src.path}")
    patches = parse_series(patches_dir) if fl.patches else []
    if fl.patches and not patches:
        log.warning("flavor %s applies the series, but %s is empty: building the pristine source",
                    fl.name, Path(patches_dir or PATCHES_DIR) / "series")
    workdir = _workdir(root, fl, src)
    unpatched_tree = src.kind == "tree" and not fl.patches
    srctree = src.path if unpatched_tree else workdir / "src"
    env = dict(os.environ)
    env.update(_ccache_env(root, workdir))
    toolchain = toolchain_id()
    ctx = _Context(flavor=fl, source=src, patches=patches, jobs=jobs or os.cpu_count() or 1,
                   progress=progress, root=root, workdir=workdir, srctree=srctree,
                   builddir=workdir / "build", env=env, toolchain=toolchain,
                   compiler=toolchain.split(" | ")[0])
    if each_patch and patches:
        return _build_each_patch(ctx, t0, force)

    pk = pre_key(src.identity, fl.fragments, [p.content for p in patches], toolchain)
    hit = None if force else _prekey_hit(root, pk)
    if hit:
        key, meta = hit
        progress(f"cache hit: kernels/{key[:16]} ({time.monotonic() - t0:.2f} s)")
        return BuildResult(fl.name, key, root / "kernels" / key, meta, cached=True)
    t_lock = time.monotonic()
    with build_lock(root) as ctx.lock_fd:
        ctx.lock_wait = time.monotonic() - t_lock
        result = _build_once(ctx, patches, t0, force)
    _remember_prekey(root, pk, result.key)
    progress(f"done: {result.bzimage} ({'cached' if result.cached else 'built'}, "
             f"{time.monotonic() - t0:.1f} s)")
    return result


@contextlib.contextmanager
def patched_tree(flavor: str | Path | Flavor, source: str | os.PathLike | KernelSource | None = None,
                 *, patches_dir: Path | None = None, flavors_dir: Path | None = None) -> Iterator[Path]:
    """The flavor's source tree with its series applied, under the build lock while the caller reads it.

    What `build` compiles, for other builds from the same source (the kernel's
    selftests): the tree is synced to the current series even when the kernel itself
    was a cache hit. Only read it; the lock keeps a kernel build from changing it meanwhile.
    """
    root = cache_root()
    fl = flavor if isinstance(flavor, Flavor) else load_flavor(flavor, flavors_dir)
    src = source if isinstance(source, KernelSource) else resolve_source(source)
    patches = parse_series(patches_dir) if fl.patches else []
    workdir = _workdir(root, fl, src)
    srctree = src.path if src.kind == "tree" and not fl.patches else workdir / "src"
    ctx = _Context(flavor=fl, source=src, patches=patches, jobs=1, progress=_default_progress, root=root,
                   workdir=workdir, srctree=srctree, builddir=workdir / "build", env={}, toolchain="",
                   compiler="")
    with build_lock(root), disk_full_is_infra(f"syncing the source of flavor {fl.name}", root):
        _prepare_tree(ctx)
        if fl.patches or (srctree != src.path and (workdir / "patch-state.json").exists()):
            sync_series(patches, src.path, srctree, src.describe(), workdir)
        yield srctree


def _build_each_patch(ctx: _Context, t0: float, force: bool) -> BuildResult:
    """Build after patch 1, then 1-2, ... (bisectability check); one lock hold per step."""
    steps: list[PatchStep] = []
    last: BuildResult | None = None
    first_error: HarnessError | None = None
    for k, patch in enumerate(ctx.patches, 1):
        step = PatchStep(patch=patch.name)
        steps.append(step)
        prefix = ctx.patches[:k]
        ctx.progress(f"each-patch: step {k}/{len(ctx.patches)}: up to {patch.name}")
        ts = time.monotonic()
        pk = pre_key(ctx.source.identity, ctx.flavor.fragments, [p.content for p in prefix], ctx.toolchain)
        ctx.lock_wait = 0.0
        try:
            hit = None if force else _prekey_hit(ctx.root, pk)
            if hit:
                res = BuildResult(ctx.flavor.name, hit[0], ctx.root / "kernels" / hit[0], hit[1], cached=True)
            else:
                t_lock = time.monotonic()
                with build_lock(ctx.root) as ctx.lock_fd:
                    ctx.lock_wait = time.monotonic() - t_lock
                    res = _build_once(ctx, prefix, ts, force)
                _remember_prekey(ctx.root, pk, res.key)
            step.applied = step.built = True
            step.cached, step.key = res.cached, res.key
            last = res
        except PatchError as exc:
            step.error = str(exc)
            first_error = first_error or exc
            step.seconds = time.monotonic() - ts - ctx.lock_wait
            break  # every later step contains this patch too
        except (BuildError, ConfigError) as exc:
            step.applied = True
            step.error = str(exc)
            first_error = first_error or exc
        # time spent waiting for someone else's build is not this step's cost
        step.seconds = time.monotonic() - ts - ctx.lock_wait
        ctx.lock_wait = 0.0
    for s in steps:
        ctx.progress(f"each-patch: {s.patch}: applied={s.applied} built={s.built} {s.seconds:.1f} s")
    table = format_steps(steps)
    if first_error is not None:
        if isinstance(first_error, BuildError):
            err: HarnessError = BuildError(f"the series is not bisectable: a step failed\n{table}\n\nfirst failure:\n"
                                           f"{first_error}", log_path=first_error.log_path)
        else:
            err = type(first_error)(f"{first_error}\n\n{table}")
        err.steps = steps  # type: ignore[attr-defined]
        raise err
    assert last is not None
    last.steps = steps
    return last
