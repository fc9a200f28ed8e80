"""Parse the one line pfbench prints (harness/guest/files/pfbench.c): fault cost in nanoseconds."""

from __future__ import annotations

import re

from harness.errors import ParseError

_LINE = re.compile(r"^pfbench order=(\d+) pages=(\d+) ns_per_fault=(\d+(?:\.\d+)?)$")


def parse_pfbench(text: str, source: str = "pfbench") -> dict[str, float]:
    """{"order", "pages", "ns_per_fault"} from pfbench's output; ParseError on anything else."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) != 1:
        raise ParseError(source, None, f"expected one pfbench line, got {len(lines)}")
    m = _LINE.match(lines[0].strip())
    if not m:
        raise ParseError(source, 1, f"expected 'pfbench order=O pages=N ns_per_fault=X', got {lines[0]!r}")
    return {"order": float(m[1]), "pages": float(m[2]), "ns_per_fault": float(m[3])}
