"""Shared helpers of the metric parsers: line splitting, number checks, fast frame building."""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Sequence

import numpy as np
import pandas as pd

from harness.errors import ParseError

__all__ = ["ParseError", "lines_of", "to_int", "cached_index", "fast_index", "int_frame", "node_from_source"]

_NODE_IN_NAME = re.compile(r"node(\d+)")


def lines_of(text: str, source: str, *, require_final_newline: bool = True) -> list[str]:
    """Split captured text into lines, rejecting a cut-off last line.

    Every /proc and /sys file the kernel writes ends with a newline, so a capture that
    does not is truncated mid-line; catching that here means a half-printed number such
    as "spanned  40" (of 4095) is reported instead of silently parsed.
    """
    if not text:
        raise ParseError(source, None, "empty input")
    if "\r" in text:
        # serial consoles and some copy paths add CR; the kernel never prints one
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    elif require_final_newline:
        raise ParseError(source, len(lines), "truncated: last line has no newline")
    return lines


#: the kernel prints counters as s64 or u64: anything outside is garbled text
INT_MIN, UINT_MAX = -(2**63), 2**64 - 1


def to_int(token: str, source: str, lineno: int, what: str) -> int:
    """Parse a decimal number the kernel printed, or raise ParseError at that line."""
    try:
        value = int(token)
    except ValueError:
        raise ParseError(source, lineno, f"{what}: expected a number, got {token!r}") from None
    if not INT_MIN <= value <= UINT_MAX:
        raise ParseError(source, lineno, f"{what}: {token} does not fit the kernel's 64-bit counters")
    return value


# pd.Index construction costs ~50-150 us; snapshots repeat the same zone names, node
# numbers and column lists, and an Index is immutable, so identical ones are shared.
_INDEX_CACHE: dict[tuple[Hashable, ...], pd.Index] = {}


def cached_index(values: Iterable[Hashable], name: str | None = None) -> pd.Index:
    """An Index of these values (shared between calls: never mutate it)."""
    key = (name, tuple(values))
    idx = _INDEX_CACHE.get(key)
    if idx is None:
        if len(_INDEX_CACHE) > 4096:
            _INDEX_CACHE.clear()
        idx = _INDEX_CACHE[key] = pd.Index(list(values), name=name)
    return idx


def fast_index(arrays: Sequence[Sequence[Hashable]], names: list[str]) -> pd.Index:
    """Build a (Multi)Index from parallel key lists.

    MultiIndex.from_tuples/from_arrays cost ~0.7 ms each (factorising and sorting); the
    parsers run on thousands of snapshots, so levels and codes are built directly, keeping
    first-seen order (the kernel's own node/zone order).
    """
    if len(arrays) == 1:
        return cached_index(arrays[0], names[0])
    levels: list[pd.Index] = []
    codes: list[np.ndarray] = []
    for values in arrays:
        mapping: dict[Hashable, int] = {}
        code = [mapping.setdefault(v, len(mapping)) for v in values]
        levels.append(cached_index(mapping))
        codes.append(np.asarray(code, dtype=np.intp))
    # pandas-stubs wants plain sequences; pandas takes Index levels and ndarray codes (and
    # building from them is what makes this fast)
    return pd.MultiIndex(levels=levels, codes=codes,  # type: ignore[arg-type]
                         names=names, verify_integrity=False)


def int_frame(rows: list[list[int]], index: pd.Index, columns: list[str]) -> pd.DataFrame:
    """One int64 block: far cheaper to build than a frame from dicts or per-column arrays.

    The kernel prints u64 counters; one at 2^63 or above (an unsigned underflow such as
    a region free count gone below zero prints 18446744073709551613) does not fit int64,
    so such a frame is kept as Python ints: the value survives for the checks to see.
    """
    if not rows:
        return pd.DataFrame(np.empty((0, len(columns)), dtype=np.int64), index=index,
                            columns=cached_index(columns), copy=False)
    try:
        data = np.array(rows, dtype=np.int64)
    except OverflowError:
        data = np.array(rows, dtype=object)
    return pd.DataFrame(data, index=index, columns=cached_index(columns), copy=False)


def node_from_source(source: str, node: int | None) -> int:
    """Node number of a per-node sysfs file whose text does not carry it (numastat, vmstat)."""
    if node is not None:
        return node
    found = _NODE_IN_NAME.findall(source)
    if not found:
        raise ParseError(source, None, "cannot tell the node number: pass node= or name the source nodeN...")
    return int(found[-1])
