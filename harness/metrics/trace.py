"""Parse a tracefs ``trace`` file: one row per recorded event, its fields as columns.

The file (kernel/trace/trace.c, print_trace_header and the event's TP_printk) reads::

    # tracer: nop
    #
    # entries-in-buffer/entries-written: 2/2   #P:2
    #
    #           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
    #              | |         |   |||||     |         |
              <idle>-0       [001] d.s2.    41.318297: mm_region_bank_deposit: node=0 zone=Normal   region=3 ...
                  sh-187     [000] ...1.    45.001102: mm_compaction_isolate_freepages: range=(0x1f000 ~ 0x1f200) ...

Columns: ``task``, ``pid``, ``cpu``, ``timestamp`` (seconds), ``event``, then every
``key=value`` of the events' text in order of first appearance: an integer where the
value is decimal or 0x-hexadecimal, the text otherwise (a parenthesised value such as
compaction's ``range=(a ~ b)`` is kept whole). An event without a key gets no value (NaN).
An event whose text has no ``key=value`` at all (a ``trace_marker`` write,
``tracing_mark_write: before``) keeps it in the column ``text``.

A buffer that overflowed lost its oldest events: the header's entries-in-buffer is then
smaller than entries-written, and counting events from such a file would be wrong, so
that is an error that says to enlarge ``buffer_size_kb``.
"""

from __future__ import annotations

import re

import pandas as pd

from ._common import ParseError, lines_of

__all__ = ["parse_trace"]

_HEADER = re.compile(r"^# entries-in-buffer/entries-written: (\d+)/(\d+)")
_LINE = re.compile(r"^\s*(?P<task>.+)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+(?:\S+\s+)?"
                   r"(?P<ts>\d+\.\d+): (?P<event>\w+): ?(?P<text>.*)$")
_FIELD = re.compile(r"(\w+)=(\([^)]*\)|\S+)")
_INT = re.compile(r"-?\d+|0x[0-9a-fA-F]+")


def _value(text: str) -> int | str:
    if not _INT.fullmatch(text):
        return text
    return int(text, 16) if text.startswith("0x") else int(text)


def parse_trace(text: str, source: str = "trace") -> pd.DataFrame:
    """The events of a tracefs trace file, one row each (columns task, pid, cpu, timestamp, event, fields)."""
    lines = lines_of(text, source)
    rows: list[dict[str, object]] = []
    kept: int | None = None  # the header's count of events in the buffer
    for lineno, line in enumerate(lines, 1):
        m = _HEADER.match(line)
        if m:
            kept, written = int(m[1]), int(m[2])
            if kept < written:
                raise ParseError(source, lineno, f"the trace buffer lost {written - kept} of {written} events "
                                 "(it wrapped): enlarge the instance's buffer_size_kb")
            continue
        if not line.strip() or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise ParseError(source, lineno, f"expected 'TASK-PID [CPU] FLAGS TIMESTAMP: EVENT: FIELDS', "
                             f"got {line!r}")
        row: dict[str, object] = {"task": m["task"].strip(), "pid": int(m["pid"]), "cpu": int(m["cpu"]),
                                  "timestamp": float(m["ts"]), "event": m["event"]}
        fields = _FIELD.findall(m["text"])
        for key, value in fields:
            if key in row:
                raise ParseError(source, lineno, f"field {key!r} twice in one event")
            row[key] = _value(value)
        if not fields:
            row["text"] = m["text"]
        rows.append(row)
    if kept is None:
        raise ParseError(source, None, "no 'entries-in-buffer/entries-written' header: not a tracefs trace "
                         "file, or it was cut")
    if len(rows) != kept:
        raise ParseError(source, None, f"the header says {kept} events, the file holds {len(rows)}")
    columns = ["task", "pid", "cpu", "timestamp", "event"]
    return pd.DataFrame(rows, columns=list(dict.fromkeys([*columns, *(k for r in rows for k in r)])))
