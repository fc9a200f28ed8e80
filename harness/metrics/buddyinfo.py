"""Parse /proc/buddyinfo (mm/vmstat.c frag_show_print): free blocks per node, zone and order.

:func:`parse_buddyinfo` returns a DataFrame indexed (node, zone, order) with one column
``free_blocks`` (count of free buddy blocks of 2**order pages; multiply by 2**order for
pages). Only populated zones are listed by the kernel.
"""

from __future__ import annotations

import pandas as pd

from ._common import ParseError, fast_index, int_frame, lines_of

__all__ = ["parse_buddyinfo"]


def parse_buddyinfo(text: str, source: str = "buddyinfo") -> pd.DataFrame:
    """Parse the text of /proc/buddyinfo; every zone line must list the same orders."""
    nodes: list[int] = []
    zones: list[str] = []
    orders: list[int] = []
    values: list[int] = []
    width = None
    for lineno, line in enumerate(lines_of(text, source), 1):
        parts = line.split()
        if len(parts) < 5 or parts[0] != "Node" or parts[2] != "zone" or parts[1][-1:] != ",":
            raise ParseError(source, lineno, f"garbled buddyinfo line {line!r}")
        counts = parts[4:]
        if width is None:
            width = len(counts)
        elif len(counts) != width:
            raise ParseError(source, lineno, f"{len(counts)} orders where earlier lines have {width}")
        try:
            node = int(parts[1][:-1])
            values.extend(int(c) for c in counts)
        except ValueError:
            raise ParseError(source, lineno, f"expected numbers in {line!r}") from None
        nodes.extend([node] * width)
        zones.extend([parts[3]] * width)
        orders.extend(range(width))
    index = fast_index([nodes, zones, orders], ["node", "zone", "order"])
    return int_frame([[v] for v in values], index, ["free_blocks"])
