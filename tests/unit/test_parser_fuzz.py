"""Every registered parser on mutated real captures: only ParseError escapes, and u64 counters survive.

Mutations of the captures in tests/data: a number replaced (by 0, 2^63, 2^64-3 as a
region free-count underflow prints, or a negative), a line deleted or duplicated, text
cut at a random point, bytes replaced by garbage. Anything but a frame or a ParseError
(IndexError, OverflowError, ValueError, KeyError, ...) is a bug.
"""

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import ParseError
from harness.metrics import parse_snapshot
from harness.metrics.registry import REGISTRY

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"
#: one real capture per registry entry (capture name relative to a capture directory)
SOURCES = [
    ("6.12-regions-two-node", "zoneinfo"), ("6.12-regions-two-node", "buddyinfo"),
    ("6.12-regions-two-node", "pagetypeinfo"), ("6.12-regions-two-node", "vmstat"),
    ("6.12-regions-two-node", "node0-meminfo"), ("6.12-regions-two-node", "node0-numastat"),
    ("6.12-regions-two-node", "node0-vmstat"), ("6.12-regions-two-node", "mem_regions/regions"),
    ("6.12-regions-two-node", "mem_regions/free_blocks"), ("6.12-regions-two-node", "mem_regions/config"),
    ("6.12-bank-two-node", "mem_regions/regions"), ("6.12-bank-two-node", "mem_regions/zones"),
    ("6.12-vanilla-interleaved-small", "extfrag/unusable_index"),
    ("6.12-vanilla-interleaved-small", "extfrag/extfrag_index"),
    ("6.12-regions-two-node", "dmesg.txt"),
    ("6.12-thpchallenge-two-node", "mm_page_alloc_extfrag-hist"),
    ("6.12-hotplug-four-node", "memory/block_size_bytes"),
]
NUMBER = re.compile(r"(?<![\w.])\d+(?![\w.])")
BIG = [0, 1, 2**63 - 1, 2**63, 2**64 - 3, 2**64 - 1, 10**30]


def test_every_registry_entry_is_fuzzed():
    from harness.metrics.registry import find_entry

    covered = {find_entry(name)[0].capture for _, name in SOURCES}
    missing = [e.capture for e in REGISTRY if e.capture not in covered and e.guest_path != "/sys/firmware/memmap/*/*"]
    assert not missing, f"registry entries without a fuzzed capture: {missing}"


def _mutate(text: str, data: st.DataObject) -> str:
    lines = text.split("\n")
    kind = data.draw(st.sampled_from(["number", "number", "delete", "duplicate", "cut", "garbage"]))
    i = data.draw(st.integers(0, max(0, len(lines) - 1)))
    if kind == "number":
        spots = [(j, m) for j, line in enumerate(lines) for m in NUMBER.finditer(line)]
        if spots:
            j, m = spots[data.draw(st.integers(0, len(spots) - 1))]
            value = data.draw(st.one_of(st.sampled_from(BIG), st.integers(-5, 10**6)))
            lines[j] = lines[j][:m.start()] + str(value) + lines[j][m.end():]
    elif kind == "delete":
        del lines[i]
    elif kind == "duplicate":
        lines.insert(i, lines[i])
    elif kind == "cut":
        return text[:data.draw(st.integers(0, len(text)))]
    else:
        junk = data.draw(st.text(alphabet=":,-=.x \t0123456789abcdefNode", min_size=1, max_size=8))
        lines[i] = lines[i][: len(lines[i]) // 2] + junk
    return "\n".join(lines)


@pytest.mark.parametrize(("capture", "name"), SOURCES, ids=[n for _, n in SOURCES])
# derandomize: CI sees the same cases every run (a failure is a bug, never bad luck);
# the sweep below covers the number positions exhaustively
@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutations_raise_only_parse_errors(capture, name, data):
    text = (CAPTURES / capture / name).read_text()
    mutated = _mutate(text, data)
    try:
        parse_snapshot({name: mutated})
    except ParseError:
        pass


#: captures with an integer counter to underflow (the extfrag indexes are decimals only)
COUNTED = [(c, n) for c, n in SOURCES if n != "dmesg.txt"
           and any(m.group() != "0" for m in NUMBER.finditer((CAPTURES / c / n).read_text()))]


@pytest.mark.parametrize(("capture", "name"), COUNTED, ids=[n for _, n in COUNTED])
def test_u64_counters_are_kept(capture, name):
    """A counter printed as 2^64-3 (an unsigned underflow) is parsed as that value, or rejected by name."""
    text = (CAPTURES / capture / name).read_text()
    # the first counter: numbers on '#' lines are settings (a histogram's size=2048)
    comments = [(m.start(), m.end()) for m in re.finditer(r"(?m)^#.*$", text)]
    first = next(m for m in NUMBER.finditer(text)
                 if m.group() != "0" and not any(a <= m.start() < b for a, b in comments))
    big = 2**64 - 3
    mutated = text[:first.start()] + str(big) + text[first.end():]
    try:
        frames = parse_snapshot({name: mutated})
    except ParseError as exc:
        assert str(exc).startswith(name), exc
        return
    # column by column: to_numpy() of a mixed frame would round through float64
    values = [v for df in frames.values() for col in df.reset_index().columns
              for v in df.reset_index()[col].tolist()]
    assert any(isinstance(v, int | float) and v == big for v in values), f"{name}: 2^64-3 was lost"


@pytest.mark.parametrize(("capture", "name"), SOURCES, ids=[n for _, n in SOURCES])
def test_every_number_replaced_by_a_huge_one(capture, name):
    """Each number position in turn (up to 120 spread over the file) set to 10^30 and to 2^64-3."""
    text = (CAPTURES / capture / name).read_text()
    spots = list(NUMBER.finditer(text))
    step = max(1, len(spots) // 120)
    for m in spots[::step]:
        for value in (10**30, 2**64 - 3):
            mutated = text[:m.start()] + str(value) + text[m.end():]
            try:
                parse_snapshot({name: mutated})
            except ParseError:
                pass
