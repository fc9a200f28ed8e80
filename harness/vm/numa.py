"""A Topology as QEMU sees it: the machine/memory/smp/ACPI-table arguments, and the `topology show` text.

No -numa options: QEMU would build its own SRAT from them (one contiguous range per
node), and with none it builds no SRAT/SLIT of its own, so the tables harness.acpi
encodes, passed with -acpitable, are the only ones the guest sees.
"""

from __future__ import annotations

import logging
from pathlib import Path

from harness import acpi
from harness.errors import UserError
from harness.fs import atomic_write
from harness.topology import Topology, display_path
from harness.units import fmt_size

log = logging.getLogger(__name__)


def _acpitable(path: Path, workdir: Path) -> str:
    """The -acpitable value naming one table file."""
    text = str(path)
    if ":" in text:
        # -acpitable splits file= on ':' to concatenate several files.
        raise UserError(f"{workdir}: work directory path contains ':', which -acpitable cannot take")
    return "file=" + text.replace(",", ",,")  # QEMU option syntax escapes ',' by doubling it


def _argv(topo: Topology, workdir: Path) -> list[str]:
    return [
        "-machine", topo.machine,
        "-m", fmt_size(topo.memory_bytes),
        # One socket per vCPU: APIC ids are 0..N-1 (the ids the SRAT names, acpi.apic_id),
        # and no two CPUs share a last-level cache. With one socket, CPUs of different nodes
        # would be LLC siblings and the guest WARNs in topology_sane() at boot.
        "-smp", f"{topo.cpus},sockets={topo.cpus},cores=1,threads=1",
        "-acpitable", _acpitable(workdir / "srat.bin", workdir),
        "-acpitable", _acpitable(workdir / "slit.bin", workdir),
    ]  # fmt: skip


def qemu_args(topo: Topology, workdir: Path) -> list[str]:
    """QEMU arguments for ``topo``; writes workdir/srat.bin and workdir/slit.bin."""
    workdir = Path(workdir)
    for fname, blob in (("srat.bin", acpi.srat(topo)), ("slit.bin", acpi.slit(topo))):
        # atomic: a VM started concurrently from the same workdir never sees half a table
        atomic_write(workdir / fname, blob)
    argv = _argv(topo, workdir)
    log.debug("qemu args for %s: %s", topo.name, " ".join(argv))
    return argv


def _fmt_range(start: int, end: int) -> str:
    return f"[{start:#011x}, {end:#011x}) {fmt_size(end - start)}"


def describe(topo: Topology) -> str:
    """Human-readable summary for ``harness topology show``: ranges, SRAT, SLIT, QEMU argv."""
    lines = [f"topology {topo.name} ({display_path(topo.path)})"]
    lines += [f"  {line}" for line in topo.description.splitlines()]
    lines.append(f"machine {topo.machine}, memory {fmt_size(topo.memory_bytes)} ({topo.memory_bytes} bytes), "
                 f"{topo.cpus} vCPUs")  # fmt: skip
    lines.append("guest RAM map: " + ", ".join(_fmt_range(s, e) for s, e in topo.ram_map()))
    lines.append("nodes:")
    for node in topo.nodes:
        cpus = ",".join(map(str, node.cpus)) or "none"
        mem = ", ".join(_fmt_range(s, e) for s, e in node.ranges) or "none (memoryless)"
        size = fmt_size(node.memory_bytes) if node.ranges else "0"
        lines.append(f"  node {node.id}: cpus {cpus}; memory {size}: {mem}")
    lines.append(f"SRAT (revision {acpi.SRAT_REVISION}):")
    for node in topo.nodes:
        for cpu in node.cpus:
            lines.append(f"  processor affinity: APIC id {acpi.apic_id(cpu)} -> node {node.id}, flags enabled")
    for node in topo.nodes:
        for start, end in node.ranges:
            lines.append(
                f"  memory affinity: base {start:#018x} length {end - start:#018x} -> node {node.id}, flags enabled"
            )
    lines.append("SLIT:")
    lines.append(" " * 9 + "".join(f"{j:>5}" for j in range(len(topo.nodes))))
    for i, row in enumerate(topo.distances):
        lines.append(f"  node {i:<2}" + "".join(f"{d:>5}" for d in row))
    lines.append("QEMU argv (tables written by qemu_args into the VM's work directory):")
    lines.append("  " + " ".join(_argv(topo, Path("<workdir>"))))
    return "\n".join(lines)
