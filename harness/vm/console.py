"""Watch a guest's serial console: the ready marker and kernel problem reports (panic, Oops, BUG, ...).

The line classifier and excerpts are pure functions on text, and ConsoleWatcher takes
text chunks rather than a pty, so both are tested on saved console logs without a VM.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from harness.guest import READY_MARKER

log = logging.getLogger(__name__)

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
    found: list[tuple[int, str]] = []
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


@dataclass(frozen=True)
class _Seen:
    """The first problem line of a stream: where it is, what kind, when it arrived (monotonic)."""

    line: int
    kind: str
    time: float


class ConsoleWatcher:
    """A console as it streams in: its lines, when the ready marker came, the first problem report.

    One thread feeds it the text it drains from QEMU's pty; others wait on it for the
    guest to be ready, for a report to be printed whole, or for the stream to end. All
    state is guarded by one condition variable, notified on every change.
    """

    def __init__(self, ignore: Sequence[re.Pattern[str]] = (), name: str = "guest",
                 marker: str = READY_MARKER) -> None:
        self.name = name
        self.marker = marker
        # lines that are expected (a test that provokes a WARNING on purpose) and must
        # not count as a guest kernel problem
        self.ignore = list(ignore)
        self._cond = threading.Condition()
        self._lines: list[str] = []  # complete console lines
        self._partial = ""  # the line being written
        self._scanned = 0  # lines already checked for problems
        self._problem: _Seen | None = None
        self._ready_time: float | None = None
        self._closed = False

    # ---------------------------------------------------------------- feeding

    def feed(self, text: str) -> None:
        """Add console text; chunks may end anywhere, in the middle of a line too."""
        with self._cond:
            text = (self._partial + text).replace("\r\n", "\n").replace("\r", "\n")
            parts = text.split("\n")
            self._partial = parts.pop()
            self._lines.extend(parts)
            self._scan_locked()
            # the marker line may still wait for its newline; the guest is ready all the same
            if self._ready_time is None and self.marker in self._partial:
                self._ready_time = time.monotonic()
            self._cond.notify_all()

    def close(self) -> None:
        """The stream ended (QEMU closed the pty): the last unfinished line counts as a line."""
        with self._cond:
            if self._partial:
                self._lines.append(self._partial)
                self._partial = ""
                self._scan_locked()
            self._closed = True
            self._cond.notify_all()

    def _scan_locked(self) -> None:
        for i in range(self._scanned, len(self._lines)):
            line = self._lines[i]
            # "in", not "==": a kernel message can land on the same console line
            if self._ready_time is None and self.marker in line:
                self._ready_time = time.monotonic()
            if self._problem is None:
                kind = classify_line(line)
                if kind and any(p.search(line) for p in self.ignore):
                    log.info("%s: ignoring expected %s: %s", self.name, kind, line)
                    kind = None
                if kind:
                    self._problem = _Seen(i, kind, time.monotonic())
                    log.warning("%s: guest kernel reported %s: %s", self.name, kind, line)
        self._scanned = len(self._lines)

    # ---------------------------------------------------------------- reading

    @property
    def ready_time(self) -> float | None:
        """When (time.monotonic()) the ready marker arrived, or None."""
        with self._cond:
            return self._ready_time

    @property
    def problem(self) -> str | None:
        """The kind of the first problem report so far ("panic", "WARNING", ...), or None."""
        with self._cond:
            return self._problem.kind if self._problem else None

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def text(self) -> str:
        """Everything the guest printed so far."""
        with self._cond:
            return "\n".join(self._lines + [self._partial])

    def tail(self, lines: int = 60) -> str:
        with self._cond:
            return "\n".join((self._lines + [self._partial])[-lines:])

    # ---------------------------------------------------------------- waiting

    def wait_ready(self, deadline: float) -> float | None:
        """Wait until the ready marker, a problem, the end of the stream or ``deadline`` (monotonic).

        The ready time if the guest got ready without a problem report, else None.
        """
        with self._cond:
            while True:
                if self._problem is not None:
                    return None
                if self._ready_time is not None:
                    return self._ready_time
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    return None
                self._cond.wait(min(remaining, 1.0))

    def settled_problem(self, settle: float = 1.0) -> ConsoleProblem | None:
        """The first problem report, once printed whole; None if there is none.

        ``settle``: after a report is first seen, give the kernel this long to finish
        printing it (stack trace, register dump) so the excerpt is complete.
        """
        with self._cond:
            seen = self._problem
            if seen is None:
                return None
            deadline = seen.time + settle
            while not self._closed and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            lines = self._lines + [self._partial]
            return ConsoleProblem(kind=seen.kind, line=seen.line, text=lines[seen.line],
                                  excerpt=excerpt(lines, seen.line))

    def wait_closed(self) -> None:
        """Wait for the end of the stream (the reader saw QEMU close the pty)."""
        with self._cond:
            while not self._closed:
                self._cond.wait(1.0)
