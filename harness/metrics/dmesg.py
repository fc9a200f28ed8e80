"""Parse the boot memory layout from dmesg: e820 tables, SRAT, NUMA node setup, zone and node ranges.

All addresses are bytes; every ``end`` is EXCLUSIVE (the kernel prints inclusive ends,
"[mem 0x0-0x9fbff]" becomes start 0, end 0x9fc00), and ``start_pfn``/``end_pfn`` are the
same bounds in 4 KiB x86_64 pages (PAGE_SHIFT 12). Lines may carry the "[    0.000000] "
timestamp or not (console logs, ``dmesg``, ``dmesg -t``): :func:`strip_dmesg_prefix`
removes it. ParseError line numbers are 1-based lines of the text given.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

import pandas as pd

from harness.units import PAGE_SHIFT

from ._common import ParseError

__all__ = ["strip_dmesg_prefix", "parse_e820", "parse_numa_layout", "NumaLayout"]

# "<6>" syslog level (dmesg -r), "[    0.000000]" timestamp and "[    T1]" caller id
# (CONFIG_PRINTK_CALLER); exactly one space follows, the rest is the message, whose own
# indentation ("  DMA      [mem ...") carries meaning and must survive.
_PREFIX = re.compile(r"^(?:<\d+>)?(?:\[\s*\d+\.\d+\](?:\[\s*[TC]\d+\])? ?)?")
_E820 = re.compile(r"^([\w-]+): \[mem 0x([0-9a-f]{16})-0x([0-9a-f]{16})\] (\S.*)$")
_E820_START = re.compile(r"^(?:BIOS-e820|BIOS-e801|BIOS-88|modified|user|extended|Xen): \[mem")
_MEM = r"\[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\]"
_SRAT_MEM = re.compile(r"^(?:ACPI: )?SRAT: Node (\d+) PXM (\d+) " + _MEM + r"( hotplug)?( non-volatile)?$")
_SRAT_CPU = re.compile(r"^(?:ACPI: )?SRAT: PXM (\d+) -> (X2APIC|APIC) 0x([0-9a-f]+) -> Node (\d+)$")
_INITMEM = re.compile(r"^Initmem setup node (\d+) (?:" + _MEM + r"|(as memoryless))$")
_NODE_DATA = re.compile(r"^NODE_DATA\((\d+)\) allocated " + _MEM + "$")
_ZONE_RANGE = re.compile(r"^  (\S+)\s+(?:" + _MEM + r"|(empty))$")
_MOVABLE = re.compile(r"^  Node (\d+): 0x([0-9a-f]+)$")
_EARLY = re.compile(r"^  node +(\d+): " + _MEM + "$")
_UNAVAIL = re.compile(r"^On node (\d+), zone (\S+): (\d+) pages in unavailable ranges$")


def strip_dmesg_prefix(text: str) -> str:
    """Remove the printk timestamp (and level / caller id) from every line of text."""
    if "\n" not in text:
        return _PREFIX.sub("", text.rstrip("\r"), count=1)
    return "\n".join(_PREFIX.sub("", line.rstrip("\r"), count=1) for line in text.split("\n"))


def _messages(text: str) -> Iterator[tuple[int, str]]:
    for lineno, line in enumerate(text.split("\n"), 1):
        yield lineno, _PREFIX.sub("", line.rstrip("\r"), count=1)


#: one parsed message: column name -> value
_Row = dict[str, object]


def _range_cols(start: int, end_inclusive: int) -> dict[str, int]:
    end = end_inclusive + 1
    return {"start": start, "end": end, "start_pfn": start >> PAGE_SHIFT, "end_pfn": end >> PAGE_SHIFT}


def parse_e820(text: str, source: str = "dmesg") -> pd.DataFrame:
    """Every e820 table dmesg prints ("BIOS-e820", "modified", "user", ...).

    Returns a frame with a RangeIndex and columns ``table`` (the printed prefix),
    ``start``, ``end`` (exclusive), ``size`` (bytes) and ``type`` ("usable",
    "reserved", "ACPI data", ...), in print order.
    """
    rows: list[_Row] = []
    for lineno, msg in _messages(text):
        m = _E820.match(msg)
        if m is None:
            if _E820_START.match(msg):
                raise ParseError(source, lineno, f"garbled e820 line {msg!r}")
            continue
        start, last = int(m[2], 16), int(m[3], 16)
        if last < start:
            raise ParseError(source, lineno, "e820 entry ends before it starts")
        rows.append({"table": m[1], "start": start, "end": last + 1, "size": last + 1 - start,
                     "type": m[4].rstrip()})
    try:
        return pd.DataFrame(rows, columns=["table", "start", "end", "size", "type"]).astype(
            {"start": "int64", "end": "int64", "size": "int64"})
    except OverflowError:
        raise ParseError(source, None, "an e820 address beyond 64 bits: the log is garbled") from None


class NumaLayout(NamedTuple):
    """Frames of the NUMA/zone layout messages; column units are in the module docstring."""

    srat_memory: pd.DataFrame   # node, pxm, start, end, start_pfn, end_pfn, hotplug, non_volatile
    srat_cpus: pd.DataFrame     # pxm, apic_kind (APIC/X2APIC), apic_id, node (pr_debug: often empty)
    initmem: pd.DataFrame       # index node; start, end, start_pfn, end_pfn (<NA> when memoryless), memoryless
    node_data: pd.DataFrame     # index node; start, end of the pg_data_t allocation
    zone_ranges: pd.DataFrame   # index zone; start, end, start_pfn, end_pfn (<NA> when empty), empty
    movable_zone_start: pd.DataFrame  # index node; start, start_pfn
    early_node_ranges: pd.DataFrame   # node, start, end, start_pfn, end_pfn (memblock ranges)
    unavailable: pd.DataFrame   # node, zone, pages ("N pages in unavailable ranges", one row per message)


_RANGE = ["start", "end", "start_pfn", "end_pfn"]

_BOOL_COLS = frozenset(("hotplug", "non_volatile", "memoryless", "empty"))
_TEXT_COLS = frozenset(("zone", "apic_kind"))


def _frame(rows: list[_Row], columns: list[str], index: str | None = None,
           nullable: tuple[str, ...] = ()) -> pd.DataFrame:
    # explicit dtypes: an empty list of rows must still give int/bool columns
    df = pd.DataFrame(rows, columns=columns)
    for col in columns:
        if col in nullable:
            df[col] = df[col].astype("Int64")
        elif col in _BOOL_COLS:
            df[col] = df[col].astype(bool)
        elif col not in _TEXT_COLS:
            df[col] = df[col].astype("int64")
    return df.set_index(index) if index else df


def parse_numa_layout(text: str, source: str = "dmesg") -> NumaLayout:
    """Parse SRAT, Initmem, NODE_DATA, "Zone ranges", "Movable zone start" and "Early memory node ranges"."""
    srat_mem: list[_Row] = []
    srat_cpu: list[_Row] = []
    initmem: list[_Row] = []
    node_data: list[_Row] = []
    zones: list[_Row] = []
    movable: list[_Row] = []
    early: list[_Row] = []
    unavail: list[_Row] = []
    section: str | None = None
    for lineno, msg in _messages(text):
        if section is not None:
            if msg.startswith("  "):
                pattern = {"zones": _ZONE_RANGE, "movable": _MOVABLE, "early": _EARLY}[section]
                m = pattern.match(msg)
                if m is None:
                    raise ParseError(source, lineno, f"garbled line in the {section} list: {msg!r}")
                if section == "zones":
                    row: _Row = {"zone": m[1], "empty": m[4] is not None}
                    row.update(_range_cols(int(m[2], 16), int(m[3], 16)) if m[2] else
                               dict.fromkeys(_RANGE))
                    zones.append(row)
                elif section == "movable":
                    start = int(m[2], 16)
                    movable.append({"node": int(m[1]), "start": start, "start_pfn": start >> PAGE_SHIFT})
                else:
                    early.append({"node": int(m[1]), **_range_cols(int(m[2], 16), int(m[3], 16))})
                continue
            section = None
        if msg == "Zone ranges:":
            section = "zones"
        elif msg == "Movable zone start for each node":
            section = "movable"
        elif msg == "Early memory node ranges":
            section = "early"
        elif "SRAT: " in msg:
            m = _SRAT_MEM.match(msg)
            if m:
                srat_mem.append({"node": int(m[1]), "pxm": int(m[2]),
                                 **_range_cols(int(m[3], 16), int(m[4], 16)),
                                 "hotplug": bool(m[5]), "non_volatile": bool(m[6])})
                continue
            m = _SRAT_CPU.match(msg)
            if m:
                srat_cpu.append({"pxm": int(m[1]), "apic_kind": m[2], "apic_id": int(m[3], 16),
                                 "node": int(m[4])})
            elif re.match(r"^(?:ACPI: )?SRAT: (?:Node \d|PXM \d)", msg) and "skipped" not in msg \
                    and "ignored" not in msg:
                raise ParseError(source, lineno, f"garbled SRAT line {msg!r}")
        elif msg.startswith("Initmem setup node"):
            m = _INITMEM.match(msg)
            if m is None:
                raise ParseError(source, lineno, f"garbled Initmem line {msg!r}")
            row = {"node": int(m[1]), "memoryless": m[4] is not None}
            row.update(_range_cols(int(m[2], 16), int(m[3], 16)) if m[2] else dict.fromkeys(_RANGE))
            initmem.append(row)
        elif msg.startswith("NODE_DATA("):
            m = _NODE_DATA.match(msg)
            if m is None:
                raise ParseError(source, lineno, f"garbled NODE_DATA line {msg!r}")
            node_data.append({"node": int(m[1]), "start": int(m[2], 16), "end": int(m[3], 16) + 1})
        elif msg.startswith("On node "):
            m = _UNAVAIL.match(msg)
            if m is None:
                raise ParseError(source, lineno, f"garbled unavailable-ranges line {msg!r}")
            unavail.append({"node": int(m[1]), "zone": m[2], "pages": int(m[3])})
    try:
        return _layout(srat_mem, srat_cpu, initmem, node_data, zones, movable, early, unavail)
    except OverflowError:
        # a node number, pxm or page count no kernel prints (beyond 64 bits): garbled text
        raise ParseError(source, None, "a NUMA layout number beyond 64 bits: the log is garbled") from None


def _layout(srat_mem: list[_Row], srat_cpu: list[_Row], initmem: list[_Row], node_data: list[_Row],
            zones: list[_Row], movable: list[_Row], early: list[_Row], unavail: list[_Row]) -> NumaLayout:
    return NumaLayout(
        _frame(srat_mem, ["node", "pxm", *_RANGE, "hotplug", "non_volatile"]),
        _frame(srat_cpu, ["pxm", "apic_kind", "apic_id", "node"]),
        _frame(initmem, ["node", *_RANGE, "memoryless"], "node", nullable=tuple(_RANGE)),
        _frame(node_data, ["node", "start", "end"], "node"),
        _frame(zones, ["zone", *_RANGE, "empty"], "zone", nullable=tuple(_RANGE)),
        _frame(movable, ["node", "start", "start_pfn"], "node"),
        _frame(early, ["node", *_RANGE]),
        _frame(unavail, ["node", "zone", "pages"]),
    )
