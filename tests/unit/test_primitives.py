"""The shared primitives: atomic files, sizes, text tables, variant specs."""

import errno
import json
import os
import stat

import pytest

from harness import fs, units
from harness.errors import InfraError, UserError
from harness.table import render_table
from harness.variant import Variant, parse_variants


def test_atomic_write_replaces_whole_and_sets_the_mode(tmp_path):
    path = tmp_path / "sub" / "f.json"
    fs.atomic_write(path, "old")
    fs.atomic_write(path, b"new", mode=fs.SECRET_MODE)
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["f.json"], "temp file left behind"


def test_atomic_write_failure_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f"
    fs.atomic_write(path, "old")

    def no_space(*_a):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(InfraError, match="disk full while saving f"), fs.disk_full_is_infra("saving f"):
        fs.atomic_write(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_json_state_versus_user_files(tmp_path):
    bad = tmp_path / "metadata.json"
    bad.write_text("{not json")
    assert fs.read_json_state(bad) is None            # a cache entry: rebuilt
    with pytest.raises(UserError, match=r"metadata.json: not valid JSON"):
        fs.read_json(bad)                            # a run's file: the user must know
    fs.write_json(bad, {"b": 1, "a": [2]})
    assert json.loads(bad.read_text()) == {"a": [2], "b": 1}


def test_read_csv_names_a_garbled_file(tmp_path):
    path = tmp_path / "zoneinfo.csv"
    path.write_bytes(b"a,b\n1,2\n\xff\xfe\x00,\"\n")
    with pytest.raises(UserError, match="zoneinfo.csv: not a readable CSV"):
        fs.read_csv(path)


def test_read_tree_uses_posix_relative_paths(tmp_path):
    (tmp_path / "mem_regions").mkdir()
    (tmp_path / "mem_regions" / "regions").write_text("x\n")
    (tmp_path / "zoneinfo").write_text("y\n")
    assert fs.read_tree(tmp_path) == {"mem_regions/regions": "x\n", "zoneinfo": "y\n"}


def test_disk_full_text_from_a_tool():
    assert fs.is_disk_full("tar: x: Cannot write: No space left on device")
    with pytest.raises(OSError) as info:
        fs.raise_if_disk_full("cp: error writing 'a': No space left on device", "copying")
    assert info.value.errno == errno.ENOSPC
    fs.raise_if_disk_full("all fine", "copying")


@pytest.mark.parametrize(("text", "expected"), [
    ("16M", 16 << 20), ("2G", 2 << 30), ("0x1000", 4096), ("512", 512), ("1k", 1024)])
def test_memparse_reads_kernel_sizes(text, expected):
    assert units.memparse(text) == expected


@pytest.mark.parametrize("text", ["", "M", "12MB", "1.5G", "abc"])
def test_memparse_rejects(text):
    with pytest.raises(ValueError, match="is not a size"):
        units.memparse(text)


def test_sizes_round_trip():
    for n in (units.KiB, 3 * units.MiB, 6 * units.GiB, 4097):
        assert units.parse_size(units.fmt_size(n)) == n


def test_render_table_aligns_and_rules():
    text = render_table([("name", "pages"), ("DMA32", 12), ("Normal", 123456)], right={1}, rule=True)
    assert text.splitlines() == ["name    pages", "------  ------", "DMA32       12", "Normal  123456"]


def test_variant_parse_and_render():
    v = Variant.parse("regions+mem_region_sort=0+mem_region_size=16M")
    assert (v.flavor, v.append, str(v)) == ("regions", "mem_region_sort=0 mem_region_size=16M",
                                            "regions+mem_region_sort=0+mem_region_size=16M")
    assert Variant.parse("vanilla") == Variant("vanilla")
    for bad in ("regions+", "+x=1", "regions+a b"):
        with pytest.raises(UserError, match="variant"):
            Variant.parse(bad)
    with pytest.raises(UserError, match="--flavors: give at least one"):
        parse_variants(())
