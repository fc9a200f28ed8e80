"""Filesystem primitives every stage shares: atomic writes, JSON/CSV files, reading a tree, disk-full errors.

A file the harness writes is written whole or not at all: through a temp file in the
same directory, fsync'd, renamed over the target, and the directory fsync'd so the
rename survives a crash. Modes are set explicitly (mkstemp's 0600 is not what a shared
cache wants, and a secret must not inherit a lax umask).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import InfraError, UserError

#: what a subprocess prints when it hits ENOSPC; tools report it as text, not as errno
_DISK_FULL_TEXT = "No space left on device"

FILE_MODE = 0o644
SECRET_MODE = 0o600


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | str, mode: int = FILE_MODE) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_copy(src: Path, dst: Path) -> None:
    """Copy src over dst atomically, keeping src's permission bits."""
    atomic_write(dst, Path(src).read_bytes(), mode=Path(src).stat().st_mode & 0o7777)


def write_json(path: Path, obj: object) -> None:
    """Atomically write pretty JSON (metadata and state files are read by people too)."""
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json_state(path: Path) -> Any | None:
    """Read a cache or state file; a missing or corrupt one counts as absent (it is rebuilt)."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def read_json(path: Path) -> Any:
    """Read a JSON file the user handed us (a run's metadata.json, vm.json): corrupt is bad input."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); restore or remove the file") from None


def write_csv(path: Path, df: pd.DataFrame) -> None:
    """Atomically write a frame as CSV (its index too unless it is a plain range)."""
    buf = io.StringIO()
    df.to_csv(buf, index=not isinstance(df.index, pd.RangeIndex))
    atomic_write(Path(path), buf.getvalue())


def read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV file of a run; a garbled one is bad input naming the file."""
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV file ({exc})") from None


def read_tree(directory: Path) -> dict[str, str]:
    """Every regular file under ``directory`` as {relative posix path: text} (a saved capture)."""
    directory = Path(directory)
    return {p.relative_to(directory).as_posix(): p.read_text(errors="replace")
            for p in sorted(directory.rglob("*")) if p.is_file()}


def tree_digest(directory: Path) -> str:
    """sha256 over every regular file under ``directory`` (relative path and bytes): equal trees, equal digests."""
    h = hashlib.sha256()
    root = Path(directory)
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def replace_dir(staged: Path, final: Path) -> None:
    """Put the directory ``staged`` at ``final`` (same filesystem), replacing what was there.

    A reader sees the old directory or the new one, never half of either: the old one is
    renamed aside first, then the new one renamed in, then the old one removed.
    """
    staged, final = Path(staged), Path(final)
    trash = final.with_name(f".old-{final.name}-{os.getpid()}")
    if final.exists():
        os.rename(final, trash)
    os.rename(staged, final)
    _fsync_dir(final.parent)
    if trash.exists():
        shutil.rmtree(trash, ignore_errors=True)


def is_disk_full(text: str) -> bool:
    """True when a tool's output says it ran out of space."""
    return _DISK_FULL_TEXT in text


def raise_if_disk_full(text: str, what: str) -> None:
    """Raise ENOSPC as an OSError when a tool's output says the disk is full (see disk_full_is_infra)."""
    if is_disk_full(text):
        raise OSError(errno.ENOSPC, f"{_DISK_FULL_TEXT} ({what})")


@contextlib.contextmanager
def disk_full_is_infra(what: str, where: Path | None = None) -> Iterator[None]:
    """Turn ENOSPC into an InfraError that says the disk is full (not the user's fault)."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            place = f" (free space under {where})" if where else ""
            raise InfraError(f"disk full while {what}: {exc}{place}") from exc
        raise
