"""Resolve the kernel source: Debian's linux-source tarball, a local tarball, or a local tree.

A tarball is extracted once into <cache>/src/linux-<version>[-<sha>]/ (extract into a
temp dir, then rename, so a killed extraction never looks complete). A local tree is
only ever read: builds go to O= dirs in the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import SourceError
from harness.fs import disk_full_is_infra, raise_if_disk_full, write_json
from harness.fs import read_json_state as read_json
from harness.paths import cache_root

log = logging.getLogger(__name__)

DEBIAN_PACKAGE = "linux-source-6.12"
DEBIAN_TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")


@dataclass(frozen=True)
class KernelSource:
    """A pristine kernel source tree and what identifies it in cache keys."""

    kind: str  # "debian", "tarball" or "tree"
    path: Path  # the pristine tree (never modified)
    version: str  # VERSION.PATCHLEVEL.SUBLEVEL from its Makefile
    package_version: str | None = None  # Debian package version, for kind "debian"
    tarball: Path | None = None
    tarball_sha256: str | None = None
    git_head: str | None = None  # for a git tree
    git_dirty: str | None = None  # sha256 of `git diff HEAD` when the tree has local edits
    extract_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def identity(self) -> str:
        """What goes into the cache key for this source (content, not location, where we can)."""
        if self.kind == "debian":
            return f"debian:{DEBIAN_PACKAGE}={self.package_version}:{self.version}"
        if self.kind == "tarball":
            return f"tarball:{self.tarball_sha256}:{self.version}"
        ident = f"tree:{self.path}:{self.version}"
        if self.git_head:
            ident += f":git={self.git_head}"
            if self.git_dirty:
                ident += f":dirty={self.git_dirty}"
        return ident

    @property
    def short_id(self) -> str:
        """A short stable tag for directory names of non-default sources."""
        return hashlib.sha256(self.identity.encode()).hexdigest()[:12]

    @property
    def is_default(self) -> bool:
        return self.kind == "debian"

    def describe(self) -> str:
        if self.kind == "debian":
            return f"Linux {self.version} (Debian {DEBIAN_PACKAGE} {self.package_version})"
        if self.kind == "tarball":
            return f"Linux {self.version} (tarball {self.tarball}, sha256 {(self.tarball_sha256 or '?')[:12]})"
        head = f" git {self.git_head[:12]}" if self.git_head else ""
        dirty = " +local edits" if self.git_dirty else ""
        return f"Linux {self.version} (tree {self.path}{head}{dirty})"


_MAKEFILE_VAR = re.compile(r"^(VERSION|PATCHLEVEL|SUBLEVEL)\s*=\s*(\d+)\s*$", re.M)


def read_version(tree: Path) -> str:
    """VERSION.PATCHLEVEL.SUBLEVEL from a kernel tree's top Makefile."""
    makefile = tree / "Makefile"
    try:
        head = makefile.read_text(errors="replace")[:2000]
    except OSError as exc:
        raise SourceError(f"{tree} is not a kernel tree: cannot read {makefile}: {exc}") from exc
    found = dict(_MAKEFILE_VAR.findall(head))
    if not {"VERSION", "PATCHLEVEL", "SUBLEVEL"} <= found.keys():
        raise SourceError(f"{makefile} has no VERSION/PATCHLEVEL/SUBLEVEL: not a kernel tree")
    return f"{found['VERSION']}.{found['PATCHLEVEL']}.{found['SUBLEVEL']}"


def debian_package_version() -> str | None:
    """Installed version of linux-source-6.12, or None when it is not installed."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", DEBIAN_PACKAGE],
            capture_output=True, text=True, check=False,
        )
    except FileNotFoundError:
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _file_sha256(path: Path) -> str:
    """sha256 of a (large) file, remembered per (path, size, mtime): hashing 150 MB costs ~0.5 s."""
    st = path.stat()
    memo_path = cache_root() / "src" / "tarball-hashes.json"
    memo = read_json(memo_path) or {}
    stamp = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    if stamp in memo:
        return memo[stamp]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    memo[stamp] = h.hexdigest()
    write_json(memo_path, memo)
    return memo[stamp]


def _extract(tarball: Path, dest_dir: Path, name_for) -> tuple[Path, float]:
    """Extract `tarball` into dest_dir/<name_for(version)> atomically; returns (tree, seconds).

    The tarball's top directory name does not matter (Debian's is linux-source-6.12):
    the tree is renamed after the version read from its own Makefile.
    """
    import time

    dest_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    log.info("extracting %s (once; about 20 s)", tarball)
    with disk_full_is_infra(f"extracting {tarball}", cache_root()):
        tmp = Path(tempfile.mkdtemp(dir=dest_dir, prefix=".extract-"))
        try:
            # Debian's tarball is xz in 62 blocks: xz >= 5.4 decompresses them in parallel
            unxz = ["-I", "xz -T0"] if tarball.name.endswith((".xz", ".txz")) else []
            proc = subprocess.run(["tar", *unxz, "-xf", str(tarball), "-C", str(tmp)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise_if_disk_full(proc.stderr, f"extracting {tarball}")
                raise SourceError(f"cannot extract {tarball}: {proc.stderr.strip()[-500:]}")
            tops = [p for p in tmp.iterdir() if p.is_dir()]
            if len(tops) != 1:
                raise SourceError(f"{tarball} should hold one top directory, found {len(tops)}")
            version = read_version(tops[0])
            final = dest_dir / name_for(version)
            if final.exists():
                # another process won the race: its tree is complete (it was renamed into place)
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.rename(tops[0], final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final, time.monotonic() - start


def resolve_source(spec: str | os.PathLike | None = None) -> KernelSource:
    """Find (and extract if needed) the kernel source named by `spec`.

    None: Debian's /usr/src/linux-source-6.12.tar.xz; a file: a local tarball;
    a directory: a local kernel tree, used read-only.
    """
    if spec is None:
        return _debian_source()
    path = Path(spec).expanduser()
    if not path.exists():
        raise SourceError(f"kernel source {path} does not exist (give a tarball or a kernel tree)")
    if path.is_dir():
        return _tree_source(path.resolve())
    return _tarball_source(path.resolve())


def _debian_source() -> KernelSource:
    pkg_version = debian_package_version()
    if not DEBIAN_TARBALL.exists() or pkg_version is None:
        raise SourceError(
            f"the default kernel source {DEBIAN_TARBALL} is missing: run the setup script "
            f"(ci/setup.sh) or `apt-get install {DEBIAN_PACKAGE}`, or pass a tarball or tree"
        )
    src_dir = cache_root() / "src"
    # Debian versions look like 6.12.117-1~deb12u1: the upstream part names the tree,
    # so an up-to-date extraction is found without opening the 150 MB tarball.
    upstream = pkg_version.split("-")[0]
    stamp_path = src_dir / "debian-extracted.json"
    stamps = read_json(stamp_path) or {}
    seconds = 0.0
    tree = src_dir / f"linux-{upstream}"
    known = stamps.get(pkg_version)
    if known and Path(known).is_dir():
        tree = Path(known)
    elif tree.is_dir() and read_version(tree) == upstream:
        # extracted by hand or by an older harness: adopt it
        stamps[pkg_version] = str(tree)
        write_json(stamp_path, stamps)
    else:
        tree, seconds = _extract(DEBIAN_TARBALL, src_dir, lambda v: f"linux-{v}")
        stamps[pkg_version] = str(tree)
        write_json(stamp_path, stamps)
    return KernelSource(kind="debian", path=tree, version=read_version(tree),
                        package_version=pkg_version, tarball=DEBIAN_TARBALL,
                        extract_seconds=seconds)


def _tarball_source(tarball: Path) -> KernelSource:
    sha = _file_sha256(tarball)
    src_dir = cache_root() / "src"
    # the sha suffix keeps a local tarball apart from Debian's tree of the same version
    found = sorted(src_dir.glob(f"linux-*-{sha[:12]}")) if src_dir.is_dir() else []
    seconds = 0.0
    if found:
        tree = found[0]
    else:
        tree, seconds = _extract(tarball, src_dir, lambda v: f"linux-{v}-{sha[:12]}")
    return KernelSource(kind="tarball", path=tree, version=read_version(tree),
                        tarball=tarball, tarball_sha256=sha, extract_seconds=seconds)


def _git(tree: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, check=False)


def _tree_source(tree: Path) -> KernelSource:
    version = read_version(tree)
    if not (tree / "Kconfig").exists():
        raise SourceError(f"{tree} has a Makefile but no Kconfig: not a kernel tree")
    head = dirty = None
    if (tree / ".git").exists():
        proc = _git(tree, "rev-parse", "HEAD")
        if proc.returncode == 0:
            head = proc.stdout.decode().strip()
            diff = _git(tree, "diff", "HEAD")
            if diff.returncode == 0 and diff.stdout:
                dirty = hashlib.sha256(diff.stdout).hexdigest()
    else:
        log.warning("%s is not a git tree: the build cache cannot see edits in it "
                    "(the key uses its path only)", tree)
    return KernelSource(kind="tree", path=tree, version=version, git_head=head, git_dirty=dirty)


def check_clean_for_o_build(tree: Path) -> None:
    """Kbuild refuses O= builds from a tree that has been configured in place: say so early."""
    if (tree / ".config").exists() or (tree / "include" / "config").is_dir():
        raise SourceError(
            f"{tree} has been configured in place (.config or include/config exists); the "
            f"harness builds it read-only with O=, which Kbuild refuses: run `make mrproper` there"
        )
