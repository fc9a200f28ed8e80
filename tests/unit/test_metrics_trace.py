"""The tracefs trace parser and the recording helper, on trace files captured from real guests.

tests/data/trace/bank.trace: the bank's tracepoints (kernel-patches 0011) on the regions
kernel, two-node, while the test interface withdrew banked regions and freed them again.
tests/data/trace/compaction.trace: compaction:mm_compaction_isolate_freepages with the filter
'nr_taken > 0' during full compaction (a parenthesised field).
"""

import re
from pathlib import Path

import pytest

from harness.errors import ParseError
from harness.metrics import parse_trace
from harness.vm.ssh import Result
from harness.vm.tracing import record

DATA = Path(__file__).resolve().parents[1] / "data" / "trace"


@pytest.fixture(scope="module")
def bank():
    return (DATA / "bank.trace").read_text()


def test_every_event_is_a_row_with_its_fields(bank):
    ev = parse_trace(bank)
    header = next(ln for ln in bank.splitlines() if ln.startswith("# entries-in-buffer"))
    assert len(ev) == int(header.split()[2].split("/")[0]) > 0
    assert list(ev.columns[:5]) == ["task", "pid", "cpu", "timestamp", "event"]
    assert set(ev["event"]) <= {"mm_region_bank_deposit", "mm_region_bank_withdraw", "mm_region_bank_return"}
    assert {"node", "zone", "region", "start_pfn", "pages", "banked_pages"} <= set(ev.columns)
    first = next(ln for ln in bank.splitlines() if "mm_region_bank_" in ln)
    row = ev.iloc[0]
    # the hexadecimal pfn as an integer, the padded zone name without its padding
    assert f"start_pfn={row['start_pfn']:#x} " in first and f"zone={row['zone']} " in first
    assert ev["timestamp"].is_monotonic_increasing


def test_a_parenthesised_field_is_kept_whole():
    ev = parse_trace((DATA / "compaction.trace").read_text())
    assert len(ev) > 0 and (ev["nr_taken"] > 0).all()
    lo, tilde, hi = ev.iloc[0]["range"].strip("()").split()
    assert tilde == "~" and int(hi, 16) > int(lo, 16)


@pytest.mark.parametrize("edit, message", [
    (lambda t: re.sub(r"entries-written: (\d+)/(\d+)", lambda m: f"entries-written: {m[1]}/{int(m[2]) + 40}", t),
     "lost 40 of"),
    (lambda t: "\n".join(ln for ln in t.splitlines() if not ln.startswith("# entries")) + "\n", "no 'entries"),
    (lambda t: t + "garbage without a timestamp\n", "expected 'TASK-PID"),
    (lambda t: t.rstrip("\n"), "truncated"),
])
def test_a_damaged_trace_is_an_error_naming_the_file(bank, edit, message):
    with pytest.raises(ParseError, match=message) as err:
        parse_trace(edit(bank), "guest:/sys/kernel/tracing/instances/x/trace")
    assert "instances/x/trace" in str(err.value)


def test_a_trace_with_fewer_events_than_its_header_is_an_error(bank):
    lines = bank.splitlines(keepends=True)
    last = max(i for i, ln in enumerate(lines) if "mm_region_bank_" in ln)
    with pytest.raises(ParseError, match="the header says"):
        parse_trace("".join(lines[:last] + lines[last + 1:]))


class FakeGuest:
    """Answers record()'s commands: the captured trace for 'cat .../trace', nothing otherwise."""

    name = "fake"

    def __init__(self, trace):
        self.trace, self.commands = trace, []

    def run(self, cmd, timeout=60, check=False):
        self.commands.append(cmd)
        return Result(0, self.trace if cmd.endswith("/trace") else "", "")


def test_record_sets_up_its_instance_and_always_removes_it(bank):
    vm = FakeGuest(bank)
    with record(vm, ["kmem/mm_region_bank_deposit"], name="rh-t", buffer_kb=4096,
                filters={"kmem/mm_region_bank_deposit": "pages > 0"}) as rec:
        assert rec.events.empty   # filled when the block ends
    setup, read, cleanup = vm.commands
    inst = "/sys/kernel/tracing/instances/rh-t"
    assert f"mkdir {inst}" in setup and f"echo 4096 > {inst}/buffer_size_kb" in setup
    assert f"echo global > {inst}/trace_clock" in setup   # CPUs' events in order
    assert setup.index("/filter") < setup.index("/enable")   # filtered from the first event
    assert read.endswith(f"cat {inst}/trace") and f"rmdir {inst}" in cleanup
    assert len(rec.events) == len(parse_trace(bank))
    vm = FakeGuest(bank)
    with pytest.raises(RuntimeError), record(vm, ["kmem/mm_region_bank_deposit"], name="rh-t"):
        raise RuntimeError("the block failed")
    assert f"rmdir {inst}" in vm.commands[-1] and not any(c.endswith("/trace") for c in vm.commands)
