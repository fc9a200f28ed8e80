"""Encode a Topology as the ACPI SRAT and SLIT tables that QEMU hands to the guest.

The tables follow ACPI 6.x (SRAT revision 3, SLIT revision 1). They are passed with
``-acpitable file=...``; for a file QEMU keeps our header as is (it only overwrites the
fields given as -acpitable options, and we give none) and recomputes length and checksum;
we compute both here anyway, so the blobs are valid on their own, e.g. for ``iasl -d``.

Pure functions: bytes in, bytes out, no files, no subprocess.
"""

from __future__ import annotations

import logging
import struct

from harness.topology import Topology

log = logging.getLogger(__name__)

OEM_ID = b"RGNHRN"  # 6 bytes
OEM_REVISION = 1
CREATOR_ID = b"RGNH"  # 4 bytes; the "ASL compiler" field, here the tool that made the table
CREATOR_REVISION = 1

HEADER_SIZE = 36
SRAT_REVISION = 3
SLIT_REVISION = 1

SRAT_TYPE_CPU_AFFINITY = 0
SRAT_TYPE_MEMORY_AFFINITY = 1
SRAT_CPU_ENABLED = 1  # flags bit 0: the entry is valid; Linux skips disabled entries
SRAT_MEM_ENABLED = 1  # flags bit 0; not hot-pluggable (bit 1), not non-volatile (bit 2)


def checksum(data: bytes | bytearray) -> int:
    """The byte that makes the sum of all bytes of a table 0 modulo 256."""
    return (-sum(data)) & 0xFF


def table(signature: bytes, revision: int, oem_table_id: bytes, body: bytes) -> bytes:
    """A whole ACPI table: the standard 36-byte header followed by ``body``."""
    if len(signature) != 4 or len(oem_table_id) != 8:
        raise ValueError("signature must be 4 bytes and OEM table id 8 bytes")
    length = HEADER_SIZE + len(body)
    header = struct.pack(
        "<4sIBB6s8sI4sI",
        signature,
        length,
        revision,
        0,  # checksum, patched below once the whole table is known
        OEM_ID,
        oem_table_id,
        OEM_REVISION,
        CREATOR_ID,
        CREATOR_REVISION,
    )
    assert len(header) == HEADER_SIZE
    blob = bytearray(header + body)
    blob[9] = checksum(blob)
    return bytes(blob)


def apic_id(cpu: int) -> int:
    """APIC id of vCPU ``cpu``.

    harness.vm.numa passes ``-smp N,sockets=N,cores=1,threads=1``: one socket per vCPU
    with one core of one thread each, so the core and thread fields of the APIC id take
    no bits, the APIC id of vCPU i is its socket number i, and the ids are 0..N-1.
    """
    return cpu


def cpu_affinity(proximity_domain: int, apic: int) -> bytes:
    """SRAT type 0, Processor Local APIC/SAPIC Affinity (16 bytes)."""
    return struct.pack(
        "<BBBBIB3sI",
        SRAT_TYPE_CPU_AFFINITY,
        16,
        proximity_domain & 0xFF,  # bits 7:0
        apic,
        SRAT_CPU_ENABLED,
        0,  # local SAPIC EID (Itanium only)
        (proximity_domain >> 8).to_bytes(3, "little"),  # bits 31:8
        0,  # clock domain
    )


def memory_affinity(proximity_domain: int, base: int, length: int) -> bytes:
    """SRAT type 1, Memory Affinity (40 bytes)."""
    return struct.pack(
        "<BBIHQQIIQ",
        SRAT_TYPE_MEMORY_AFFINITY,
        40,
        proximity_domain,
        0,  # reserved
        base,  # base address low + high dwords, little endian == one u64
        length,  # length low + high
        0,  # reserved
        SRAT_MEM_ENABLED,
        0,  # reserved
    )


def srat(topo: Topology) -> bytes:
    """The System Resource Affinity Table of ``topo`` (proximity domain = node id).

    Entry order matters to Linux: it numbers nodes in the order their proximity domains
    first appear, parsing all processor entries before any memory entry. Emitting
    processor entries in node order and then memory entries in node order, together with
    the topology rule that CPU-less nodes come last, makes Linux node N = our node N.
    """
    body = bytearray(struct.pack("<I8x", 1))  # reserved, must be 1 for compatibility; 8 reserved bytes
    for node in topo.nodes:
        for cpu in node.cpus:
            body += cpu_affinity(node.id, apic_id(cpu))
    for node in topo.nodes:
        for start, end in node.ranges:
            body += memory_affinity(node.id, start, end - start)
    blob = table(b"SRAT", SRAT_REVISION, b"RGNHSRAT", bytes(body))
    log.debug("SRAT for %s: %d bytes", topo.name, len(blob))
    return blob


def slit(topo: Topology) -> bytes:
    """The System Locality Information Table of ``topo``: N*N one-byte distances."""
    n = len(topo.distances)
    body = bytearray(struct.pack("<Q", n))
    for row in topo.distances:
        body += bytes(row)
    blob = table(b"SLIT", SLIT_REVISION, b"RGNHSLIT", bytes(body))
    log.debug("SLIT for %s: %d bytes", topo.name, len(blob))
    return blob
