"""Build the selftest programs from the source a kernel flavor is built from, cached.

The programs are static (glibc's and libnuma's .a, from ci/setup.sh), so the guest
image needs no libraries for them. They are compiled against the uapi headers of that
same tree (`make headers_install`), never the host's.

Cache: <cache>/selftests/<key>/ with bin/ (the programs under their
tools/testing/selftests paths, the scripts copied), build.log and metadata.json. The
key is the source identity, the patches of the series that touch what the build
reads (tools/, the uapi headers, ...), the compiler and the programs: a series that
changes only mm/ leaves it alone, so vanilla and regions share one build. The kernel
.config is not an input: the selftests' Makefiles do not read it (which tests can run
on a kernel is decided from its .config at run time, see suite.skip_reason).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from harness import kernel
from harness.errors import BuildError, InfraError
from harness.fs import disk_full_is_infra, raise_if_disk_full, write_json
from harness.kernel.build import error_excerpt, toolchain_id
from harness.paths import cache_root
from harness.selftests.suite import SELFTESTS, programs

log = logging.getLogger(__name__)

#: bump when the recipe or the layout of a cache entry changes
SCHEMA = 1
SELFTESTS_DIR = "tools/testing/selftests"
#: what the build copies out of the kernel tree (besides the installed uapi headers)
COPY = ("tools/include", "include/vdso", "mm/gup_test.h",
        f"{SELFTESTS_DIR}/lib.mk", f"{SELFTESTS_DIR}/kselftest", f"{SELFTESTS_DIR}/x86")
#: a patch touching a path with one of these prefixes changes the programs: it enters the key
INPUTS = ("tools/", "include/uapi/", "arch/x86/include/uapi/", "arch/x86/entry/syscalls/", "include/vdso/",
          "mm/gup_test.h", "scripts/", "Makefile")
#: static: the guest carries no libraries for them; -s: a third of the size to copy in
LDFLAGS = "-static -s"
#: static libraries some programs link beyond libc's, and the Debian package with them
STATIC_LIBS = {"mm/ksm_tests": ("libnuma.a", "libnuma-dev"), "mm/migration": ("libnuma.a", "libnuma-dev")}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SelftestBuild:
    key: str
    directory: Path
    cached: bool

    @property
    def bin(self) -> Path:
        return self.directory / "bin"

    def program(self, program: str) -> Path:
        return self.bin / program


def selftests_key(source_identity: str, patch_contents: Iterable[bytes], toolchain: str,
                  progs: Iterable[str]) -> str:
    h = hashlib.sha256()
    for part in (f"schema={SCHEMA}", source_identity, toolchain, *sorted(progs)):
        h.update(part.encode() + b"\0")
    for content in patch_contents:
        h.update(hashlib.sha256(content).digest())
    return h.hexdigest()


def _relevant(patch: kernel.Patch) -> bool:
    return any(f.startswith(INPUTS) for f in patch.touched_files())


def check_static_libs(progs: Iterable[str]) -> None:
    """Every static library the programs link is there (gcc finds it), else say which package has it."""
    for prog in progs:
        lib, package = STATIC_LIBS.get(prog, (None, None))
        if lib is None:
            continue
        found = subprocess.run(["gcc", f"-print-file-name={lib}"], capture_output=True, text=True).stdout.strip()
        if found == lib:  # gcc prints the bare name when it has no such file
            raise InfraError(f"selftest {prog} links {lib}, which this machine lacks: run ci/setup.sh "
                             f"(it installs {package})")


def build_selftests(flavor: str, source: str | None = None, progress: Progress = log.info) -> SelftestBuild:
    """Every program of the registry built from `flavor`'s source (a cache hit when nothing they read changed).

    All of them, whatever --tests selects: a few seconds of make, and one cache entry per source.
    """
    progs = programs(SELFTESTS.values())
    fl = kernel.load_flavor(flavor)
    src = kernel.resolve_source(source)
    relevant = [p for p in (kernel.parse_series() if fl.patches else []) if _relevant(p)]
    key = selftests_key(src.identity, [p.content for p in relevant], toolchain_id(), progs)
    root = cache_root() / "selftests"
    entry = root / key
    if (entry / "metadata.json").is_file():
        progress(f"selftests: cache hit selftests/{key[:16]}")
        return SelftestBuild(key, entry, cached=True)
    check_static_libs(progs)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with disk_full_is_infra("building the selftests", root), \
            tempfile.TemporaryDirectory(dir=root, prefix=".build-") as tmp:
        work = Path(tmp)
        tree, out = work / "tree", work / "bin"
        # outside the temporary dir: a failed build's log stays for the error to point at
        log_path = root / "logs" / f"{key[:16]}.log"
        log_path.parent.mkdir(exist_ok=True)
        with open(log_path, "w", buffering=1) as log_fh:
            with kernel.patched_tree(flavor, src) as srctree:
                progress(f"selftests: uapi headers and sources from {srctree}")
                _run(["make", "-s", "-C", str(srctree), f"O={work / 'kbuild'}",
                     f"INSTALL_HDR_PATH={work / 'usr'}", "headers_install"], log_fh, log_path, "headers_install")
                dirs = {p.split("/", 1)[0] for p in progs}
                for rel in (*COPY, *(f"{SELFTESTS_DIR}/{d}" for d in sorted(dirs))):
                    _copy(srctree / rel, tree / rel)
                for h in (srctree / SELFTESTS_DIR).glob("*.h"):
                    _copy(h, tree / SELFTESTS_DIR / h.name)
            t_make = time.monotonic()
            for d in sorted(dirs):
                compiled = [p for p in progs if p.startswith(f"{d}/") and not p.endswith(".sh")]
                (out / d).mkdir(parents=True, exist_ok=True)
                if compiled:
                    progress(f"selftests: make {len(compiled)} program(s) in {SELFTESTS_DIR}/{d}")
                    _run(["make", "-C", str(tree / SELFTESTS_DIR / d), f"-j{os.cpu_count() or 1}",
                          f"OUTPUT={out / d}", f"KHDR_INCLUDES=-isystem {work / 'usr' / 'include'}",
                          f"LDFLAGS={LDFLAGS}", *(str(out / p) for p in compiled)], log_fh, log_path, d)
                for p in progs:
                    if p.startswith(f"{d}/") and p.endswith(".sh"):
                        shutil.copy2(tree / SELFTESTS_DIR / p, out / p)
        missing = [p for p in progs if not (out / p).is_file()]
        if missing:
            raise BuildError(f"selftests build made no {', '.join(missing)}", str(log_path),
                             error_excerpt(log_path.read_text(errors="replace")))
        final = work / "entry"
        final.mkdir()
        shutil.move(str(out), final / "bin")
        shutil.move(str(log_path), final / "build.log")
        write_json(final / "metadata.json", {
            "schema": SCHEMA, "key": key, "flavor": flavor, "source": src.identity,
            "patches": [{"name": p.name, "sha256": p.sha256} for p in relevant],
            "toolchain": toolchain_id(), "programs": list(progs), "ldflags": LDFLAGS,
            "seconds": round(time.monotonic() - t0, 1), "make_seconds": round(time.monotonic() - t_make, 1)})
        try:
            final.rename(entry)
        except OSError:
            if not (entry / "metadata.json").is_file():  # not another process's finished build
                raise
    progress(f"selftests: built selftests/{key[:16]} in {time.monotonic() - t0:.1f} s")
    return SelftestBuild(key, entry, cached=False)


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dst)


def _run(cmd: list[str], log_fh, log_path: Path, what: str) -> None:
    log_fh.write(f"$ {' '.join(cmd)}\n")
    proc = subprocess.run(cmd, stdout=log_fh, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        text = log_path.read_text(errors="replace")
        raise_if_disk_full(text, f"building the selftests ({what})")
        raise BuildError(f"selftests build failed in {what} (exit {proc.returncode})", str(log_path),
                         error_excerpt(text))
