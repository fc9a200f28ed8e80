"""Parse what /sys/kernel/debug/region_alloc_test/control reads back (kernel-patches/README.md).

After ``alloc``: one pfn per line -> :func:`parse_alloc_pfns` gives a frame with a
RangeIndex (allocation order) and column ``pfn`` (first pfn of each block).
After ``free``: "freed N" -> :func:`parse_control_result` gives ``{"freed": N}`` (blocks).
After ``bench``: "ns_per_op X" and, since 2026-12-03, "split_from M" on a line of its own ->
``{"ns_per_op": X, "split_from": M}`` (nanoseconds per alloc+free; the order of the block
each allocation split).
"""

from __future__ import annotations

import pandas as pd

from ._common import ParseError, int_frame, lines_of

__all__ = ["CONTROL", "parse_alloc_pfns", "parse_control_result"]

#: the series' test interface (kernel-patches/README.md): alloc, free, bench and drain
CONTROL = "/sys/kernel/debug/region_alloc_test/control"


def parse_alloc_pfns(text: str, source: str = "control") -> pd.DataFrame:
    """Parse the pfn list an alloc command reads back (empty text: nothing allocated)."""
    if text == "":
        return int_frame([], pd.RangeIndex(0), ["pfn"])
    rows = []
    for lineno, line in enumerate(lines_of(text, source), 1):
        token = line.strip()
        try:
            # the module prints decimal; accept 0x too so hand-made fixtures stay valid
            rows.append([int(token, 0) if token.startswith("0x") else int(token)])
        except ValueError:
            raise ParseError(source, lineno, f"expected one pfn, got {line!r}") from None
    return int_frame(rows, pd.RangeIndex(len(rows)), ["pfn"])


#: what a line of a free or bench result may say, and the type of its value
_RESULT_KEYS = {"freed": int, "ns_per_op": float, "split_from": int}


def parse_control_result(text: str, source: str = "control") -> dict[str, float]:
    """Parse "freed N", or "ns_per_op X" with an optional "split_from M", into a dict."""
    out: dict[str, float] = {}
    lines = lines_of(text, source)
    if not lines:
        raise ParseError(source, None, "expected 'freed N' or 'ns_per_op X', got nothing")
    for lineno, line in enumerate(lines, 1):
        parts = line.split()
        if len(parts) != 2 or parts[0] not in _RESULT_KEYS or parts[0] in out:
            raise ParseError(source, lineno, f"expected one of 'freed N', 'ns_per_op X', 'split_from M' "
                             f"once each, got {line!r}")
        try:
            out[parts[0]] = _RESULT_KEYS[parts[0]](parts[1])
        except ValueError:
            raise ParseError(source, lineno, f"{parts[0]}: expected a number, got {parts[1]!r}") from None
    if ("freed" in out) == ("ns_per_op" in out):
        raise ParseError(source, None, f"expected 'freed N' or 'ns_per_op X', got {sorted(out)}")
    return out
