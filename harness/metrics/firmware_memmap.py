"""Parse /sys/firmware/memmap/N/{start,end,type} (drivers/firmware/memmap.c) into one frame.

:func:`parse_firmware_memmap` takes ``{index: {"start": text, "end": text, "type": text}}``
and returns a frame indexed by ``entry`` (int, sorted) with ``start``, ``end``
(EXCLUSIVE: the file holds the inclusive last byte, converted by +1), ``size`` (bytes)
and ``type`` ("System RAM", "Reserved", "ACPI Tables", ...).
:func:`read_firmware_memmap` reads such a directory (the only I/O here).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

import pandas as pd

from ._common import ParseError

__all__ = ["parse_firmware_memmap", "read_firmware_memmap"]

# entry numbers as sysfs names them ("0") or as ints: both sort numerically
_Entry = TypeVar("_Entry", str, int)


def _hex(text: str, source: str) -> int:
    value = text.strip()
    if not text.endswith("\n") or not value.startswith("0x"):
        raise ParseError(source, 1, f"expected '0x...' and a newline, got {text!r}")
    try:
        return int(value, 16)
    except ValueError:
        raise ParseError(source, 1, f"expected a hex number, got {value!r}") from None


def parse_firmware_memmap(entries: Mapping[_Entry, Mapping[str, str]], source: str = "memmap") -> pd.DataFrame:
    """Turn the per-entry start/end/type texts into a frame (see module docstring)."""
    rows: list[dict[str, object]] = []
    index: list[int] = []
    for key in sorted(entries, key=int):
        entry = entries[key]
        where = f"{source}/{key}"
        missing = {"start", "end", "type"} - set(entry)
        if missing:
            raise ParseError(where, None, f"missing {', '.join(sorted(missing))}")
        start = _hex(entry["start"], f"{where}/start")
        last = _hex(entry["end"], f"{where}/end")
        if last < start:
            raise ParseError(f"{where}/end", 1, "end before start")
        kind = entry["type"]
        if not kind.endswith("\n") or not kind.strip():
            raise ParseError(f"{where}/type", 1, f"truncated type {kind!r}")
        index.append(int(key))
        rows.append({"start": start, "end": last + 1, "size": last + 1 - start, "type": kind.strip()})
    df = pd.DataFrame(rows, columns=["start", "end", "size", "type"],
                      index=pd.Index(index, name="entry", dtype="int64"))
    return df.astype({"start": "int64", "end": "int64", "size": "int64"})


def read_firmware_memmap(path: str = "/sys/firmware/memmap") -> pd.DataFrame:
    """Read a /sys/firmware/memmap directory (or a saved copy of it) and parse it."""
    entries: dict[str, dict[str, str]] = {}
    for name in os.listdir(path):
        if name.isdigit():
            entries[name] = {}
            for field in ("start", "end", "type"):
                file = os.path.join(path, name, field)
                if os.path.exists(file):
                    with open(file) as fh:
                        entries[name][field] = fh.read()
    return parse_firmware_memmap(entries, source=path)
