"""Read the reference model's inputs from a guest's boot log (dmesg) and kernel .config."""

from __future__ import annotations

import re

from harness.errors import ParseError
from harness.model.inputs import DEFAULT_ZONES, ModelInputs, Range
from harness.model.layout import zones_from_kconfig
from harness.units import memparse

from .dmesg import parse_e820, parse_numa_layout, strip_dmesg_prefix
from .kconfig import parse_config_text

__all__ = ["parse_cmdline", "parse_model_inputs"]

_CMDLINE = "Command line:"
#: printed by the series at boot for every zone with regions (kernel-patches/0001)
_REGIONS_LINE = re.compile(r"node \d+ zone \S+: \d+ memory regions of ")


def parse_cmdline(dmesg_text: str) -> tuple[str, int | None]:
    """The kernel command line dmesg printed and its 1-based line, or ("", None) when it printed none."""
    for lineno, line in enumerate(strip_dmesg_prefix(dmesg_text).splitlines(), 1):
        if line.startswith(_CMDLINE):
            return line.split(":", 1)[1].strip(), lineno
    return "", None


def parse_model_inputs(dmesg_text: str, config_text: str | None, source: str = "dmesg") -> ModelInputs:
    """What the layout model needs that only the guest knows, from its boot log and .config.

    Read from dmesg: the BIOS-e820 table, the SRAT memory ranges, memoryless nodes and
    the command line (mem=, mem_region_size=); from the .config: the zones it builds
    (an x86_64 defconfig's when config_text is None or empty). Raises ParseError naming
    source on a garbled log, a log without BIOS-e820 lines, or a size parameter that is
    not a size.
    """
    e820 = parse_e820(dmesg_text, source)
    firmware = e820[e820["table"] == "BIOS-e820"]
    if firmware.empty:
        raise ParseError(source, None, "no BIOS-e820 lines: not a boot log, or it was cut")
    firmware_map = tuple(
        (int(s), int(e), str(t))
        for s, e, t in zip(firmware["start"].tolist(), firmware["end"].tolist(), firmware["type"].tolist(),
                           strict=True))

    numa = parse_numa_layout(dmesg_text, source)
    srat: dict[int, list[Range]] = {}
    srat_rows = numa.srat_memory
    for node, start, end in zip(srat_rows["node"].tolist(), srat_rows["start"].tolist(), srat_rows["end"].tolist(),
                                strict=True):
        srat.setdefault(int(node), []).append((int(start), int(end)))
    initmem = numa.initmem["memoryless"]
    memoryless = tuple(sorted(int(n) for n, flag in zip(initmem.index.tolist(), initmem.tolist(), strict=True)
                              if flag))

    cmdline, cmdline_line = parse_cmdline(dmesg_text)
    # later duplicates win, as they do for the kernel's early_param handlers
    params = dict(p.split("=", 1) for p in cmdline.split() if "=" in p)

    def size(param: str) -> int | None:
        if param not in params:
            return None
        try:
            return memparse(params[param])
        except ValueError:
            raise ParseError(source, cmdline_line, f"boot parameter {param}={params[param]!r} is not a size") from None

    if config_text:
        options = parse_config_text(config_text, source="config", strict=False)
        zones = zones_from_kconfig({name: opt.value for name, opt in options.items()})
    else:
        zones = DEFAULT_ZONES
    return ModelInputs(
        firmware_map=firmware_map,
        zones=zones,
        cmdline=cmdline,
        mem_limit=size("mem"),
        mem_region_size=size("mem_region_size"),
        srat_ranges={n: tuple(r) for n, r in srat.items()} or None,   # None: the kernel saw no SRAT
        memoryless=memoryless,
        regions_reported=_REGIONS_LINE.search(dmesg_text) is not None,
    )
