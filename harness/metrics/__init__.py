"""Parsers of the kernel's memory-management files into pandas DataFrames, one module per file.

Every parser is pure (text in, DataFrame out) and raises
:class:`harness.errors.ParseError` naming the source and 1-based line on truncated or
garbled input. Units: pages unless a module's ``UNITS``/docstring says otherwise.
"""

from .buddyinfo import parse_buddyinfo
from .dmesg import NumaLayout, parse_e820, parse_numa_layout, strip_dmesg_prefix
from .firmware_memmap import parse_firmware_memmap, read_firmware_memmap
from .mem_regions import parse_mem_free_blocks, parse_mem_regions, parse_mem_regions_config
from .node import parse_node_meminfo, parse_node_numastat, parse_node_vmstat
from .pagetypeinfo import PageTypeInfo, parse_pagetypeinfo
from .region_alloc_test import parse_alloc_pfns, parse_control_result
from .snapshot import load_capture, parse_snapshot, read_capture_dir
from .vmstat import parse_vmstat
from .zoneinfo import ZoneInfo, parse_zoneinfo

__all__ = [
    "NumaLayout", "PageTypeInfo", "ZoneInfo",
    "load_capture", "parse_alloc_pfns", "parse_buddyinfo", "parse_control_result", "parse_e820",
    "parse_firmware_memmap", "parse_mem_free_blocks", "parse_mem_regions",
    "parse_mem_regions_config", "parse_node_meminfo", "parse_node_numastat", "parse_node_vmstat",
    "parse_numa_layout", "parse_pagetypeinfo", "parse_snapshot", "parse_vmstat",
    "parse_zoneinfo", "read_capture_dir", "read_firmware_memmap", "strip_dmesg_prefix",
]
