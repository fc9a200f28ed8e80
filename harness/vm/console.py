"""Find kernel problem reports (panic, Oops, BUG, WARNING, KASAN, lockdep, hung task) in console text.

Pure functions on text, so they are tested on saved console logs without a VM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A report line starts a console line, after an optional printk level ("<4>") and
# any bracketed prefixes: the timestamp "[    1.234567]" and, with
# CONFIG_PRINTK_CALLER, "[    T1]". Anchoring at the line start keeps user-space
# text that merely mentions "BUG:" in the middle of a line from counting.
_PREFIX = r"^(?:<\d+>)?(?:\[[^\]]*\]\s*)*"

# A terminal escape sequence starts a line afresh: with -vga none, SeaBIOS turns the
# boot stub's video mode set into a screen reset (ESC c ESC[?7l ESC[2J) on the serial
# line, with no newline, sometimes right after its own "Booting from ROM..", so the
# kernel's first console line comes glued behind it. classify_line looks only at the
# text after the last escape.
_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-~])")

#: (kind, pattern) in priority order: when several match one line, the first wins,
#: e.g. "BUG: KASAN: ..." is KASAN and "WARNING: possible circular locking" is lockdep.
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("panic", re.compile(_PREFIX + r"Kernel panic - not syncing")),
    ("KASAN", re.compile(_PREFIX + r"BUG: KASAN:")),
    ("lockdep", re.compile(
        _PREFIX + r"(?:WARNING: )?(?:possible circular locking dependency"
        r"|inconsistent lock state|possible recursive locking"
        r"|INFO: possible recursive locking)")),
    ("hung task", re.compile(_PREFIX + r"INFO: task .* blocked for more than")),
    ("Oops", re.compile(_PREFIX + r"Oops(?::|\b.*\[#\d+\])")),
    ("BUG", re.compile(_PREFIX + r"(?:BUG: |kernel BUG at )")),
    ("WARNING", re.compile(_PREFIX + r"WARNING: ")),
]

#: lines of context kept before and after the first report line
CONTEXT_BEFORE = 10
CONTEXT_AFTER = 60


@dataclass(frozen=True)
class ConsoleProblem:
    """The first kernel report found: its kind, line number (0-based) and an excerpt."""

    kind: str
    line: int
    text: str
    excerpt: str


def classify_line(line: str) -> str | None:
    """The kind of report a single console line starts, or None."""
    line = _ESCAPE.split(line.rstrip("\r\n"))[-1]
    for kind, pattern in PATTERNS:
        if pattern.search(line):
            return kind
    return None


def normalise(text: str) -> list[str]:
    """Console text as lines, without the carriage returns a serial line adds."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def find_problems(lines: list[str], start: int = 0) -> list[tuple[int, str]]:
    """Every (line number, kind) of a report-starting line from ``start`` on."""
    found = []
    for i in range(start, len(lines)):
        kind = classify_line(lines[i])
        if kind:
            found.append((i, kind))
    return found


def excerpt(lines: list[str], line: int, before: int = CONTEXT_BEFORE,
            after: int = CONTEXT_AFTER) -> str:
    lo = max(0, line - before)
    return "\n".join(lines[lo:line + after + 1])


def first_problem(text: str) -> ConsoleProblem | None:
    """The earliest report in ``text``: the first one is usually the cause of the rest."""
    lines = normalise(text)
    found = find_problems(lines)
    if not found:
        return None
    line, kind = found[0]
    return ConsoleProblem(kind=kind, line=line, text=lines[line], excerpt=excerpt(lines, line))
