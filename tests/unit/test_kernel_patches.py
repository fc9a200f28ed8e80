"""Series parsing and incremental application of the patch series (harness.kernel.patches)."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness.errors import PatchError
from harness.kernel.patches import apply_in_staging, parse_series, sync_series, touched_files

DATA = Path(__file__).resolve().parents[1] / "data" / "kernel"
P1 = "0001-mm-build-mm_regions.o.patch"
P2 = "0002-mm-no-KASAN-for-mm_regions.o.patch"


@pytest.fixture
def patches_dir(tmp_path):
    d = tmp_path / "kernel-patches"
    d.mkdir()
    for p in (P1, P2):
        shutil.copy(DATA / "patches" / p, d / p)
    return d


@pytest.fixture
def pristine(tmp_path):
    """A tiny 'pristine tree': the real mm/Makefile of 6.12.117."""
    d = tmp_path / "pristine"
    shutil.copytree(DATA / "tree", d)
    return d


def test_series_comments_blanks_and_order(patches_dir):
    (patches_dir / "series").write_text(
        f"# the region series\n\n{P1}   # first\n   \n# {P2} commented out would be skipped\n{P2} -p1\n"
    )
    series = parse_series(patches_dir)
    assert [p.name for p in series] == [P1, P2]
    assert [p.series_line for p in series] == [3, 6]
    assert series[0].content == (DATA / "patches" / P1).read_bytes()


def test_missing_or_empty_series_is_empty(tmp_path):
    assert parse_series(tmp_path) == []
    (tmp_path / "series").write_text("# nothing yet\n\n")
    assert parse_series(tmp_path) == []


def test_missing_patch_names_series_line(patches_dir):
    (patches_dir / "series").write_text(f"{P1}\n# comment\n0003-does-not-exist.patch\n")
    with pytest.raises(PatchError) as exc:
        parse_series(patches_dir)
    msg = str(exc.value)
    assert "series:3" in msg and "0003-does-not-exist.patch" in msg


def test_duplicate_patch_is_an_error(patches_dir):
    (patches_dir / "series").write_text(f"{P1}\n{P1}\n")
    with pytest.raises(PatchError, match="twice"):
        parse_series(patches_dir)


def test_touched_files_from_git_headers():
    assert touched_files((DATA / "patches" / P1).read_bytes()) == ["mm/Makefile", "mm/mm_regions.c"]
    plain = b"--- a/mm/x.c\n+++ b/mm/x.c\n@@ -1 +1 @@\n-a\n+b\n"
    assert touched_files(plain) == ["mm/x.c"]


def test_apply_in_staging(patches_dir, pristine, tmp_path):
    (patches_dir / "series").write_text(f"{P1}\n{P2}\n")
    staging = tmp_path / "staging"
    touched = apply_in_staging(parse_series(patches_dir), pristine, staging, "Linux 6.12.117")
    assert touched == ["mm/Makefile", "mm/mm_regions.c"]
    text = (staging / "mm/Makefile").read_text()
    assert "obj-y += mm_regions.o" in text and "KASAN_SANITIZE_mm_regions.o := n" in text
    assert (staging / "mm/mm_regions.c").exists()
    assert (pristine / "mm/Makefile").read_text() != text  # pristine untouched


def test_conflict_names_patch_file_hunk_and_version(patches_dir, pristine, tmp_path):
    # someone changed the context line the first hunk needs
    mk = pristine / "mm/Makefile"
    mk.write_text(mk.read_text().replace("obj-$(CONFIG_NUMA) += memory-tiers.o", "obj-y += memory-tiers.o"))
    (patches_dir / "series").write_text(f"{P1}\n")
    with pytest.raises(PatchError) as exc:
        apply_in_staging(parse_series(patches_dir), pristine, tmp_path / "staging",
                         "Linux 6.12.117 (Debian 6.12.117-1)")
    msg = str(exc.value)
    assert P1 in msg
    assert "mm/Makefile" in msg
    assert "hunk #1 FAILED at line 93" in msg
    assert "6.12.117" in msg


def test_sync_writes_only_changed_files_and_restores(patches_dir, pristine, tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(pristine, tree)
    (tree / "mm/other.c").write_text("untouched\n")
    old = time.time() - 3600
    for f in (tree / "mm/Makefile", tree / "mm/other.c"):
        os.utime(f, (old, old))
    state = tmp_path / "state"
    state.mkdir()
    (patches_dir / "series").write_text(f"{P1}\n{P2}\n")
    series = parse_series(patches_dir)

    res = sync_series(series, pristine, tree, "Linux 6.12.117", state)
    assert sorted(res["changed"]) == ["mm/Makefile", "mm/mm_regions.c"]
    assert os.stat(tree / "mm/other.c").st_mtime == pytest.approx(old)
    mtime_after = os.stat(tree / "mm/Makefile").st_mtime
    assert mtime_after > old

    # same series again: nothing written, mtimes kept (make rebuilds nothing)
    res = sync_series(series, pristine, tree, "Linux 6.12.117", state)
    assert res["changed"] == []
    assert os.stat(tree / "mm/Makefile").st_mtime == mtime_after

    # only patch 1: the Makefile changes back, the new file stays
    res = sync_series(series[:1], pristine, tree, "Linux 6.12.117", state)
    assert res["changed"] == ["mm/Makefile"]
    assert "KASAN_SANITIZE_mm_regions.o" not in (tree / "mm/Makefile").read_text()

    # empty series: pristine restored, the created file removed
    res = sync_series([], pristine, tree, "Linux 6.12.117", state)
    assert sorted(res["changed"]) == ["mm/Makefile", "mm/mm_regions.c"]
    assert (tree / "mm/Makefile").read_bytes() == (pristine / "mm/Makefile").read_bytes()
    assert not (tree / "mm/mm_regions.c").exists()


def test_sync_on_a_hard_linked_tree_leaves_pristine_intact(patches_dir, pristine, tmp_path):
    """Flavor trees of an extracted tarball are `cp -al` links of the pristine tree."""
    tree = tmp_path / "tree"
    subprocess.run(["cp", "-al", str(pristine), str(tree)], check=True)
    before = {p.relative_to(pristine): p.read_bytes() for p in pristine.rglob("*") if p.is_file()}
    assert os.stat(tree / "mm/Makefile").st_ino == os.stat(pristine / "mm/Makefile").st_ino
    state = tmp_path / "state"
    state.mkdir()
    (patches_dir / "series").write_text(f"{P1}\n{P2}\n")
    series = parse_series(patches_dir)

    res = sync_series(series, pristine, tree, "Linux 6.12.117", state)
    assert "mm/Makefile" in res["changed"]
    assert (tree / "mm/Makefile").read_bytes() != before[Path("mm/Makefile")]
    after = {p.relative_to(pristine): p.read_bytes() for p in pristine.rglob("*") if p.is_file()}
    assert after == before
    # and back to pristine: still nothing written through a link
    sync_series([], pristine, tree, "Linux 6.12.117", state)
    assert (tree / "mm/Makefile").read_bytes() == before[Path("mm/Makefile")]
    assert {p.relative_to(pristine): p.read_bytes() for p in pristine.rglob("*") if p.is_file()} == before


def test_an_interrupted_sync_is_undone_by_the_next(patches_dir, pristine, tmp_path, monkeypatch):
    """Killed after changing one file of the series: syncing the empty series gives back pristine."""
    from harness.kernel import patches as patches_mod

    tree = tmp_path / "tree"
    shutil.copytree(pristine, tree)
    state = tmp_path / "state"
    state.mkdir()
    (patches_dir / "series").write_text(f"{P1}\n{P2}\n")
    series = parse_series(patches_dir)
    real = patches_mod._make_like
    calls = []

    def dies_after_one(want, dst):
        if calls:
            raise KeyboardInterrupt  # the harness was stopped mid-sync
        calls.append(dst)
        return real(want, dst)
    monkeypatch.setattr(patches_mod, "_make_like", dies_after_one)
    with pytest.raises(KeyboardInterrupt):
        sync_series(series, pristine, tree, "Linux 6.12.117", state)
    assert calls, "the interruption came after the tree changed"
    monkeypatch.setattr(patches_mod, "_make_like", real)
    sync_series([], pristine, tree, "Linux 6.12.117", state)
    files = lambda root: {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}  # noqa: E731
    assert files(tree) == files(pristine)
