"""Source resolution (harness.kernel.source) on tiny fake kernel trees and tarballs."""

import subprocess
import tarfile

import pytest

from harness.errors import SourceError
from harness.kernel import source as source_mod
from harness.kernel.source import check_clean_for_o_build, read_version, resolve_source

MAKEFILE = "# SPDX-License-Identifier: GPL-2.0\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\nEXTRAVERSION =\n"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REGION_HARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fake_tree(path):
    path.mkdir(parents=True)
    (path / "Makefile").write_text(MAKEFILE)
    (path / "Kconfig").write_text("mainmenu \"Linux\"\n")
    return path


def test_read_version(tmp_path):
    assert read_version(fake_tree(tmp_path / "t")) == "6.12.117"
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "Makefile").write_text("all:\n")
    with pytest.raises(SourceError, match="not a kernel tree"):
        read_version(tmp_path / "bad")


def test_tarball_extracted_once_and_renamed(tmp_path, cache):
    tree = fake_tree(tmp_path / "linux-source-6.12")
    tarball = tmp_path / "linux.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(tree, arcname="linux-source-6.12")
    src = resolve_source(tarball)
    assert src.kind == "tarball" and src.version == "6.12.117"
    assert src.path.parent == cache / "src"
    assert src.path.name == f"linux-6.12.117-{src.tarball_sha256[:12]}"
    assert not list((cache / "src").glob(".extract-*"))  # temp dir gone
    again = resolve_source(tarball)
    assert again.path == src.path and again.extract_seconds == 0.0
    assert again.identity == src.identity and src.tarball_sha256 in src.identity


def test_tree_identity_follows_git_head(tmp_path):
    tree = fake_tree(tmp_path / "linux")
    plain = resolve_source(tree)
    assert plain.kind == "tree" and plain.path == tree and plain.git_head is None
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    one = resolve_source(tree)
    assert one.git_head and one.identity != plain.identity
    (tree / "Kconfig").write_text("mainmenu \"Linux edited\"\n")
    dirty = resolve_source(tree)
    assert dirty.git_dirty and dirty.identity != one.identity


def test_missing_sources(tmp_path, monkeypatch):
    with pytest.raises(SourceError, match="does not exist"):
        resolve_source(tmp_path / "nope.tar.xz")
    monkeypatch.setattr(source_mod, "DEBIAN_TARBALL", tmp_path / "absent.tar.xz")
    with pytest.raises(SourceError, match="apt-get install linux-source-6.12"):
        resolve_source()


def test_configured_tree_is_refused_for_o_builds(tmp_path):
    tree = fake_tree(tmp_path / "linux")
    check_clean_for_o_build(tree)
    (tree / ".config").write_text("CONFIG_X=y\n")
    with pytest.raises(SourceError, match="mrproper"):
        check_clean_for_o_build(tree)
