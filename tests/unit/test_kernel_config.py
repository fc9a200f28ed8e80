"""Flavor files, fragment parsing and config verification (harness.kernel.config), on a real .config."""

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.kernel.config import list_flavors, load_flavor, parse_fragment, requested_options, verify_config
from harness.metrics.kconfig import ConfigOption, parse_config_text

DATA = Path(__file__).resolve().parents[1] / "data" / "kernel"
REAL_CONFIG = (DATA / "vanilla-6.12.118.config").read_text()


def test_parse_values():
    opts = parse_config_text(
        'CONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_D="hello world"\n'
        "CONFIG_E=64\nCONFIG_F=0x1000\n# a comment\n\nCONFIG_G=n\nCONFIG_A=n\n",
        source="frag",
    )
    assert {k: v.value for k, v in opts.items()} == {
        "A": "n", "B": "m", "C": "n", "D": '"hello world"', "E": "64", "F": "0x1000", "G": "n"}
    assert opts["A"].line == 10 and opts["A"].source == "frag"
    assert str(opts["C"]) == "# CONFIG_C is not set" and str(opts["E"]) == "CONFIG_E=64"


def test_malformed_fragment_line_names_file_and_line():
    with pytest.raises(ConfigError, match=r"frag:2: not a config option line"):
        parse_config_text("CONFIG_A=y\nCONFIG_B=yes please\n", source="frag")
    with pytest.raises(ConfigError, match="frag:1"):
        parse_config_text("DEBUG_VM=y\n", source="frag")


def test_real_config_parses():
    opts = parse_config_text(REAL_CONFIG, strict=False)
    assert opts["NUMA"].value == "y"
    assert opts["NR_CPUS"].value == "64"
    assert opts["CC_VERSION_TEXT"].value.startswith('"gcc')
    assert opts["MODULES"].value == "n"


def test_flavors_load():
    assert {"vanilla", "regions", "debug"} <= set(list_flavors())
    van, reg = load_flavor("vanilla"), load_flavor("regions")
    assert not van.patches and reg.patches
    # vanilla and regions share base.config: they compare fairly
    assert van.fragments[0] == reg.fragments[0] and van.fragments[0].name == "base.config"
    # every shipped fragment parses
    for name in list_flavors():
        requested_options(load_flavor(name).fragments)


def test_bad_flavor_files(tmp_path):
    with pytest.raises(ConfigError, match="unknown kernel flavor"):
        load_flavor("nope", tmp_path)
    (tmp_path / "x.yaml").write_text("fragments: [missing.config]\npatches: false\n")
    with pytest.raises(ConfigError, match="missing.config does not exist"):
        load_flavor("x", tmp_path)
    (tmp_path / "a.config").write_text("CONFIG_A=y\n")
    (tmp_path / "y.yaml").write_text("fragments: [a.config]\npatches: maybe\n")
    with pytest.raises(ConfigError, match="'patches'"):
        load_flavor("y", tmp_path)
    (tmp_path / "z.yaml").write_text("fragments: [a.config]\npatch: true\n")
    with pytest.raises(ConfigError, match="unknown field"):
        load_flavor("z", tmp_path)


def test_base_config_is_satisfied_by_real_config():
    verify_config(requested_options(load_flavor("vanilla").fragments), REAL_CONFIG)


def test_dropped_option_is_named_with_fragment(tmp_path):
    frag = tmp_path / "extra.config"
    frag.write_text("CONFIG_NUMA=y\n# comment\nCONFIG_DEBUG_VM=y\n# CONFIG_SMP is not set\nCONFIG_NR_CPUS=64\n")
    with pytest.raises(ConfigError) as exc:
        verify_config(parse_fragment(frag), REAL_CONFIG)
    msg = str(exc.value)
    assert "CONFIG_DEBUG_VM: extra.config:3 asks for y" in msg
    assert "CONFIG_SMP: extra.config:4 asks for n" in msg
    assert "CONFIG_NUMA:" not in msg and "NR_CPUS" not in msg


def test_numbers_compare_by_value():
    verify_config({"X": ConfigOption("X", "0x10")}, "CONFIG_X=16\n")
    verify_config({"Y": ConfigOption("Y", "n")}, "")  # absent == not set
    with pytest.raises(ConfigError):
        verify_config({"X": ConfigOption("X", '"a"')}, 'CONFIG_X="b"\n')


def test_kconfig_dependency_and_nonexistent(tmp_path):
    # a miniature kernel tree: the grep of Kconfig files is what is tested
    (tmp_path / "mm").mkdir()
    (tmp_path / "Kconfig").write_text('source "mm/Kconfig"\n')
    (tmp_path / "mm" / "Kconfig.debug").write_text(
        "config DEBUG_PAGEALLOC\n\tbool \"Debug page memory allocations\"\n"
        "\tdepends on DEBUG_KERNEL\n\tdepends on !HIBERNATION || ARCH_SUPPORTS_DEBUG_PAGEALLOC\n"
        "\nconfig OTHER\n\tdepends on FOO\n"
    )
    requested = {"DEBUG_PAGEALLOC": ConfigOption("DEBUG_PAGEALLOC", "y", "debug.config", 7),
                 "REGION_TYPO": ConfigOption("REGION_TYPO", "y", "debug.config", 9)}
    final = "# CONFIG_DEBUG_KERNEL is not set\nCONFIG_HIBERNATION=y\n"
    with pytest.raises(ConfigError) as exc:
        verify_config(requested, final, tmp_path)
    msg = str(exc.value)
    assert "CONFIG_DEBUG_PAGEALLOC: debug.config:7" in msg
    assert "depends on (DEBUG_KERNEL) && (!HIBERNATION || ARCH_SUPPORTS_DEBUG_PAGEALLOC)" in msg
    assert "CONFIG_DEBUG_KERNEL is not set" in msg and "CONFIG_HIBERNATION is set" in msg
    assert "mm/Kconfig.debug:1" in msg
    assert "FOO" not in msg  # the next block's depends is not mixed in
    assert "CONFIG_REGION_TYPO: debug.config:9" in msg and "does not exist" in msg
