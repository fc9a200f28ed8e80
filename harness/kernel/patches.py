"""Parse kernel-patches/series and apply the series to a flavor's source copy incrementally.

Applying never patches the flavor tree directly: the files the series touches are copied
from the pristine tree into a staging dir, patched there, and only files whose content
differs are written into the flavor tree. Unchanged files keep their mtimes, so make
rebuilds only what the series really changed (27 s after touching mm/page_alloc.c
instead of a full rebuild).
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import PatchError
from harness.fs import atomic_copy, disk_full_is_infra, write_json
from harness.fs import read_json_state as read_json
from harness.paths import PATCHES_DIR, cache_root

log = logging.getLogger(__name__)

STATE_FILE = "patch-state.json"


@dataclass(frozen=True)
class Patch:
    """One patch of the series, with its exact bytes (they go into the cache key)."""

    name: str
    path: Path
    content: bytes
    series_line: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def touched_files(self) -> list[str]:
        return touched_files(self.content)


def parse_series(patches_dir: Path | None = None) -> list[Patch]:
    """Read <patches_dir>/series (quilt style) into Patches, in order.

    One patch file name per line; `#` starts a comment; blank lines are skipped; a
    quilt option after the name (e.g. `-p1`) is ignored. A missing or empty series
    file is an empty series (the series is being written while the harness is used).
    """
    patches_dir = Path(patches_dir) if patches_dir else PATCHES_DIR
    series = patches_dir / "series"
    try:
        text = series.read_text()
    except FileNotFoundError:
        log.info("no %s: empty series", series)
        return []
    result = []
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name = line.split()[0]
        if name in seen:
            raise PatchError(f"{series}:{lineno}: {name} is listed twice (first on line {seen[name]})")
        seen[name] = lineno
        path = patches_dir / name
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            raise PatchError(f"{series}:{lineno}: patch {name!r} is listed but {path} does not exist") from None
        except OSError as exc:
            raise PatchError(f"{series}:{lineno}: cannot read patch {path}: {exc}") from exc
        result.append(Patch(name=name, path=path, content=content, series_line=lineno))
    return result


_DIFF_GIT = re.compile(rb"^diff --git a/(\S+) b/(\S+)$", re.M)
_PLUS_MINUS = re.compile(rb"^(?:---|\+\+\+) (\S+)", re.M)


def touched_files(content: bytes) -> list[str]:
    """Paths (relative to the tree, -p1 stripped) a patch creates, modifies, renames or deletes."""
    paths: list[str] = []
    for m in _DIFF_GIT.finditer(content):
        paths += [m.group(1).decode(), m.group(2).decode()]
    if paths:
        # git headers are exact; a removed line "-- a/b" would look like a --- header
        return sorted(set(paths))
    # plain unified diffs have only ---/+++ headers
    for m in _PLUS_MINUS.finditer(content):
        p = m.group(1).decode()
        if p == "/dev/null" or "/" not in p:
            continue
        paths.append(p.split("/", 1)[1])
    return sorted(set(paths))


_HUNK_FAILED = re.compile(r"^Hunk #(\d+) FAILED at (\d+)")
_PATCHING = re.compile(r"^(?:patching|checking) file (.+?)\s*$")


def _explain_patch_failure(patch: Patch, output: str, source_desc: str) -> PatchError:
    """Turn `patch` output into an error that names the patch, file and hunk."""
    problems: list[str] = []
    current = "?"
    for line in output.splitlines():
        m = _PATCHING.match(line)
        if m:
            current = m.group(1).strip("'\"")
            continue
        m = _HUNK_FAILED.match(line)
        if m:
            problems.append(f"{current}: hunk #{m.group(1)} FAILED at line {m.group(2)}")
        elif "Reversed (or previously applied) patch detected" in line:
            problems.append(f"{current}: already applied or reversed")
        elif line.startswith("can't find file to patch"):
            problems.append(f"a file it patches does not exist ({line.strip()})")
        elif "malformed patch" in line or "Only garbage was found" in line:
            problems.append(line.strip())
    if not problems:
        problems = [output.strip()[-800:] or "patch failed without output"]
    detail = "\n  ".join(problems)
    return PatchError(
        f"patch {patch.name} (series line {patch.series_line}) does not apply to {source_desc}:\n  {detail}"
    )


def apply_in_staging(patches: list[Patch], pristine: Path, staging: Path, source_desc: str) -> list[str]:
    """Copy the touched pristine files into `staging` and apply `patches` there, in order.

    Returns the sorted list of paths the series touches.
    """
    touched = sorted({p for patch in patches for p in patch.touched_files()})
    for rel in touched:
        src = pristine / rel
        if src.is_file():
            dst = staging / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    for patch in patches:
        proc = subprocess.run(
            ["patch", "-p1", "--forward", "--batch", "--no-backup-if-mismatch",
             "--reject-file=-", "-d", str(staging), "-i", str(patch.path)],
            capture_output=True, text=True,
        )
        log.debug("patch %s:\n%s", patch.name, proc.stdout)
        if proc.returncode != 0:
            raise _explain_patch_failure(patch, proc.stdout + proc.stderr, source_desc)
    return touched


def _same_content(a: Path, b: Path) -> bool:
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
        return a.read_bytes() == b.read_bytes()
    except FileNotFoundError:
        return False


def _install(src: Path, dst: Path) -> None:
    """Replace dst by src's content and mode, via rename (never half-written; mtime = now)."""
    atomic_copy(src, dst)


def _make_like(want: Path, dst: Path) -> bool:
    """Make dst hold want's content (or not exist, if want does not); True if dst changed."""
    if want.is_file():
        if _same_content(want, dst):
            return False
        _install(want, dst)
        return True
    if dst.exists():
        dst.unlink()
        return True
    return False


def sync_series(patches: list[Patch], pristine: Path, tree: Path, source_desc: str,
                state_dir: Path) -> dict:
    """Make `tree` equal to `pristine` + `patches`, writing only files whose content differs.

    `tree` is a full tree of `pristine`, copied or hard-linked: files are replaced by
    rename, never written in place, so `pristine` stays intact. The state file in
    `state_dir` remembers which files the last applied series touched, so files it
    touched and the new series does not are restored to pristine.
    Returns {"touched": [...], "changed": [...]}.
    """
    state_path = state_dir / STATE_FILE
    old = read_json(state_path) or {}
    old_touched = set(old.get("touched", []))
    with disk_full_is_infra("applying the patch series", cache_root()), \
            tempfile.TemporaryDirectory(dir=state_dir, prefix=".staging-") as tmp:
        staging = Path(tmp)
        touched = apply_in_staging(patches, pristine, staging, source_desc)
        # Written before the tree changes: should this sync be interrupted, the next one
        # knows every file that may differ from pristine (old and new series) and
        # restores what its series does not touch.
        write_json(state_path, {"touched": sorted(old_touched | set(touched)), "in_progress": True})
        changed = []
        # patched files: take the staged version (or delete it if the series deletes it)
        for rel in touched:
            if _make_like(staging / rel, tree / rel):
                changed.append(rel)
        # files only the previous series touched: back to pristine
        for rel in sorted(old_touched - set(touched)):
            if _make_like(pristine / rel, tree / rel):
                changed.append(rel)
    write_json(state_path, {
        "touched": touched,
        "patches": [{"name": p.name, "sha256": p.sha256} for p in patches],
    })
    if changed:
        log.info("series sync changed %d file(s): %s", len(changed), ", ".join(changed[:10]))
    return {"touched": touched, "changed": changed}


def patches_digest(patches: list[Patch]) -> list[dict]:
    """Names and sha256 of the patches, in order (metadata and cache keys)."""
    return [{"name": p.name, "sha256": p.sha256} for p in patches]


__all__ = ["Patch", "parse_series", "touched_files", "apply_in_staging", "sync_series",
           "patches_digest"]
