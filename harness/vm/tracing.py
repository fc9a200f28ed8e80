"""Record tracepoints of a running guest in a tracefs instance of their own.

An instance (/sys/kernel/tracing/instances/NAME) has its own ring buffer and event
switches, so a recording never disturbs the global buffer, the histogram triggers the
guest's init sets (harness/guest/files/init.sh), or another recording.

    with record(vm, ["kmem/mm_region_bank_deposit"]) as rec:
        vm.run(...)
    rec.events   # parse_trace's frame: one row per event, its fields as columns

Recording.mark() writes a marker into the buffer: counters read between two markers can
be compared exactly with the events recorded between them.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import pandas as pd

from harness.errors import UserError
from harness.metrics.trace import parse_trace
from harness.vm.snapshots import Guest

__all__ = ["INSTANCES", "Recording", "record"]

INSTANCES = "/sys/kernel/tracing/instances"


@dataclass
class Recording:
    """What a record() block recorded: set when the block ends."""

    instance: str
    events: pd.DataFrame = field(default_factory=pd.DataFrame)

    def mark(self, tag: str) -> str:
        """A shell command that writes ``tag`` into the recording (an event with text ``tag``)."""
        return f"echo {shlex.quote(tag)} > {shlex.quote(self.instance)}/trace_marker"


@contextmanager
def record(vm: Guest, events: Sequence[str], name: str = "rh", buffer_kb: int = 8192,
           filters: Mapping[str, str] | None = None) -> Iterator[Recording]:
    """Enable ``events`` ("system/event") in instance ``name`` for the block; its events afterwards.

    ``filters`` maps an event to a tracefs filter expression ("nr_taken > 0"). The buffer
    uses the ``global`` trace clock, so events of different CPUs are in the order they
    happened (markers included). The instance
    is removed however the block ends; a buffer that wrapped is a ParseError (enlarge
    ``buffer_kb``), so the events counted are all the events there were.
    """
    if not events:
        raise UserError("record(): no tracepoint to record")
    unknown = sorted(set(filters or {}) - set(events))
    if unknown:
        raise UserError(f"record(): filters for events not recorded: {', '.join(unknown)}")
    inst = f"{INSTANCES}/{name}"
    q = shlex.quote
    # the default clock is each CPU's own ("local"): events of two CPUs would merge out of order
    on = [f"echo {int(buffer_kb)} > {q(inst)}/buffer_size_kb", f"echo global > {q(inst)}/trace_clock"]
    for ev in events:
        if ev in (filters or {}):
            on.append(f"echo {q((filters or {})[ev])} > {q(f'{inst}/events/{ev}/filter')}")
        on.append(f"echo 1 > {q(f'{inst}/events/{ev}/enable')}")
    off = "; ".join(f"echo 0 > {q(f'{inst}/events/{ev}/enable')}" for ev in events)
    rec = Recording(inst)
    vm.run(f"rmdir {q(inst)} 2>/dev/null; mkdir {q(inst)} && " + " && ".join(on), check=True)
    try:
        yield rec
        text = vm.run(f"{off}; cat {q(inst)}/trace", check=True).stdout
        rec.events = parse_trace(text, f"{vm.name}:{inst}/trace")
    finally:
        vm.run(f"{off}; rmdir {q(inst)}", check=False)
