"""Parse the kmem/mm_page_alloc_extfrag histogram: fallback allocations counted by fallback order since boot.

The guest's init (harness/guest/files/init.sh) puts the histogram trigger
``hist:keys=fallback_order`` on the tracepoint at boot, so the kernel counts every
allocation that fell back to another migratetype's free list by the order of the
block it took, without tracing into a ring buffer. The file
(kernel/trace/trace_events_hist.c, hist_trigger_show) reads::

    # event histogram
    #
    # trigger info: hist:keys=fallback_order:vals=hitcount:sort=hitcount:size=2048 [active]
    #

    { fallback_order:          9 } hitcount:          3
    { fallback_order:         10 } hitcount:         13

    Totals:
        Hits: 16
        Entries: 2
        Dropped: 0

The frame has one row: events per fallback order (``order0`` ... at least up to
``order10``, 0 where the kernel printed no entry) and ``total`` (Hits). A fallback below
the pageblock order is the one the tracepoint calls fragmenting: it leaves a
pageblock with pages of two migratetypes.
"""

from __future__ import annotations

import re

import pandas as pd

from ._common import ParseError, lines_of

__all__ = ["MAX_ORDER_COLUMNS", "TRIGGER", "parse_extfrag_hist"]

#: the trigger the guest's init writes (keep equal to init.sh)
TRIGGER = "hist:keys=fallback_order"
#: columns order0..order10 are always there: x86-64's largest buddy order is 10
MAX_ORDER_COLUMNS = 11
#: no configuration has a buddy order this large (arm64 with 64K pages tops out near 13)
_ORDER_LIMIT = 32

_ENTRY = re.compile(r"^\{ fallback_order:\s+(\d+) \} hitcount:\s+(\d+)\s*$")
_TOTAL = re.compile(r"^\s+(Hits|Entries|Dropped): (\d+)$")


def parse_extfrag_hist(text: str, source: str = "mm_page_alloc_extfrag/hist") -> pd.DataFrame:
    """The fallback_order histogram as one row of event counts (order0.., total)."""
    if not text.strip():
        raise ParseError(source, None, "no histogram on kmem/mm_page_alloc_extfrag: the guest's init sets "
                         f"'{TRIGGER}' (harness/guest/files/init.sh); a kernel without "
                         "CONFIG_HIST_TRIGGERS has no hist file at all")
    lines = lines_of(text, source)
    counts: dict[int, int] = {}
    totals: dict[str, int] = {}
    ours = False  # inside the histogram of our trigger (another one may be set beside it)
    for lineno, line in enumerate(lines, 1):
        if line.startswith("# trigger info: "):
            ours = line.removeprefix("# trigger info: ").startswith(TRIGGER + ":")
            continue
        if not ours or not line.strip() or line.startswith("#") or line == "Totals:":
            continue
        m = _ENTRY.match(line)
        if m:
            order = int(m[1])
            if order >= _ORDER_LIMIT:
                raise ParseError(source, lineno, f"fallback_order {order} is no buddy order (limit {_ORDER_LIMIT})")
            if order in counts:
                raise ParseError(source, lineno, f"fallback_order {order} listed twice")
            counts[order] = int(m[2])
            continue
        m = _TOTAL.match(line)
        if m:
            totals[m[1]] = int(m[2])
            if m[1] == "Dropped":
                ours = False  # the last line of a histogram
            continue
        raise ParseError(source, lineno, f"expected '{{ fallback_order: N }} hitcount: N' or a total, got {line!r}")
    if set(totals) != {"Hits", "Entries", "Dropped"}:
        raise ParseError(source, None, f"no histogram with trigger '{TRIGGER}' and its totals in the file")
    if totals["Dropped"]:
        raise ParseError(source, None, f"the histogram dropped {totals['Dropped']} events (its table was full): "
                         "the counts are incomplete")
    if totals["Entries"] != len(counts) or totals["Hits"] != sum(counts.values()):
        raise ParseError(source, None, f"totals say {totals['Entries']} entries and {totals['Hits']} hits, "
                         f"the lines hold {len(counts)} and {sum(counts.values())}")
    width = max(MAX_ORDER_COLUMNS, max(counts, default=0) + 1)
    row: dict[str, int] = {f"order{i}": counts.get(i, 0) for i in range(width)}
    row["total"] = totals["Hits"]
    return pd.DataFrame([row])
