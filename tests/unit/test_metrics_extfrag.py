"""The extfrag parsers on real debugfs captures (6.12, interleaved-small, after a stress)."""

import pytest

from harness.errors import ParseError
from harness.metrics import parse_snapshot
from harness.metrics.extfrag import parse_extfrag
from harness.metrics.registry import live_paths

CAPTURE = "6.12-vanilla-interleaved-small/extfrag"


def test_unusable_index(data_dir):
    text = (data_dir / "captures" / CAPTURE / "unusable_index").read_text()
    df = parse_extfrag(text, "unusable_index")
    assert list(df.index) == [(0, "DMA32"), (1, "DMA32")]
    assert list(df.columns) == [f"order{i}" for i in range(11)]
    assert df.loc[(1, "DMA32"), "order10"] == pytest.approx(0.015)
    assert (df.diff(axis=1).iloc[:, 1:] >= 0).all().all()   # less usable for larger orders


def test_extfrag_index_and_snapshot_dispatch(data_dir):
    d = data_dir / "captures" / CAPTURE
    frames = parse_snapshot({"extfrag/extfrag_index": (d / "extfrag_index").read_text(),
                             "extfrag/unusable_index": (d / "unusable_index").read_text()})
    assert (frames["extfrag_index"] == -1.0).all().all()    # every order would succeed right now
    assert frames["unusable_index"].shape == (2, 11)
    assert "/sys/kernel/debug/extfrag/extfrag_index" in live_paths()


@pytest.mark.parametrize("bad", [
    "Node 0, zone DMA32 0.000 0.001\nNode 1, zone DMA32 0.000\n",   # orders differ
    "Node 0, zone DMA32 1.500\n",                                    # outside [0, 1]
    "Node 0 DMA32 0.000\n",
    "Node 0, zone DMA32 0.000",                                      # cut off
])
def test_garbled(bad):
    with pytest.raises(ParseError):
        parse_extfrag(bad, "extfrag_index")
