"""Parse /sys/kernel/debug/extfrag/{unusable_index,extfrag_index}: per zone and order, a fragmentation score.

Both files print one line per populated zone, ``Node N, zone NAME`` then one number per
order 0..MAX_PAGE_ORDER with three decimals (the kernel keeps them scaled by 1000 and
prints integer.fraction). unusable_index is the share of free memory that cannot serve
an allocation of that order (0 = all usable, 1 = none). extfrag_index says why an
allocation of that order would fail: towards 0 lack of memory, towards 1 fragmentation;
-1 means it would succeed now. Needs CONFIG_DEBUG_FS and CONFIG_COMPACTION.
Frame: index (node, zone), columns order0..orderN, dimensionless.
"""

from __future__ import annotations

import re

import pandas as pd

from ._common import ParseError, fast_index, lines_of

__all__ = ["parse_extfrag"]

_LINE = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+)((?:\s+-?\d+\.\d{3})+)\s*$")


def parse_extfrag(text: str, source: str = "extfrag") -> pd.DataFrame:
    """Either extfrag file as a frame of floats, one row per (node, zone)."""
    nodes: list[int] = []
    zones: list[str] = []
    rows: list[list[float]] = []
    for lineno, line in enumerate(lines_of(text, source), 1):
        m = _LINE.match(line)
        if not m:
            raise ParseError(source, lineno, f"expected 'Node N, zone Z' and one index per order, got {line!r}")
        values = [float(v) for v in m[3].split()]
        if rows and len(values) != len(rows[0]):
            raise ParseError(source, lineno, f"{len(values)} orders, the lines before had {len(rows[0])}")
        if any(not (v == -1.0 or 0.0 <= v <= 1.0) for v in values):
            raise ParseError(source, lineno, f"an index outside [0, 1] (or -1): {m[3].strip()!r}")
        nodes.append(int(m[1]))
        zones.append(m[2])
        rows.append(values)
    columns = [f"order{i}" for i in range(len(rows[0]))]
    return pd.DataFrame(rows, index=fast_index([nodes, zones], ["node", "zone"]), columns=columns)
