"""Parse what /sys/kernel/debug/region_alloc_test/control reads back (kernel-patches/README.md).

After ``alloc``: one pfn per line -> :func:`parse_alloc_pfns` gives a frame with a
RangeIndex (allocation order) and column ``pfn`` (first pfn of each block).
After ``free``: "freed N" -> :func:`parse_control_result` gives ``{"freed": N}`` (blocks).
After ``bench``: "ns_per_op X" -> ``{"ns_per_op": X}`` (nanoseconds per alloc+free).
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


def parse_control_result(text: str, source: str = "control") -> dict[str, float]:
    """Parse "freed N" or "ns_per_op X" into a one-key dict."""
    lines = lines_of(text, source)
    if len(lines) != 1:
        raise ParseError(source, 2 if len(lines) > 1 else None, "expected exactly one line")
    parts = lines[0].split()
    if len(parts) != 2 or parts[0] not in ("freed", "ns_per_op"):
        raise ParseError(source, 1, f"expected 'freed N' or 'ns_per_op X', got {lines[0]!r}")
    try:
        value = int(parts[1]) if parts[0] == "freed" else float(parts[1])
    except ValueError:
        raise ParseError(source, 1, f"{parts[0]}: expected a number, got {parts[1]!r}") from None
    return {parts[0]: value}
