"""What the reference model is given: the guest's boot facts (ModelInputs) and a topology's nodes (DeclaredNodes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for the annotation: the model itself reads no topology files
    from harness.topology import Topology

__all__ = ["DEFAULT_ZONES", "DeclaredNodes", "E820Entry", "ModelInputs", "Range", "declared_nodes"]

#: [start, end) in bytes
Range = tuple[int, int]
#: one firmware (e820) entry: start, end exclusive (bytes) and the type name dmesg prints
E820Entry = tuple[int, int, str]

#: zones assumed when the guest's .config is unknown: an x86_64 defconfig
DEFAULT_ZONES = ("DMA", "DMA32", "Normal", "Movable")


@dataclass(frozen=True)
class ModelInputs:
    """What the layout model needs that only the guest knows (harness.metrics.bootlog reads it)."""

    #: the BIOS-e820 table, in print order
    firmware_map: tuple[E820Entry, ...]
    #: the zones the kernel's .config builds, in zone_type order (zones_from_kconfig)
    zones: tuple[str, ...]
    #: the kernel command line as dmesg printed it ("" when it did not)
    cmdline: str
    #: mem= in bytes, None when not given
    mem_limit: int | None = None
    #: mem_region_size= in bytes, None when not given (the model's default applies)
    mem_region_size: int | None = None
    #: the SRAT memory ranges the kernel was told, node -> ranges; None: no SRAT.
    #: A dict so compute_layout can take it as is; treat it as read-only.
    srat_ranges: Mapping[int, tuple[Range, ...]] | None = None
    #: nodes the kernel set up as memoryless ("Initmem setup node N as memoryless")
    memoryless: tuple[int, ...] = ()
    #: the boot log says the series set up memory regions ("node N zone Z: K memory regions of S")
    regions_reported: bool = False


@dataclass(frozen=True)
class DeclaredNodes:
    """What a topology declares about NUMA memory: each node's RAM ranges and the nodes with CPUs only."""

    node_ranges: Mapping[int, tuple[Range, ...]]
    memoryless: tuple[int, ...] = ()


def declared_nodes(topo: Topology) -> DeclaredNodes:
    """The nodes a topology file declares, in the form the model takes."""
    return DeclaredNodes(
        node_ranges={n.id: tuple(n.ranges) for n in topo.nodes if n.ranges},
        memoryless=tuple(n.id for n in topo.nodes if not n.ranges),
    )
