"""Parse /proc/vmstat (mm/vmstat.c vmstat_show): one row of "name value" counters.

:func:`parse_vmstat` returns a 1-row DataFrame (index [0]) whose columns are the kernel's
counter names in file order, int64. Values are pages or event counts, except
nr_kernel_stack and nr_shadow_call_stack (KiB) and nr_anon_transparent_hugepages,
nr_shmem_hugepages, nr_shmem_pmdmapped, nr_file_hugepages, nr_file_pmdmapped (THPs).
One row per snapshot makes a time series a concat.
"""

from __future__ import annotations

import pandas as pd

from ._common import ParseError, cached_index, int_frame, lines_of

__all__ = ["parse_vmstat", "parse_name_values"]


def parse_name_values(text: str, source: str) -> dict[str, int]:
    """Parse "name value" lines (vmstat, node vmstat, node numastat) into an ordered dict."""
    out: dict[str, int] = {}
    for lineno, line in enumerate(lines_of(text, source), 1):
        parts = line.split()
        if len(parts) != 2:
            raise ParseError(source, lineno, f"expected 'name value', got {line!r}")
        name, value = parts
        if name in out:
            raise ParseError(source, lineno, f"{name} appears twice")
        try:
            out[name] = int(value)
        except ValueError:
            raise ParseError(source, lineno, f"{name}: expected a number, got {value!r}") from None
    return out


def parse_vmstat(text: str, source: str = "vmstat") -> pd.DataFrame:
    """Parse the text of /proc/vmstat into a 1-row frame."""
    values = parse_name_values(text, source)
    return int_frame([list(values.values())], cached_index([0]), list(values))
