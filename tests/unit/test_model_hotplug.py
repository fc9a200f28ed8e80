"""The layout model after memory hotplug, on a real capture (tests/data/captures/6.12-hotplug-four-node).

The capture: the regions kernel (mem_region_size=16M) on four-node, after
  memory12 (node 2's first DMA32 block) offline, then online: it comes back in Normal;
  memory45 and memory46 (node 3's Normal) offline, both online_movable, then memory46
  offline again: node 3's Movable zone is memory45, memory46 stays offline;
  memory7 (in the middle of node 1's DMA32) offline, left so.
(node 3's last block, memory47, holds boot allocations: offlining it is refused.)
"""

from pathlib import Path

import pandas as pd
import pytest

from harness.checks import check_capture, failed, render
from harness.errors import ParseError
from harness.metrics import load_capture, parse_model_inputs, parse_snapshot
from harness.metrics.memory_blocks import parse_memory_blocks
from harness.model import ModelInputError
from harness.model.hotplug import apply_memory_blocks, block_moves
from harness.model.layout import layout_of
from harness.model.regions import predict_regions

CAPTURE = Path(__file__).resolve().parents[1] / "data" / "captures" / "6.12-hotplug-four-node"
BLOCK = 32768  # pages in a 128 MiB block


@pytest.fixture(scope="module")
def captured():
    files = {p.relative_to(CAPTURE).as_posix(): p.read_text() for p in CAPTURE.rglob("*") if p.is_file()}
    inputs = parse_model_inputs(files.pop("dmesg.txt"), files.pop("config", None), "dmesg.txt")
    frames = parse_snapshot({k: v for k, v in files.items() if not k.startswith("firmware-memmap/")})
    return frames, inputs


def test_the_blocks_are_parsed_with_their_zones(captured):
    blocks = captured[0]["memory_blocks"]
    # 6 GiB of RAM in 128 MiB blocks, none in the PCI hole [2G, 4G)
    assert list(blocks.index) == [*range(16), *range(32, 48)]
    assert (blocks.loc[12, "state"], blocks.loc[12, "zone"]) == ("online", "Normal")
    assert (blocks.loc[45, "state"], blocks.loc[45, "zone"]) == ("online", "Movable")
    assert blocks.loc[46, "state"] == blocks.loc[7, "state"] == "offline"
    assert pd.isna(blocks.loc[46, "zone"])
    assert blocks.loc[47, "zone"] == "Normal"
    assert (blocks.loc[12, "start_pfn"], blocks.loc[12, "end_pfn"]) == (12 * BLOCK, 13 * BLOCK)


def test_the_moves_are_found_from_the_boot_layout(captured):
    frames, inputs = captured
    moves = block_moves(layout_of(inputs), frames["memory_blocks"])
    got = {m.block: (m.node, m.from_zone, m.to_zone, m.pages) for m in moves}
    assert got == {7: (1, "DMA32", None, BLOCK), 12: (2, "DMA32", "Normal", BLOCK),
                   45: (3, "Normal", "Movable", BLOCK), 46: (3, "Normal", None, BLOCK)}


def test_the_capture_matches_the_model_after_hotplug(captured):
    frames, inputs = captured
    table = check_capture(frames, inputs)
    assert not failed(table), "\n" + render(table, only_failures=True)
    # the moved zones were checked, not left out
    keys = set(table[table["check"] == "layout"]["key"])
    assert {"node2/DMA32", "node2/Normal", "node3/Normal", "node3/Movable", "node1/DMA32"} <= keys
    sums = table[(table["check"] == "regions") & (table["field"] == "region_present_sum")]
    assert "node2/Normal" in set(sums["key"])


def test_the_boot_layout_alone_fails_on_it(captured):
    """Without the blocks the same capture is a diff: the check can fail."""
    frames, inputs = captured
    table = check_capture({k: v for k, v in frames.items() if k != "memory_blocks"}, inputs)
    bad = table[table["verdict"] != "ok"]
    assert {"node2/DMA32", "node2/Normal", "node3/Normal"} <= set(bad["key"]), render(table)


def test_spans_and_untracked_pages(captured):
    frames, inputs = captured
    after = apply_memory_blocks(layout_of(inputs), frames["memory_blocks"])
    z = after.zones
    # node 2: DMA32 starts one block later; Normal reaches down to the block it took
    assert z.loc[(2, "DMA32"), "start_pfn"] == 13 * BLOCK
    assert z.loc[(2, "Normal"), "start_pfn"] == 12 * BLOCK
    # node 3: Normal keeps its span (the blocks left from its middle); Movable is memory45
    boot = layout_of(inputs).zones
    assert z.loc[(3, "Normal"), "spanned"] == boot.loc[(3, "Normal"), "spanned"]
    assert z.loc[(3, "Normal"), "present"] == boot.loc[(3, "Normal"), "present"] - 2 * BLOCK
    assert (z.loc[(3, "Movable"), "start_pfn"], z.loc[(3, "Movable"), "spanned"]) == (45 * BLOCK, BLOCK)
    # node 1's middle block: present drops, the span does not
    assert z.loc[(1, "DMA32"), "spanned"] == boot.loc[(1, "DMA32"), "spanned"]
    assert z.loc[(1, "DMA32"), "present"] == boot.loc[(1, "DMA32"), "present"] - BLOCK
    assert after.untracked[after.untracked > 0].to_dict() == {(2, "Normal"): BLOCK, (3, "Movable"): BLOCK}
    # node 3 lost a block for good: its MemTotal shrinks with it, not its span
    booted = layout_of(inputs).nodes
    assert after.nodes.loc[3, "node_spanned"] == booted.loc[3, "node_spanned"]
    assert after.nodes.loc[3, "memtotal_kb_max"] == booted.loc[3, "memtotal_kb_max"] - BLOCK * 4
    # the regions keep their boot geometry; those of the blocks that left hold nothing
    regions = predict_regions(after)
    assert len(regions) == len(predict_regions(layout_of(inputs)))
    r = regions.xs((2, "DMA32"), level=("node", "zone"))
    assert (r[r["end_pfn"] <= 13 * BLOCK]["present"] == 0).all()
    assert r["present"].sum() == z.loc[(2, "DMA32"), "present"]


def test_without_moves_the_layout_is_the_boot_one(captured):
    frames, inputs = captured
    boot = layout_of(inputs)
    blocks = frames["memory_blocks"].copy()
    blocks.loc[[7, 46], "state"] = "online"
    blocks.loc[[12, 7], "zone"] = "DMA32"
    blocks.loc[[45, 46], "zone"] = "Normal"
    assert apply_memory_blocks(boot, blocks) is boot
    assert apply_memory_blocks(boot, None) is boot


def test_a_block_with_no_boot_memory_is_refused(captured):
    frames, inputs = captured
    blocks = frames["memory_blocks"].copy()
    blocks.loc[20] = (20 * BLOCK, 21 * BLOCK, "online", "Normal")  # in the PCI hole: hot-added
    with pytest.raises(ModelInputError, match="memory20: .*hot-added memory is not modelled"):
        block_moves(layout_of(inputs), blocks)


def test_parse_errors_name_the_file():
    ok = {"memory/block_size_bytes": "8000000\n", "memory/memory3/state": "online\n",
          "memory/memory3/valid_zones": "DMA32\n"}
    assert parse_memory_blocks(ok).loc[3, "zone"] == "DMA32"
    for change, message in [
        ({"memory/memory3/state": "sleeping\n"}, r"memory/memory3/state:1: unknown state 'sleeping'"),
        ({"memory/memory3/valid_zones": "DMA32 Normal\n"}, r"valid_zones:1: an online block names its one zone"),
        ({"memory/block_size_bytes": "12345\n"}, r"block_size_bytes:1: block size 0x12345 is not a power of two"),
        ({"memory/block_size_bytes": "zz\n"}, r"block_size_bytes:1: not a hexadecimal byte count"),
    ]:
        with pytest.raises(ParseError, match=message):
            parse_memory_blocks({**ok, **change})
    with pytest.raises(ParseError, match="memory3 has no valid_zones beside it"):
        parse_memory_blocks({k: v for k, v in ok.items() if not k.endswith("valid_zones")})
    with pytest.raises(ParseError, match="without block_size_bytes: capture it beside them"):
        parse_memory_blocks({k: v for k, v in ok.items() if "memory3" in k})


def test_the_capture_loads_through_the_registry():
    frames = load_capture(CAPTURE)
    assert len(frames["memory_blocks"]) == 32
