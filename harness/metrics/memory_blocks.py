"""Parse /sys/devices/system/memory: the memory blocks and the zone each one is online in.

Memory hotplug works on blocks (``block_size_bytes``, hexadecimal: 128 MiB on a small
x86_64 machine). Per block ``memoryN`` the kernel (drivers/base/memory.c) prints:

- ``state``: ``online``, ``offline`` or ``going-offline``;
- ``valid_zones``: for an online block, the zone it is in, or ``none`` when the block spans
  more than one zone (such a block can never be offlined); for an offline block, the zones
  it could be onlined into, the default first.

``parse_memory_blocks`` gives one row per block, index ``block``: start_pfn, end_pfn
(exclusive; pages), state, and ``zone``: the zone of an online block, ``none`` for a
block across zones, empty (None) for an offline one. The layout model
(harness.model.hotplug) takes it to follow blocks that hotplug moved between zones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pandas as pd

from harness.units import PAGE_SHIFT

from ._common import ParseError

__all__ = ["STATES", "parse_memory_blocks"]

STATES = ("online", "offline", "going-offline")
COLUMNS = ["start_pfn", "end_pfn", "state", "zone"]


def _one_line(text: str, source: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        raise ParseError(source, None, f"expected one line, got {len(lines)}")
    return lines[0]


#: a file's name ends in one of these ("/sys/devices/system/memory/memory12/state", "memory/block_size_bytes")
NAME = re.compile(r"(?:^|/)(?:memory(?P<block>\d+)/(?P<field>state|valid_zones)|block_size_bytes)$")


def parse_memory_blocks(files: Mapping[str, str]) -> pd.DataFrame:
    """One row per memory block from {name: text} of block_size_bytes and each block's
    state and valid_zones (capture names or guest paths); errors name the file."""
    size_name = None
    blocks: dict[int, dict[str, tuple[str, str]]] = {}
    for name, text in files.items():
        m = NAME.search(name)
        if m is None:
            raise ParseError(name, None, "not a memory block file (block_size_bytes, memoryN/state or valid_zones)")
        if m["block"] is None:
            size_name, size_text = name, text
        else:
            blocks.setdefault(int(m["block"]), {})[m["field"]] = (name, text)
    if size_name is None:
        if not blocks:
            return pd.DataFrame(columns=COLUMNS, index=pd.Index([], name="block"))
        first = next(iter(next(iter(blocks.values())).values()))[0]
        raise ParseError(first, None, "memory blocks without block_size_bytes: capture it beside them")
    value = _one_line(size_text, size_name)
    try:
        size = int(value, 16)
    except ValueError:
        raise ParseError(size_name, 1, f"not a hexadecimal byte count: {value!r}") from None
    if size <= 0 or size & (size - 1) or size >> PAGE_SHIFT == 0:
        raise ParseError(size_name, 1, f"block size {size:#x} is not a power of two of whole pages")
    pages = size >> PAGE_SHIFT
    rows = []
    for block in sorted(blocks):
        got = blocks[block]
        missing = [f for f in ("state", "valid_zones") if f not in got]
        if missing:
            raise ParseError(next(iter(got.values()))[0], None, f"memory{block} has no {missing[0]} beside it")
        state_name, state_text = got["state"]
        state = _one_line(state_text, state_name)
        if state not in STATES:
            raise ParseError(state_name, 1, f"unknown state {state!r} (known: {', '.join(STATES)})")
        zones_name, zones_text = got["valid_zones"]
        zones = _one_line(zones_text, zones_name).split()
        zone: str | None = None
        if state == "online":
            if len(zones) != 1:
                raise ParseError(zones_name, 1, f"an online block names its one zone, got {' '.join(zones)!r}")
            zone = zones[0]
        rows.append((block, block * pages, (block + 1) * pages, state, zone))
    frame = pd.DataFrame(rows, columns=["block", *COLUMNS]).set_index("block")
    return frame.astype({"start_pfn": "int64", "end_pfn": "int64"})
