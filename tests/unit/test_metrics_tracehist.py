"""The fallback histogram (kmem/mm_page_alloc_extfrag by fallback order) on a real capture.

6.12-thpchallenge-two-node: the regions kernel after 20 s of thp-challenge on two-node.
"""

import pytest

from harness.errors import ParseError
from harness.metrics import parse_snapshot
from harness.metrics.tracehist import parse_extfrag_hist

CAPTURE = "6.12-thpchallenge-two-node"


@pytest.fixture
def hist(data_dir):
    return (data_dir / "captures" / CAPTURE / "mm_page_alloc_extfrag-hist").read_text()


def test_counts_per_fallback_order(hist):
    row = parse_extfrag_hist(hist).iloc[0]
    assert list(row.index) == [f"order{i}" for i in range(11)] + ["total"]
    assert (row["order8"], row["order9"], row["order10"], row["total"]) == (1, 3, 11, 15)
    assert row[[f"order{i}" for i in range(8)]].sum() == 0


def test_snapshot_dispatches_the_capture_name_and_the_guest_path(hist):
    for name in ("mm_page_alloc_extfrag-hist", "/sys/kernel/tracing/events/kmem/mm_page_alloc_extfrag/hist"):
        assert int(parse_snapshot({name: hist})["extfrag_events"].iloc[0]["total"]) == 15


def test_another_histogram_beside_ours_is_ignored(hist):
    other = ("# event histogram\n#\n# trigger info: hist:keys=alloc_order:vals=hitcount:sort=hitcount:size=2048 "
             "[active]\n#\n\n{ alloc_order:          0 } hitcount:         99\n\nTotals:\n    Hits: 99\n"
             "    Entries: 1\n    Dropped: 0\n\n\n")
    assert int(parse_extfrag_hist(other + hist).iloc[0]["total"]) == 15


@pytest.mark.parametrize("edit, message", [
    (lambda t: "", "no histogram on kmem/mm_page_alloc_extfrag"),
    (lambda t: t.replace("Dropped: 0", "Dropped: 4"), "dropped 4 events"),
    (lambda t: t.replace("Hits: 15", "Hits: 16"), "totals say 3 entries and 16 hits"),
    (lambda t: t.replace("hitcount:          3", "hitcount: three"), "expected '{ fallback_order: N }"),
    (lambda t: t.replace("keys=fallback_order", "keys=alloc_order"), "no histogram with trigger"),
    (lambda t: t.rstrip("\n"), "truncated"),
    (lambda t: t.replace("fallback_order:         10", "fallback_order: 99999999999"), "is no buddy order"),
])
def test_a_garbled_histogram_is_an_error_naming_the_file(hist, edit, message):
    with pytest.raises(ParseError, match=message) as err:
        parse_extfrag_hist(edit(hist), "node/hist")
    assert "node/hist" in str(err.value)


def test_metrics_split_the_workload_s_fallbacks_at_the_pageblock_order(tmp_path, hist):
    from harness.results import store
    from harness.results.metrics import extract_metrics
    # before: the capture with fewer events at orders 8 and 10; after: the capture itself
    before = (hist.replace("{ fallback_order:          8 } hitcount:          1\n", "")
              .replace("hitcount:         11", "hitcount:          4")
              .replace("Hits: 15", "Hits: 7").replace("Entries: 3", "Entries: 2"))
    g = tmp_path / "g"
    for label, text in (("before", before), ("after", hist)):
        d = g / "snapshots" / label
        d.mkdir(parents=True)
        (d / "mm_page_alloc_extfrag-hist").write_text(text)
        (d / "time").write_text("host 1000.0\nguest_uptime 5.0\n")
    store.write_metrics(g)
    m = extract_metrics(g)
    assert m["extfrag_fragmenting"] == 1 and m["extfrag_pageblock"] == 7
