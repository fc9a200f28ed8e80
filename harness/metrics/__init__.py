"""Parsers of the kernel's memory-management files into pandas DataFrames, one module per file.

Every parser is pure (text in, DataFrame out) and raises
:class:`harness.errors.ParseError` naming the source and 1-based line on truncated or
garbled input. Units: pages unless a module's docstring says otherwise.
harness.metrics.registry lists every file with its parser; harness.metrics.snapshot
reads and parses whole snapshots; harness.vm.snapshots takes them from a running guest.
"""

from .bootlog import parse_cmdline, parse_model_inputs
from .buddyinfo import parse_buddyinfo
from .dmesg import NumaLayout, parse_e820, parse_numa_layout, strip_dmesg_prefix
from .firmware_memmap import parse_firmware_memmap, read_firmware_memmap
from .kconfig import ConfigOption, parse_config_text
from .mem_regions import parse_mem_free_blocks, parse_mem_regions, parse_mem_regions_config, parse_mem_zones
from .node import parse_node_meminfo, parse_node_numastat, parse_node_vmstat
from .pagetypeinfo import PageTypeInfo, parse_pagetypeinfo
from .region_alloc_test import parse_alloc_pfns, parse_control_result
from .registry import REGISTRY, KernelFile, live_paths
from .snapshot import MARK, Snapshot, capture_name, load_capture, parse_snapshot, snapshot_command, split_snapshot
from .trace import parse_trace
from .vmstat import parse_vmstat
from .zoneinfo import ZoneInfo, parse_zoneinfo

__all__ = [
    "MARK", "REGISTRY",
    "ConfigOption", "KernelFile", "NumaLayout", "PageTypeInfo", "Snapshot", "ZoneInfo",
    "capture_name", "live_paths", "load_capture",
    "parse_alloc_pfns", "parse_buddyinfo", "parse_cmdline", "parse_config_text", "parse_control_result",
    "parse_e820", "parse_firmware_memmap", "parse_mem_free_blocks", "parse_mem_regions",
    "parse_mem_regions_config", "parse_mem_zones", "parse_model_inputs", "parse_node_meminfo", "parse_node_numastat",
    "parse_node_vmstat", "parse_numa_layout", "parse_pagetypeinfo", "parse_snapshot", "parse_trace", "parse_vmstat",
    "parse_zoneinfo", "read_firmware_memmap", "snapshot_command", "split_snapshot", "strip_dmesg_prefix",
]
