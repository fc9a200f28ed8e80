"""Parse what a kernel selftest prints: KTAP/TAP 13 lines (kselftest.h, kselftest_harness.h).

Pure functions over text. One selftest program prints at most one plan and its test
lines; what it prints besides them (comments, a script's own words) is kept as
comments. The program's exit status is the other half of the result: see `outcome`.

    TAP version 13
    1..3
    # Starting 3 tests from 1 test cases.
    ok 1 migration.private_anon
    not ok 2 migration.shared_anon
    ok 3 migration.private_anon_thp # SKIP Transparent Hugepages not available
    Bail out! 1 out of 3 tests failed
    # Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: kselftest's exit status for "skipped" (KSFT_SKIP); 0 is pass, anything else fail
KSFT_SKIP = 4
#: what busybox/coreutils `timeout` exits with when it had to kill the program
TIMEOUT_STATUS = 124

#: results a test can have; the last three are failures
PASS, XFAIL, SKIP, XPASS, FAIL, ERROR, TIMEOUT = "pass", "xfail", "skip", "xpass", "fail", "error", "timeout"
RESULTS = (PASS, XFAIL, SKIP, XPASS, FAIL, ERROR, TIMEOUT)
FAILURES = frozenset({FAIL, ERROR, TIMEOUT})

_TEST = re.compile(r"^(?P<not>not )?ok (?P<num>\d+)\b(?P<rest>.*)$")
_DIRECTIVE = re.compile(r"(?:^|\s)#\s*(?P<directive>SKIP|XFAIL|XPASS|TODO)\b\s*(?P<reason>.*)$", re.IGNORECASE)
_PLAN = re.compile(r"^1\.\.(\d+)\b")
TOTALS = ("pass", "fail", "xfail", "xpass", "skip", "error")
_TOTALS = re.compile(r"^# Totals: pass:(\d+) fail:(\d+) xfail:(\d+) xpass:(\d+) skip:(\d+) error:(\d+)")
_BAIL = re.compile(r"^Bail out!\s*(.*)$")
_RUN = re.compile(r"^# \[RUN\] (.*)$")


@dataclass(frozen=True)
class TestLine:
    """One `ok`/`not ok` line."""

    number: int
    description: str
    result: str  # one of RESULTS
    reason: str = ""
    #: what the test is called: the `# [RUN] ...` comment before it where the program
    #: prints one (cow, gup_longterm: their ok/not ok text says how it went, not what ran)
    name: str = ""


@dataclass
class Tap:
    """What one program printed, parsed."""

    plan: int | None = None
    tests: list[TestLine] = field(default_factory=list)
    bail_out: str | None = None
    totals: dict[str, int] | None = None
    comments: list[str] = field(default_factory=list)
    #: test lines whose number came again (the last one counts)
    repeated: int = 0

    @property
    def is_tap(self) -> bool:
        return self.plan is not None or bool(self.tests)


def _result(negated: bool, directive: str | None) -> str:
    d = (directive or "").upper()
    if d == "SKIP":
        return SKIP
    if d == "XFAIL":
        return XFAIL
    if d == "XPASS":
        return XPASS
    if d == "TODO":  # TAP: a TODO test that fails is expected to
        return XFAIL if negated else XPASS
    return FAIL if negated else PASS


def parse_tap(text: str) -> Tap:
    """Every test line, the plan, a bail-out and the totals line of one program's output.

    Indented lines are a nested KTAP level (a subtest's own tests): only the top level
    is taken, its `ok` line stands for them. Lines that are neither are comments. The
    last totals line counts, like the last line of a repeated test number.
    """
    tap = Tap()
    running = ""
    for raw in text.splitlines():
        if raw[:1] in (" ", "\t"):
            continue
        line = raw.rstrip()
        if m := _TEST.match(line):
            rest, directive, reason = m["rest"], None, ""
            if d := _DIRECTIVE.search(rest):
                rest, directive, reason = rest[:d.start()], d["directive"], d["reason"].strip()
            desc = rest.strip().removeprefix("- ").strip()
            new = TestLine(int(m["num"]), desc, _result(bool(m["not"]), directive), reason,
                             running or desc or reason)
            running = ""
            seen = next((i for i, t in enumerate(tap.tests) if t.number == new.number), None)
            if seen is None:
                tap.tests.append(new)
            else:
                # a child forked with unflushed stdout prints a number again (ksm_functional_tests
                # into a pipe): the later line, the parent's, is the result
                tap.tests[seen] = new
                tap.repeated += 1
        elif m := _RUN.match(line):
            running = m[1].strip()
        elif (m := _PLAN.match(line)) and tap.plan is None:
            tap.plan = int(m[1])
        elif m := _BAIL.match(line):
            tap.bail_out = m[1].strip()
        elif m := _TOTALS.match(line):
            tap.totals = dict(zip(TOTALS, map(int, m.groups()), strict=True))
        elif line and not line.startswith("TAP version"):
            tap.comments.append(line.removeprefix("#").strip())
    return tap


@dataclass(frozen=True)
class Outcome:
    """A whole program's result: from its exit status, explained by what it printed."""

    result: str
    reason: str = ""


def outcome(status: int, tap: Tap) -> Outcome:
    """pass on 0, skip on KSFT_SKIP, timeout on TIMEOUT_STATUS, fail otherwise; with the reason.

    A program that exits 0 but planned more tests than it ran, or printed a failed test,
    failed all the same (kselftest exits 0 in neither case, a broken one might).
    """
    failed = [t for t in tap.tests if t.result in FAILURES]
    if status == TIMEOUT_STATUS:
        return Outcome(TIMEOUT, "killed by the harness's timeout")
    if status == KSFT_SKIP:
        skipped = [t.reason for t in tap.tests if t.result == SKIP and t.reason]
        return Outcome(SKIP, (skipped[-1] if skipped else _last_words(tap)))
    if status != 0:
        why = tap.bail_out or (f"{len(failed)} of {len(tap.tests)} tests failed: {failed[0].description}"
                               if failed else _last_words(tap))
        return Outcome(FAIL, f"exit status {status}: {why}" if why else f"exit status {status}")
    if failed:
        return Outcome(FAIL, f"exit status 0, but {len(failed)} tests failed: {failed[0].description}")
    if tap.plan is not None and len(tap.tests) < tap.plan:
        return Outcome(FAIL, f"exit status 0, but {len(tap.tests)} of {tap.plan} planned tests ran")
    return Outcome(PASS)


def _last_words(tap: Tap) -> str:
    """The last comment a program printed: usually why it gave up."""
    for c in reversed(tap.comments):
        if c and not c.startswith("Totals:") and not c.startswith("Planned tests"):
            return c[:200]
    return ""
