"""Real kernel builds through harness.kernel.build: artifacts, metadata, cache hits, config errors.

These run make (minutes on a cold cache, seconds when the vanilla build dir is warm)
and take the shared build lock, so they are marked `vm` with the tests that boot kernels.
"""

import json
import shutil
import time
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.kernel import build, cache_root, parse_config_text, resolve_source
from harness.kernel.source import DEBIAN_TARBALL

pytestmark = pytest.mark.vm

if not DEBIAN_TARBALL.exists():
    pytest.skip(f"{DEBIAN_TARBALL} missing (apt-get install linux-source-6.12)", allow_module_level=True)

FLAVORS = Path(__file__).resolve().parents[2] / "qemu-configs" / "kernel"


@pytest.fixture(scope="module")
def vanilla():
    messages = []
    start = time.monotonic()
    result = build("vanilla", progress=messages.append)
    return result, time.monotonic() - start, messages


def test_vanilla_artifacts_and_metadata(vanilla):
    result, _, messages = vanilla
    for f in (result.bzimage, result.config_path, result.system_map, result.log_path,
              result.directory / "metadata.json"):
        assert f.is_file() and f.stat().st_size > 0, f
    assert result.bzimage.read_bytes()[0x202:0x206] == b"HdrS"  # x86 boot protocol header
    assert result.directory == cache_root() / "kernels" / result.key
    meta = result.metadata
    src = resolve_source()
    assert meta.key == result.key and meta.flavor in ("vanilla", "regions")
    assert meta.kernel_version == src.version
    assert meta.package_version == src.package_version
    assert meta.patches == []
    assert meta.compiler.startswith("gcc")
    assert meta.bzimage_size == result.bzimage.stat().st_size
    assert {"extract", "patch", "configure", "build", "total"} <= meta.durations.keys()
    assert any("make" in line and "bzImage" in line for line in meta.reproducer)
    on_disk = json.loads((result.directory / "metadata.json").read_text())
    assert on_disk["key"] == result.key and on_disk["schema"] == meta.schema
    opts = parse_config_text(result.config_path.read_text(), strict=False)
    assert opts["NUMA"].value == "y" and opts["ACPI_NUMA"].value == "y"
    assert any(m.startswith("source:") for m in messages)
    # no half-written entries are left around
    assert not list((cache_root() / "kernels").glob(".tmp-*"))


def test_second_call_is_a_cache_hit_under_a_second(vanilla):
    first, _, _ = vanilla
    start = time.monotonic()
    again = build("vanilla")
    elapsed = time.monotonic() - start
    assert again.cached
    assert again.key == first.key and again.bzimage == first.bzimage
    assert elapsed < 1.0, f"cache hit took {elapsed:.2f} s"


def test_bogus_option_raises_config_error_naming_it(tmp_path, vanilla):
    # a throwaway flavor: base.config plus one option that does not exist
    shutil.copy(FLAVORS / "base.config", tmp_path / "base.config")
    (tmp_path / "bogus.config").write_text("# not a real option\nCONFIG_REGION_HARNESS_BOGUS=y\n")
    (tmp_path / "vanilla.yaml").write_text(
        "description: vanilla with a bogus option\nfragments: [base.config, bogus.config]\npatches: false\n")
    # named "vanilla" so it reuses the warm vanilla build dir: configure fails before make
    with pytest.raises(ConfigError) as exc:
        build(tmp_path / "vanilla.yaml")
    msg = str(exc.value)
    assert "CONFIG_REGION_HARNESS_BOGUS" in msg and "bogus.config:2" in msg
    assert "does not exist" in msg
