"""Unit tests for harness.acpi: the SRAT/SLIT encoders, checked byte-wise and through `iasl -d`.

iasl (acpica-tools) is an independent decoder: if it reads back every proximity domain,
APIC id, base, length and flag we meant, the guest's ACPI parser will too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import acpi
from harness.topology import Node, Topology, list_topologies, load
from harness.units import GiB, MiB
from harness.vm.numa import qemu_args

IASL = shutil.which("iasl")
needs_iasl = pytest.mark.skipif(IASL is None, reason="iasl (acpica-tools) not installed")

FIELD = re.compile(r"^\[[0-9A-F]+h \d+ +\d+\] +(.+?) : (.*)$")
DECODED_FLAG = re.compile(r"^ {20,}(\S.*?) : (\S+)$")


def disassemble(blob: bytes, tmp_path: Path, stem: str) -> tuple[list[dict[str, str]], str]:
    """Run ``iasl -d`` on ``blob``; return the .dsl as blocks of field -> value, and iasl's output.

    Block 0 is the header, block 1 the fixed part after it (SRAT) or the whole body (SLIT),
    then one block per SRAT subtable (iasl separates the type/length lines from the rest by
    a blank line, so a subtable is merged back together here).
    """
    binary = tmp_path / f"{stem}.bin"
    binary.write_bytes(blob)
    proc = subprocess.run([IASL, "-d", str(binary)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dsl = (tmp_path / f"{stem}.dsl").read_text()
    blocks: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in dsl.splitlines():
        if line.startswith("Raw Table Data"):
            break
        m = FIELD.match(line)
        if m:
            key, value = m.group(1), m.group(2).strip()
            # A new block starts at the header, at the fixed body, and at each subtable.
            if key in ("Signature", "Table Revision", "Localities", "Subtable Type") or current is None:
                current = {}
                blocks.append(current)
            current[key] = value
            continue
        m = DECODED_FLAG.match(line)
        if m and current is not None:
            current[f"flag {m.group(1)}"] = m.group(2)
    return blocks, proc.stdout + proc.stderr + dsl


def srat_entries(blocks: list[dict[str, str]]):
    """(cpu entries, memory entries) as tuples of ints decoded from iasl's text."""
    cpus, mems = [], []
    for b in blocks[2:]:
        if b["Subtable Type"].startswith("00"):
            assert int(b["Length"], 16) == 16
            pxm = int(b["Proximity Domain Low(8)"], 16) | int(b["Proximity Domain High(24)"], 16) << 8
            cpus.append((pxm, int(b["Apic ID"], 16), int(b["flag Enabled"])))
            assert int(b["Flags (decoded below)"], 16) == 1
        elif b["Subtable Type"].startswith("01"):
            assert int(b["Length"], 16) == 0x28
            mems.append(
                (
                    int(b["Proximity Domain"], 16),
                    int(b["Base Address"], 16),
                    int(b["Address Length"], 16),
                    int(b["flag Enabled"]),
                    int(b["flag Hot Pluggable"]),
                    int(b["flag Non-Volatile"]),
                )
            )
        else:  # pragma: no cover - we emit only types 0 and 1
            pytest.fail(f"unexpected subtable {b}")
    return cpus, mems


def check_header(header: dict[str, str], signature: str, revision: int, oem_table_id: str, size: int, out: str):
    assert header["Signature"].startswith(f'"{signature}"')
    assert int(header["Table Length"], 16) == size
    assert int(header["Revision"], 16) == revision
    assert header["Oem ID"] == '"RGNHRN"'
    assert header["Oem Table ID"] == f'"{oem_table_id}"'
    assert int(header["Oem Revision"], 16) == 1
    assert header["Asl Compiler ID"] == '"RGNH"'
    assert no_checksum_complaint(out), out


def no_checksum_complaint(out: str) -> bool:
    return "Incorrect checksum" not in out and "should be" not in out


# ---------------------------------------------------------------- byte-level checks


@pytest.mark.parametrize("name", list_topologies())
def test_tables_checksum_to_zero(name):
    topo = load(name)
    for blob in (acpi.srat(topo), acpi.slit(topo)):
        assert sum(blob) % 256 == 0
        assert int.from_bytes(blob[4:8], "little") == len(blob)


def test_srat_layout_by_hand():
    topo = load("two-node")
    blob = acpi.srat(topo)
    assert len(blob) == 36 + 12 + 2 * 16 + 2 * 40
    assert blob[:4] == b"SRAT" and blob[8] == 3
    assert blob[10:16] == b"RGNHRN"
    assert blob[36:40] == (1).to_bytes(4, "little") and blob[40:48] == bytes(8)
    cpu1 = blob[48 + 16 : 48 + 32]
    assert cpu1 == bytes([0, 16, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    mem1 = blob[48 + 32 + 40 : 48 + 32 + 80]
    assert mem1[:2] == bytes([1, 40])
    assert int.from_bytes(mem1[2:6], "little") == 1
    assert int.from_bytes(mem1[8:16], "little") == GiB
    assert int.from_bytes(mem1[16:24], "little") == GiB
    assert int.from_bytes(mem1[28:32], "little") == 1


def test_slit_layout_by_hand():
    blob = acpi.slit(load("memoryless"))
    assert blob[:4] == b"SLIT" and blob[8] == 1
    assert int.from_bytes(blob[36:44], "little") == 3
    assert blob[44:] == bytes([10, 15, 20, 15, 10, 25, 20, 25, 10])


# ---------------------------------------------------------------- iasl as an independent decoder


@needs_iasl
@pytest.mark.parametrize("name", list_topologies())
def test_iasl_decodes_every_entry(tmp_path, name):
    topo = load(name)
    qemu_args(topo, tmp_path)  # the very files QEMU will be given

    blocks, out = disassemble((tmp_path / "srat.bin").read_bytes(), tmp_path, "srat")
    assert no_checksum_complaint(out), out
    check_header(blocks[0], "SRAT", 3, "RGNHSRAT", (tmp_path / "srat.bin").stat().st_size, out)
    assert int(blocks[1]["Table Revision"], 16) == 1
    cpus, mems = srat_entries(blocks)
    # Processor entries in node order, one per vCPU, APIC id == vCPU number on one socket.
    assert cpus == [(node.id, cpu, 1) for node in topo.nodes for cpu in node.cpus]
    assert sorted(apic for _, apic, _ in cpus) == list(range(topo.cpus))
    assert mems == [(node.id, s, e - s, 1, 0, 0) for node in topo.nodes for s, e in node.ranges]
    assert sum(length for _, _, length, *_ in mems) == topo.memory_bytes

    blocks, out = disassemble((tmp_path / "slit.bin").read_bytes(), tmp_path, "slit")
    assert no_checksum_complaint(out), out
    check_header(blocks[0], "SLIT", 1, "RGNHSLIT", (tmp_path / "slit.bin").stat().st_size, out)
    body = blocks[1]
    n = len(topo.nodes)
    assert int(body["Localities"], 16) == n
    matrix = [[int(x, 16) for x in body[f"Locality {i:>3}"].split()] for i in range(n)]
    assert matrix == [list(row) for row in topo.distances]


@needs_iasl
def test_iasl_interleaved_literal_values(tmp_path):
    """Hard-coded expectations, so a wrong topology or encoder cannot agree with itself."""
    blocks, out = disassemble(acpi.srat(load("interleaved")), tmp_path, "srat")
    cpus, mems = srat_entries(blocks)
    assert cpus == [(0, 0, 1), (1, 1, 1)]
    assert [m[:3] for m in mems] == [
        (0, 0x0, 0x80000000),
        (0, 0x180000000, 0x80000000),
        (1, 0x100000000, 0x80000000),
        (1, 0x200000000, 0x80000000),
    ]
    blocks, _ = disassemble(acpi.slit(load("four-node")), tmp_path, "slit")
    assert blocks[1]["Locality   2"] == "18 12 0A 0E"  # 24 18 10 14


@needs_iasl
def test_iasl_large_proximity_domain(tmp_path):
    """A proximity domain above 255 is split into the low byte and the high 3 bytes."""
    pxm = 0x12345
    topo = Topology(
        name="synthetic",
        path=Path("synthetic.yaml"),
        description="",
        machine="q35",
        memory_bytes=256 * MiB,
        cpus=1,
        nodes=(Node(id=pxm, cpus=(0,), ranges=((128 * MiB, 256 * MiB),)),),
        distances=((10,),),
    )
    blocks, out = disassemble(acpi.srat(topo), tmp_path, "srat")
    assert no_checksum_complaint(out)
    assert blocks[2]["Proximity Domain Low(8)"] == "45"
    assert blocks[2]["Proximity Domain High(24)"] == "000123"
    cpus, mems = srat_entries(blocks)
    assert cpus == [(pxm, 0, 1)]
    assert mems == [(pxm, 128 * MiB, 128 * MiB, 1, 0, 0)]


@needs_iasl
def test_iasl_reports_a_broken_checksum(tmp_path):
    """The checksum check above can fail: a flipped byte is reported by iasl."""
    blob = bytearray(acpi.srat(load("two-node")))
    blob[60] ^= 0x01
    _, out = disassemble(bytes(blob), tmp_path, "srat")
    assert not no_checksum_complaint(out)
