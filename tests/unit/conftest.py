"""Shared fixtures of the unit tests: the measured q35 guest's layout inputs and the real captures under tests/data.

A test taking ``capture_dir`` runs once per tests/data/captures/<kernel>-<topology>/
directory (``@pytest.mark.captures("*-two-node")`` narrows the set); with none, the
parametrization is empty and pytest reports it as such. ``capture_files`` and
``capture_frames`` are that directory read and parsed, once per test module.
"""

from pathlib import Path

import pytest

from harness.fs import read_tree
from harness.metrics import parse_snapshot
from harness.model.layout import Layout, compute_layout
from harness.units import GiB, MiB

DATA = Path(__file__).resolve().parents[1] / "data"
CAPTURES = DATA / "captures"

# q35 + SeaBIOS e820 for a 2 GiB guest, as the guest's dmesg prints it (end exclusive)
Q35_2G = (
    (0x0, 0x9FC00, "usable"),
    (0x9FC00, 0xA0000, "reserved"),
    (0xF0000, 0x100000, "reserved"),
    (0x100000, 0x7FFDF000, "usable"),
    (0x7FFDF000, 0x80000000, "reserved"),
    (0xB0000000, 0xC0000000, "reserved"),
    (0xFED1C000, 0xFED20000, "reserved"),
    (0xFEFFC000, 0xFF000000, "reserved"),
    (0xFFFC0000, 0x100000000, "reserved"),
    (0xFD00000000, 0x10000000000, "reserved"),
)
# the measured interleaved guest: 512 MiB stripes alternating between two nodes
INTERLEAVED = {0: ((0, 512 * MiB), (1 * GiB, 1 * GiB + 512 * MiB)),
               1: ((512 * MiB, 1 * GiB), (1 * GiB + 512 * MiB, 2 * GiB))}
# a defconfig kernel builds DMA and DMA32 (Normal and Movable always exist)
DEFCONFIG_ZONES = ("DMA", "DMA32")


def pytest_configure(config):
    config.addinivalue_line("markers", "captures(glob): run a capture_dir test only on the matching captures")


def pytest_generate_tests(metafunc):
    if "capture_dir" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("captures")
    pattern = marker.args[0] if marker else "*"
    dirs = sorted(p for p in CAPTURES.glob(pattern) if p.is_dir()) if CAPTURES.is_dir() else []
    # module scope: capture_files/capture_frames read and parse each capture once per module
    metafunc.parametrize("capture_dir", dirs, ids=[p.name for p in dirs], scope="module")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """tests/data."""
    return DATA


@pytest.fixture(scope="module")
def capture_files(capture_dir: Path) -> dict[str, str]:
    """Every file of the capture as {relative path: text}; copy it before changing it."""
    return read_tree(capture_dir)


@pytest.fixture(scope="module")
def capture_frames(capture_files: dict[str, str]) -> dict:
    """The capture parsed by harness.metrics.parse_snapshot."""
    return parse_snapshot(capture_files)


@pytest.fixture(scope="session")
def q35_2g() -> tuple:
    """The e820 map of a 2 GiB q35 guest: (start, end exclusive, type)."""
    return Q35_2G


@pytest.fixture(scope="session")
def interleaved_srat() -> dict:
    """SRAT ranges of the interleaved two-node guest: node -> ((start, end exclusive), ...)."""
    return INTERLEAVED


@pytest.fixture(scope="session")
def defconfig_zones() -> tuple[str, ...]:
    return DEFCONFIG_ZONES


@pytest.fixture(scope="session")
def interleaved_layout() -> Layout:
    """The model's layout of the interleaved q35 guest with a defconfig kernel."""
    return compute_layout(Q35_2G, INTERLEAVED, DEFCONFIG_ZONES)
