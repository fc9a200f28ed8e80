"""Parse /proc/pagetypeinfo (mm/vmstat.c pagetypeinfo_show*): free blocks and pageblocks per migratetype.

:func:`parse_pagetypeinfo` returns a :class:`PageTypeInfo`:

``free``        index (node, zone, migratetype, order); ``free_blocks`` (blocks of
                2**order pages) and ``capped`` (bool: the kernel stops counting a free
                list at 100000 entries and prints ">100000").
``blocks``      index (node, zone, migratetype); ``pageblocks`` (count of pageblocks of
                ``pages_per_block`` pages whose migratetype is this one). Sum over zone
                for per-node figures.
``mixed``       same shape as ``blocks`` with ``mixed_pageblocks``; only kernels with
                PAGE_OWNER enabled print it, otherwise empty.
``pageblock_order``, ``pages_per_block``: ints from the node headers.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import NamedTuple

import numpy as np
import pandas as pd

from ._common import ParseError, fast_index, int_frame, lines_of

__all__ = ["PageTypeInfo", "parse_pagetypeinfo"]


# (node, zone, migratetype, count) of a "Number of ... blocks" table
_CountRow = tuple[int, str, str, int]


class PageTypeInfo(NamedTuple):
    free: pd.DataFrame
    blocks: pd.DataFrame
    mixed: pd.DataFrame
    pageblock_order: int
    pages_per_block: int


def parse_pagetypeinfo(text: str, source: str = "pagetypeinfo") -> PageTypeInfo:
    """Parse the text of /proc/pagetypeinfo (all nodes)."""
    free_keys: list[list[Hashable]] = [[], [], [], []]
    free_vals: list[int] = []
    capped: list[bool] = []
    tables: dict[str, list[_CountRow]] = {"blocks": [], "mixed": []}
    order: int | None = None
    per_block: int | None = None
    section = None  # "free", "blocks" or "mixed": which table the "Node" lines belong to
    mtypes: list[str] = []
    width = 0
    for lineno, line in enumerate(lines_of(text, source), 1):
        if not line.strip():
            continue
        try:
            if line.startswith("Page block order:"):
                value = int(line.split(":", 1)[1])
                if order is not None and value != order:
                    raise ParseError(source, lineno, "pageblock order differs between nodes")
                order, section = value, None
            elif line.startswith("Pages per block:"):
                per_block, section = int(line.split(":", 1)[1]), None
            elif line.startswith("Free pages count per migrate type at order"):
                heads = line[len("Free pages count per migrate type at order"):].split()
                width = len(heads)
                if [int(h) for h in heads] != list(range(width)):
                    raise ParseError(source, lineno, "garbled order header")
                section = "free"
            elif line.startswith("Number of blocks type") or line.startswith("Number of mixed blocks"):
                mtypes = line.split()[4:]
                section = "blocks" if line.startswith("Number of blocks") else "mixed"
            elif line.startswith("Node"):
                if section == "free":
                    # "Node    0, zone      DMA, type    Unmovable      0 ..."
                    head, _, counts = line.partition(", type ")
                    hp = head.split()
                    cp = counts.split()
                    if len(hp) != 4 or hp[2] != "zone" or hp[1][-1] != "," or len(cp) != width + 1:
                        raise ParseError(source, lineno, f"garbled free-count line {line!r}")
                    node, zone, mt = int(hp[1][:-1]), hp[3], cp[0]
                    for o, tok in enumerate(cp[1:]):
                        over = tok[0] == ">"
                        free_vals.append(int(tok[1:] if over else tok))
                        capped.append(over)
                        free_keys[0].append(node)
                        free_keys[1].append(zone)
                        free_keys[2].append(mt)
                        free_keys[3].append(o)
                elif section in tables:
                    parts = line.split()
                    if (len(parts) != 4 + len(mtypes) or parts[2] != "zone"
                            or parts[1][-1] != ","):
                        raise ParseError(source, lineno, f"garbled block-count line {line!r}")
                    node = int(parts[1][:-1])
                    for mt, tok in zip(mtypes, parts[4:], strict=True):
                        tables[section].append((node, parts[3], mt, int(tok)))
                else:
                    raise ParseError(source, lineno, "Node line outside a table")
            else:
                raise ParseError(source, lineno, f"unrecognised line {line!r}")
        except ValueError:
            raise ParseError(source, lineno, f"expected a number in {line!r}") from None
    if order is None or per_block is None:
        raise ParseError(source, None, "no 'Page block order' / 'Pages per block' header")
    free = int_frame([[v] for v in free_vals],
                     fast_index(free_keys, ["node", "zone", "migratetype", "order"]), ["free_blocks"])
    free["capped"] = np.array(capped, dtype=bool)
    return PageTypeInfo(free, _counts(tables["blocks"], "pageblocks"),
                        _counts(tables["mixed"], "mixed_pageblocks"), order, per_block)


def _counts(rows: list[_CountRow], column: str) -> pd.DataFrame:
    idx = fast_index([[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]],
                     ["node", "zone", "migratetype"])
    return int_frame([[r[3]] for r in rows], idx, [column])
