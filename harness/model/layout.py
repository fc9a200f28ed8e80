"""Predict the node and zone layout a Linux 6.12 x86_64 kernel builds from e820 + SRAT.

The model replays, on plain data, the boot steps that decide /proc/zoneinfo's
``spanned``, ``present`` and ``start_pfn``:

1. e820 sanitising (arch/x86/kernel/e820.c e820__update_table: overlaps resolve to the
   highest type number), ``mem=`` (parse_memopt: RAM above the limit address is removed),
   trim_bios_range (arch/x86/kernel/setup.c: the first 4 KiB becomes reserved, RAM in
   640 KiB-1 MiB is removed);
2. max_pfn = end of the last "usable" or "ACPI data" entry (e820__end_ram_pfn);
3. memblock.memory = the usable entries, merged, then trimmed to whole pages
   (memblock_trim_memory: start rounded up, end rounded down);
4. NUMA (mm/numa_memblks.c numa_cleanup_meminfo + numa_register_meminfo): SRAT blocks
   clipped to [start of DRAM, end of DRAM), blocks without RAM dropped, same-node blocks
   joined across holes no other node owns, then memblock_set_node() gives each memblock
   piece its nid; a piece's pfns are PFN_UP(base)..PFN_DOWN(end) (for_each_mem_pfn_range);
   more than 1 MiB of RAM outside every node makes the kernel reject the SRAT
   (memblock_validate_numa_coverage);
5. zones (arch/x86/mm/init.c zone_sizes_init + mm/mm_init.c free_area_init): zone
   boundaries DMA < 16 MiB <= DMA32 < 4 GiB <= Normal < max_pfn, the first zone starting at
   the first memblock pfn (so pfn 1 on PC firmware, never 0); per node
   zone_spanned_pages_in_node / zone_absent_pages_in_node / calculate_node_totalpages,
   including its rule that an empty zone gets zone_start_pfn 0.

``spanned``, ``present`` and ``start_pfn`` are exact. ``managed`` (present minus pages kept
by boot-time reservations) depends on the kernel image size, KASLR, page tables, hash
tables and swiotlb, so it is given as bounds:

* ``managed_max`` = present minus the node's pages of this zone below 1 MiB: x86_64 6.12
  always memblock_reserve()s the whole first MiB (arch/x86/realmode/init.c
  reserve_real_mode) and never frees it (on a q35 guest DMA: present 3998, managed 3840);
* ``managed_min`` = managed_max minus the node's boot reservation budget, which is the
  node's memmap (512 pages of struct page per 128 MiB section holding node memory,
  SPARSEMEM_VMEMMAP, 64-byte struct page) plus ``boot_reserve_bytes`` (kernel image, page
  tables, per-cpu areas, hash tables, log buffer), plus 64 MiB of swiotlb when max_pfn is
  above 4 GiB (pci_swiotlb_detect). Memblock allocates top-down anywhere in the node, so
  any one zone may carry the whole budget; the node-level MemTotal bound subtracts the
  budget once, which makes it tighter than the sum of the zone bounds.

/proc/zoneinfo prints every zone of every online node (walk_zones_in_node with
assert_populated false): for an unpopulated zone (present 0) it prints pages free,
spanned, present, managed and protection but stops before ``start_pfn``; the kernel's
value for a zone with spanned 0 is 0 (calculate_node_totalpages). The model keeps the
kernel's value (0) and the checks only compare ``start_pfn`` of populated zones.

Not modelled: movablecore=/kernelcore= (ZONE_MOVABLE sizing), memmap=, mirrored memory,
MTRR trimming (QEMU's MTRRs cover all RAM), memoryless nodes (nodes with CPUs only are
left out of the frames), NUMA emulation (numa=fake), ZONE_DEVICE content (the zone is
listed but always empty at boot). Memory hotplug that moved blocks between zones is
harness.model.hotplug's: it turns this boot layout into the current one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import pandas as pd

from harness.model import ModelInputError
from harness.model.inputs import DeclaredNodes, E820Entry, ModelInputs, Range
from harness.units import PAGE_SHIFT, PAGE_SIZE, KiB, MiB

KIB_PER_PAGE = PAGE_SIZE // KiB

# arch/x86/include/asm/dma.h
MAX_DMA_PFN = (16 * MiB) >> PAGE_SHIFT
MAX_DMA32_PFN = 1 << (32 - PAGE_SHIFT)

# arch/x86/include/asm/sparsemem.h: SECTION_SIZE_BITS 27 on x86_64
SECTION_PAGES = 1 << (27 - PAGE_SHIFT)
STRUCT_PAGE_BYTES = 64
MEMMAP_PAGES_PER_SECTION = SECTION_PAGES * STRUCT_PAGE_BYTES // PAGE_SIZE

# arch/x86/kernel/setup.c trim_bios_range: BIOS_BEGIN..BIOS_END
BIOS_BEGIN = 0xA0000
BIOS_END = 0x100000
# arch/x86/realmode/init.c: memblock_reserve(0, SZ_1M), never freed
LOW_RESERVED_END_PFN = MiB >> PAGE_SHIFT
# arch/x86/mm/numa.c numa_register_nodes: memblock_validate_numa_coverage(SZ_1M)
NUMA_COVERAGE_SLACK_BYTES = MiB
# kernel/dma/swiotlb.c IO_TLB_DEFAULT_SIZE
SWIOTLB_BYTES = 64 * MiB

DEFAULT_REGION_SIZE = 512 * MiB
# Allowance for boot reservations other than the memmap: a defconfig 6.12 kernel keeps
# about 30-40 MiB of image after init, plus page tables, per-cpu areas and hash tables.
DEFAULT_BOOT_RESERVE_BYTES = 128 * MiB
# PAGE_SIZE << MAX_PAGE_ORDER on x86_64: a region must hold the largest buddy block
MIN_REGION_SIZE = PAGE_SIZE << 10

# enum e820_type (arch/x86/include/asm/e820/types.h), keyed by the name e820_print_type uses
E820_RAM = 1
E820_RESERVED = 2
E820_ACPI = 3
E820_RESERVED_KERN = 128
E820_TYPES = {
    "usable": E820_RAM,
    "reserved": E820_RESERVED,
    "ACPI data": E820_ACPI,
    "ACPI NVS": 4,
    "unusable": 5,
    "persistent (type 7)": 7,
    "persistent (type 12)": 12,
    "soft reserved": 0xEFFFFFFF,
    "reserved kernel": E820_RESERVED_KERN,
}

# enum zone_type order on x86_64 (no HIGHMEM); Normal and Movable always exist.
ZONE_ORDER = ("DMA", "DMA32", "Normal", "Movable", "Device")
ALWAYS_ZONES = ("Normal", "Movable")
# zone -> the Kconfig option (without CONFIG_) that builds it
OPTIONAL_ZONES = {"DMA": "ZONE_DMA", "DMA32": "ZONE_DMA32", "Device": "ZONE_DEVICE"}

ZONE_COLUMNS = ["start_pfn", "end_pfn", "spanned", "present", "managed_min", "managed_max"]
NODE_COLUMNS = [
    "node_start_pfn",
    "node_spanned",
    "node_present",
    "reserve_budget_pages",
    "memtotal_kb_min",
    "memtotal_kb_max",
]

# an e820 entry while the model works on it: start, end exclusive, enum e820_type code
_Entry = tuple[int, int, int]


@dataclass(frozen=True)
class Layout:
    """Everything the model derived: zone and node frames plus the memblock facts behind them."""

    #: index (node, zone), columns ZONE_COLUMNS; pages; end_pfn exclusive
    zones: pd.DataFrame
    #: index node, columns NODE_COLUMNS; pages except memtotal_* in kB
    nodes: pd.DataFrame
    #: node -> sorted, disjoint pfn ranges [start, end) of that node's memblock memory
    memory: dict[int, list[Range]]
    #: zone -> (lowest, highest) possible pfn, end exclusive (arch_zone_*_possible_pfn)
    zone_bounds: dict[str, Range]
    max_pfn: int
    #: e820 after sanitising, mem= and trim_bios_range: (start, end_exclusive, type name)
    e820: list[tuple[int, int, str]] = field(default_factory=list)
    region_size_pages: int = DEFAULT_REGION_SIZE >> PAGE_SHIFT
    # after memory hotplug (harness.model.hotplug.apply_memory_blocks); a boot layout leaves
    # them at their defaults
    #: the zones as booted, which the regions' geometry keeps; None: ``zones`` are the boot ones
    region_zones: pd.DataFrame | None = None
    #: node -> pfn ranges of boot memory no longer in its boot zone (offline or moved)
    away: dict[int, list[Range]] = field(default_factory=dict)
    #: (node, zone) -> pages the zone holds outside its regions (blocks onlined into it)
    untracked: pd.Series | None = None


def zones_from_kconfig(options: Mapping[str, str]) -> tuple[str, ...]:
    """Return the zones a kernel config builds, in zone_type order (Normal, Movable always).

    options: option name without the CONFIG_ prefix -> value, as the ConfigOption values
    of harness.metrics.kconfig.parse_config_text ({"ZONE_DMA32": "y", ...}).
    """
    have = {z for z, opt in OPTIONAL_ZONES.items() if options.get(opt) == "y"}
    return tuple(z for z in ZONE_ORDER if z in have or z in ALWAYS_ZONES)


def _type_code(name: str) -> int:
    if name in E820_TYPES:
        return E820_TYPES[name]
    if name.startswith("type ") and name[5:].isdigit():
        return int(name[5:])
    raise ModelInputError(f"firmware_map: unknown e820 type {name!r} (known: {sorted(E820_TYPES)})")


def _type_name(code: int) -> str:
    for name, value in E820_TYPES.items():
        if value == code:
            return name
    return f"type {code}"


def _sanitize_e820(entries: list[_Entry]) -> list[_Entry]:
    """Resolve overlaps like e820__update_table(): the highest type number wins; merge neighbours."""
    points = sorted({p for s, e, _ in entries for p in (s, e)})
    out: list[_Entry] = []
    for lo, hi in pairwise(points):
        covering = [t for s, e, t in entries if s <= lo and e >= hi]
        if not covering:
            continue
        t = max(covering)
        if out and out[-1][1] == lo and out[-1][2] == t:
            out[-1] = (out[-1][0], hi, t)
        else:
            out.append((lo, hi, t))
    return out


def _remove_ram(entries: list[_Entry], lo: int, hi: int) -> list[_Entry]:
    """e820__range_remove(lo, hi - lo, E820_TYPE_RAM, 1): cut [lo, hi) out of RAM entries only."""
    out: list[_Entry] = []
    for s, e, t in entries:
        if t != E820_RAM or e <= lo or s >= hi:
            out.append((s, e, t))
            continue
        if s < lo:
            out.append((s, lo, t))
        if e > hi:
            out.append((hi, e, t))
    return out


def _ram_to_reserved(entries: list[_Entry], lo: int, hi: int) -> list[_Entry]:
    """e820__range_update(lo, hi - lo, E820_TYPE_RAM, E820_TYPE_RESERVED)."""
    out = _remove_ram(entries, lo, hi)
    for s, e, t in entries:
        if t == E820_RAM and e > lo and s < hi:
            out.append((max(s, lo), min(e, hi), E820_RESERVED))
    return _sanitize_e820(out)


def _merge(ranges: Iterable[Range]) -> list[Range]:
    """Sort ranges and join overlapping or touching ones."""
    out: list[Range] = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def overlap(ranges: Iterable[Range], lo: int, hi: int) -> int:
    """Length of the part of disjoint ranges inside [lo, hi)."""
    return sum(max(0, min(e, hi) - max(s, lo)) for s, e in ranges)


def _memblock_memory(e820: list[_Entry]) -> list[Range]:
    """e820__memblock_setup + memblock_trim_memory(PAGE_SIZE): page-aligned RAM byte ranges."""
    ram = [(s, e) for s, e, t in e820 if t in (E820_RAM, E820_RESERVED_KERN) and e <= 1 << 64]
    out: list[Range] = []
    for s, e in _merge(ram):
        s = -(-s // PAGE_SIZE) * PAGE_SIZE
        e = e // PAGE_SIZE * PAGE_SIZE
        if s < e:
            out.append((s, e))
    return out


# one SRAT memory block: node id, start, end exclusive (bytes)
_Block = tuple[int, int, int]


def _numa_cleanup(blocks: list[_Block], memory: list[Range]) -> list[_Block]:
    """numa_cleanup_meminfo(): clip, drop RAM-less blocks, reject conflicts, join same-node blocks."""
    low, high = memory[0][0], memory[-1][1]
    mi: list[list[int]] = []
    for nid, s, e in blocks:
        if overlap(memory, s, e) == 0:
            continue  # moved to numa_reserved_meminfo: not memory
        s = max(s, low)
        e = min(e, high)
        if s < e:
            mi.append([nid, s, e])
    i = 0
    while i < len(mi):
        j = i + 1
        while j < len(mi):
            bi, bj = mi[i], mi[j]
            if bi[2] > bj[1] and bi[1] < bj[2] and bi[0] != bj[0]:
                raise ModelInputError(
                    f"node_ranges: node {bi[0]} [{bi[1]:#x}, {bi[2]:#x}) overlaps node {bj[0]} "
                    f"[{bj[1]:#x}, {bj[2]:#x}): the kernel rejects this SRAT and falls back to one node"
                )
            if bi[0] != bj[0]:
                j += 1
                continue
            start, end = min(bi[1], bj[1]), max(bi[2], bj[2])
            # a hole is only absorbed if no other node owns memory inside it
            if any(bk[0] != bi[0] and start < bk[2] and end > bk[1] for bk in mi):
                j += 1
                continue
            bi[1], bi[2] = start, end
            del mi[j]
        i += 1
    return [(nid, s, e) for nid, s, e in mi]


def _assign_nodes(memory: list[Range], blocks: list[_Block]) -> tuple[dict[int, list[Range]], int]:
    """memblock_set_node() for every block, then for_each_mem_pfn_range(): pfn ranges per node.

    Returns the per-node pfn ranges and the number of memblock pages left without a node.
    """
    cuts = sorted({p for _, s, e in blocks for p in (s, e)})
    pieces: list[tuple[int, int, int | None]] = []
    for ms, me in memory:
        points = [ms] + [c for c in cuts if ms < c < me] + [me]
        for lo, hi in pairwise(points):
            nid = None
            for bnid, bs, be in blocks:  # later blocks win, as later memblock_set_node calls do
                if bs <= lo and be >= hi:
                    nid = bnid
            # memblock_merge_regions(): contiguous pieces of one node become one region
            if pieces and pieces[-1][1] == lo and pieces[-1][2] == nid:
                pieces[-1] = (pieces[-1][0], hi, nid)
            else:
                pieces.append((lo, hi, nid))
    per_node: dict[int, list[Range]] = {}
    orphan = 0
    for lo, hi, nid in pieces:
        # a region straddling a page at an unaligned node boundary loses that page
        s, e = -(-lo // PAGE_SIZE), hi // PAGE_SIZE
        if s >= e:
            continue
        if nid is None:
            orphan += e - s
        else:
            per_node.setdefault(nid, []).append((s, e))
    return {n: _merge(r) for n, r in sorted(per_node.items())}, orphan


def _check_int(name: str, value: object, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ModelInputError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def compute_layout(
    firmware_map: Sequence[E820Entry],
    node_ranges: Mapping[int, Sequence[Range]] | None,
    zones: Iterable[str] = ("DMA", "DMA32", "Normal", "Movable"),
    *,
    mem_limit: int | None = None,
    movablecore: int | None = None,
    kernelcore: int | None = None,
    mem_region_size: int = DEFAULT_REGION_SIZE,
    boot_reserve_bytes: int = DEFAULT_BOOT_RESERVE_BYTES,
    memoryless_nodes: Iterable[int] = (),
) -> Layout:
    """Replay the 6.12 x86_64 boot-time memory setup on plain data and return the layout.

    firmware_map: e820 as (start, end_exclusive, type name as dmesg prints it), bytes.
    node_ranges: SRAT memory affinity, node id -> [(start, end_exclusive)] in bytes;
        None means no SRAT (dummy_numa_init: one node 0 over [0, max_pfn)).
    zones: zone names the config builds (see zones_from_kconfig); Normal and Movable are
        always added because enum zone_type always has them.
    mem_limit: the mem= boot parameter in bytes (an address limit, as parse_memopt does).
    movablecore / kernelcore: not modelled yet; passing one raises ModelInputError.
    mem_region_size: region size in bytes for the region geometry (power of two >= 4 MiB).
    boot_reserve_bytes: allowance for non-memmap boot reservations per node (managed bounds).
    memoryless_nodes: nodes with CPUs and no memory; they get rows of empty zones.
    """
    if movablecore is not None or kernelcore is not None:
        raise ModelInputError(
            "movablecore=/kernelcore= are not modelled yet (find_zone_movable_pfns_for_nodes); "
            "boot without them or extend harness/model/layout.py"
        )
    _check_int("mem_region_size", mem_region_size, MIN_REGION_SIZE)
    if mem_region_size & (mem_region_size - 1):
        raise ModelInputError(f"mem_region_size: {mem_region_size} is not a power of two")
    _check_int("boot_reserve_bytes", boot_reserve_bytes)
    zone_set = set(zones) | set(ALWAYS_ZONES)
    unknown = zone_set - set(ZONE_ORDER)
    if unknown:
        raise ModelInputError(f"zones: unknown zone(s) {sorted(unknown)} (x86_64 has {ZONE_ORDER})")
    zone_list = [z for z in ZONE_ORDER if z in zone_set]

    entries: list[_Entry] = []
    for i, entry in enumerate(firmware_map):
        if not isinstance(entry, tuple | list) or len(entry) != 3:
            raise ModelInputError(f"firmware_map[{i}]: expected (start, end, type), got {entry!r}")
        s, e, name = entry
        if not (isinstance(s, int) and isinstance(e, int)) or s < 0 or e <= s:
            raise ModelInputError(f"firmware_map[{i}]: bad range [{s!r}, {e!r})")
        entries.append((s, e, _type_code(name)))
    e820 = _sanitize_e820(entries)

    if mem_limit is not None:
        _check_int("mem_limit", mem_limit, 1)  # mem=0 is rejected by parse_memopt
        e820 = _remove_ram(e820, mem_limit, 1 << 64)
    e820 = _ram_to_reserved(e820, 0, PAGE_SIZE)
    e820 = _sanitize_e820(_remove_ram(e820, BIOS_BEGIN, BIOS_END))

    max_pfn = max((e >> PAGE_SHIFT for s, e, t in e820 if t in (E820_RAM, E820_ACPI)), default=0)
    memory = _memblock_memory(e820)
    if not memory:
        raise ModelInputError("firmware_map: no usable RAM left after trim_bios_range/mem=")

    if node_ranges is None:
        blocks: list[_Block] = [(0, 0, max_pfn << PAGE_SHIFT)]
    else:
        blocks = []
        for nid, ranges in node_ranges.items():
            _check_int("node id", nid)
            for s, e in ranges:
                if not (isinstance(s, int) and isinstance(e, int)) or s < 0 or e <= s:
                    raise ModelInputError(f"node_ranges[{nid}]: bad range [{s!r}, {e!r})")
                blocks.append((nid, s, e))
        blocks = _numa_cleanup(blocks, memory)
    node_mem, orphan = _assign_nodes(memory, blocks)
    if orphan << PAGE_SHIFT > NUMA_COVERAGE_SLACK_BYTES:
        raise ModelInputError(
            f"node_ranges: {orphan << PAGE_SHIFT >> 20} MiB of RAM belongs to no node; the kernel "
            "rejects such an SRAT (memblock_validate_numa_coverage) and falls back to one node"
        )

    # free_area_init(): zones follow each other from the first memblock pfn; x86_64 sets
    # max_low_pfn = max_pfn, so Normal ends at max_pfn. Movable is sized elsewhere (left
    # at 0, 0); Device gets max_zone_pfn 0, i.e. the empty range where Normal ended.
    max_zone_pfn = {"DMA": min(MAX_DMA_PFN, max_pfn), "DMA32": min(MAX_DMA32_PFN, max_pfn), "Normal": max_pfn}
    zone_bounds: dict[str, Range] = {}
    start = memory[0][0] >> PAGE_SHIFT
    for z in zone_list:
        if z == "Movable":
            zone_bounds[z] = (0, 0)
            continue
        end = max(max_zone_pfn.get(z, 0), start)
        zone_bounds[z] = (start, end)
        start = end

    swiotlb = SWIOTLB_BYTES >> PAGE_SHIFT if max_pfn > MAX_DMA32_PFN else 0
    zone_rows: list[tuple[int, str, int, int, int, int, int, int]] = []
    node_rows: list[tuple[int, int, int, int, int, int, int]] = []
    for nid, ranges in node_mem.items():
        node_start, node_end = ranges[0][0], ranges[-1][1]
        sections = {pfn // SECTION_PAGES for s, e in ranges for pfn in range(s, e, SECTION_PAGES)}
        sections |= {(e - 1) // SECTION_PAGES for s, e in ranges}
        budget = len(sections) * MEMMAP_PAGES_PER_SECTION + (boot_reserve_bytes >> PAGE_SHIFT) + swiotlb
        node_present = node_managed_max = 0
        for z in zone_list:
            low, high = zone_bounds[z]
            # zone_spanned_pages_in_node(), literally, including its early return
            zs = min(max(node_start, low), high)
            ze = min(max(node_end, low), high)
            if ze < node_start or zs > node_end:
                spanned = 0
            else:
                ze, zs = min(ze, node_end), max(zs, node_start)
                spanned = ze - zs
            absent = 0 if zs == ze else (ze - zs) - overlap(ranges, zs, ze)
            present = spanned - absent
            if spanned == 0:
                zs = ze = 0  # calculate_node_totalpages() stores zone_start_pfn 0
            managed_max = present - overlap(ranges, zs, min(ze, LOW_RESERVED_END_PFN)) if present else 0
            zone_rows.append(
                (nid, z, zs, ze, spanned, present, max(0, managed_max - budget), managed_max)
            )
            node_present += present
            node_managed_max += managed_max
        node_rows.append(
            (
                nid,
                node_start,
                node_end - node_start,
                node_present,
                budget,
                max(0, node_managed_max - budget) * KIB_PER_PAGE,
                node_managed_max * KIB_PER_PAGE,
            )
        )

    # A node with CPUs and no memory is still onlined (init_memory_less_node) and
    # /proc/zoneinfo prints its zones, all empty.
    for nid in sorted(set(memoryless_nodes) - set(node_mem)):
        zone_rows.extend((nid, z, 0, 0, 0, 0, 0, 0) for z in zone_list)
        node_rows.append((nid, 0, 0, 0, 0, 0, 0))

    zones_df = pd.DataFrame(zone_rows, columns=["node", "zone", *ZONE_COLUMNS]).set_index(["node", "zone"])
    nodes_df = pd.DataFrame(node_rows, columns=["node", *NODE_COLUMNS]).set_index("node")
    return Layout(
        zones=zones_df.astype("int64"),
        nodes=nodes_df.astype("int64"),
        memory=node_mem,
        zone_bounds=zone_bounds,
        max_pfn=max_pfn,
        e820=[(s, e, _type_name(t)) for s, e, t in e820],
        region_size_pages=mem_region_size >> PAGE_SHIFT,
    )


def predict_layout(*args: Any, **kwargs: Any) -> pd.DataFrame:
    """Return the (node, zone) frame of compute_layout(): start_pfn, end_pfn, spanned, present, managed bounds."""
    return compute_layout(*args, **kwargs).zones


def predict_nodes(*args: Any, **kwargs: Any) -> pd.DataFrame:
    """Return the per-node frame of compute_layout(): node span, present pages, MemTotal bounds (kB)."""
    return compute_layout(*args, **kwargs).nodes


def layout_of(inputs: ModelInputs, declared: DeclaredNodes | None = None) -> Layout:
    """compute_layout() for a guest: its firmware map, zones and boot parameters, on the declared nodes.

    declared: what the topology declares (harness.model.inputs.declared_nodes); None
    takes what the guest's SRAT said, so the model then checks the kernel, not the topology.
    """
    if declared is None:
        node_ranges, memoryless = inputs.srat_ranges, inputs.memoryless
    else:
        node_ranges, memoryless = declared.node_ranges, declared.memoryless
    region_size = DEFAULT_REGION_SIZE if inputs.mem_region_size is None else inputs.mem_region_size
    return compute_layout(inputs.firmware_map, node_ranges, inputs.zones, mem_limit=inputs.mem_limit,
                          mem_region_size=region_size, memoryless_nodes=memoryless)
