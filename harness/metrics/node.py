"""Parse the per-node sysfs files of drivers/base/node.c: nodeN/meminfo, nodeN/numastat, nodeN/vmstat.

Each parser returns a 1-row DataFrame indexed by ``node`` so several nodes concat into
one frame:

``parse_node_meminfo``   columns named ``<Field>_kB`` (KiB, the kernel's "kB") except the
                         HugePages_Total/Free/Surp counts, which have no unit in the file
                         and are counts of default-size huge pages. The node number is
                         read from the text ("Node 0 MemTotal: ...").
``parse_node_numastat``  numa_hit, numa_miss, numa_foreign, interleave_hit, local_node,
                         other_node (page allocations).
``parse_node_vmstat``    the zone, numa and node counters summed for the node (pages,
                         except the KiB and THP counters harness.metrics.vmstat names).

numastat and vmstat do not print their node, so it is ``node=`` or taken from the
source name ("node1-vmstat", ".../node1/vmstat").
"""

from __future__ import annotations

import pandas as pd

from ._common import ParseError, cached_index, int_frame, lines_of, node_from_source
from .vmstat import parse_name_values

__all__ = ["parse_node_meminfo", "parse_node_numastat", "parse_node_vmstat"]


def parse_node_meminfo(text: str, source: str = "meminfo") -> pd.DataFrame:
    """Parse nodeN/meminfo ("Node 0 MemTotal:  123 kB") into a 1-row frame indexed by node."""
    node = None
    values: dict[str, int] = {}
    for lineno, line in enumerate(lines_of(text, source), 1):
        parts = line.split()
        if len(parts) not in (4, 5) or parts[0] != "Node" or parts[2][-1:] != ":":
            raise ParseError(source, lineno, f"garbled meminfo line {line!r}")
        try:
            this = int(parts[1])
            value = int(parts[3])
        except ValueError:
            raise ParseError(source, lineno, f"expected numbers in {line!r}") from None
        if node is None:
            node = this
        elif this != node:
            raise ParseError(source, lineno, f"node {this} in a file of node {node}")
        name = parts[2][:-1]
        if len(parts) == 5:
            if parts[4] != "kB":
                raise ParseError(source, lineno, f"unknown unit {parts[4]!r}")
            name += "_kB"
        values[name] = value
    return int_frame([list(values.values())], cached_index([node], "node"), list(values))


def _node_counters(text: str, source: str, node: int | None) -> pd.DataFrame:
    node = node_from_source(source, node)
    values = parse_name_values(text, source)
    return int_frame([list(values.values())], cached_index([node], "node"), list(values))


def parse_node_numastat(text: str, source: str = "numastat", node: int | None = None) -> pd.DataFrame:
    """Parse nodeN/numastat into a 1-row frame indexed by node."""
    return _node_counters(text, source, node)


def parse_node_vmstat(text: str, source: str = "vmstat", node: int | None = None) -> pd.DataFrame:
    """Parse nodeN/vmstat into a 1-row frame indexed by node."""
    return _node_counters(text, source, node)
