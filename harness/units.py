"""Units and sizes: byte multiples, the page size, and the two size spellings we read.

``parse_size`` reads sizes people write in YAML (``512M``, ``1.5G``, ``0x80000000``);
``memparse`` reads sizes the kernel reads on its command line (``mem=2G``,
``mem_region_size=16M``), the way lib/cmdline.c:memparse() does.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

#: x86_64 base pages
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT

_SUFFIX = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": TiB}


def parse_size(value: Any) -> int:
    """Bytes from an int or a string like ``512M``, ``1.5G``, ``0x80000000`` (K/M/G/T are powers of 1024).

    Raises ValueError with a message fit to follow a field name.
    """
    if isinstance(value, bool):
        raise ValueError("expected a size, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a size such as 512M or 2G, got {value!r}")
    text = value.strip()
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", text):
        return int(text, 16)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"expected a size such as 512M or 2G, got {value!r}")
    amount = Decimal(m.group(1)) * _SUFFIX[m.group(2).upper()]
    if amount != amount.to_integral_value():
        raise ValueError(f"{value!r} is not a whole number of bytes")
    return int(amount)


def memparse(value: str) -> int:
    """A kernel command-line size (``16M``, ``0x1000``, ``2G``); raises ValueError otherwise."""
    stripped = value.rstrip("KMGTkmgt")
    suffix = value[len(stripped):].upper()
    if len(suffix) > 1 or not stripped:
        raise ValueError(f"{value!r} is not a size")
    try:
        return int(stripped, 0) * _SUFFIX[suffix]
    except ValueError:
        raise ValueError(f"{value!r} is not a size") from None


def fmt_size(n: int) -> str:
    """The shortest exact K/M/G spelling of ``n`` bytes (used in QEMU args and reports)."""
    for suffix, unit in (("G", GiB), ("M", MiB), ("K", KiB)):
        if n and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)
