"""pytest plugin: kernels built once per session and VMs booted once per (kernel, topology).

Registered through the pytest11 entry point. Options are prefixed --rh-, markers are
`vm` (boots real kernels) and `slow`. A VM that failed to boot fails every test that
asks for it with its first error, instead of booting again for each test.
"""

from __future__ import annotations

import tempfile
from collections import OrderedDict
from pathlib import Path

import pytest

from harness import kernel, topology
from harness.errors import HarnessError
from harness.session import guest
from harness.variant import Variant
from harness.vm import VM

_STATE = pytest.StashKey["_State"]()

#: booted guests kept alive at once (each TCG guest costs a host thread when busy)
MAX_LIVE_VMS = 2


def pytest_addoption(parser):
    group = parser.getgroup("region-harness")
    group.addoption("--rh-flavor", default="regions",
                    help="kernel flavor for the rh_kernel/rh_vm fixtures (default: regions)")
    group.addoption("--rh-topology", default="",
                    help="comma-separated topologies rh_vm runs on (default: every shipped one)")
    group.addoption("--rh-source", default=None,
                    help="kernel source: tarball or tree (default: Debian's linux-source-6.12)")
    group.addoption("--rh-accel", default="auto", choices=("auto", "tcg", "kvm"),
                    help="QEMU acceleration (default: probe, fall back to tcg)")
    group.addoption("--rh-workdir", default=None,
                    help="directory for VM work dirs and console logs (default: a temp dir)")


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: boots real kernels in QEMU (builds them first)")
    config.addinivalue_line("markers", "slow: takes minutes (stress, soak, each-patch builds)")
    config.stash[_STATE] = _State(config)


def pytest_unconfigure(config):
    state = config.stash.get(_STATE, None)
    if state is not None:
        state.close()


def _selected_topologies(config) -> list[str]:
    raw = config.getoption("--rh-topology")
    names = [n.strip() for n in raw.split(",") if n.strip()] if raw else topology.list_topologies()
    for n in names:
        topology.load(n)  # fails collection with the file and field when one is invalid
    return names


def pytest_generate_tests(metafunc):
    if "rh_topology" in metafunc.fixturenames:
        names = _selected_topologies(metafunc.config)
        metafunc.parametrize("rh_topology", names, ids=names, scope="session")


class _State:
    """Session-wide caches: builds per flavor, booted VMs per (kernel, topology, append)."""

    def __init__(self, config):
        self.config = config
        self.builds: dict[str, object] = {}
        self.build_errors: dict[str, BaseException] = {}
        self.vms: OrderedDict[tuple, VM] = OrderedDict()
        self.boot_errors: dict[tuple, BaseException] = {}
        given = config.getoption("--rh-workdir", None)
        self._tmp = None if given else tempfile.TemporaryDirectory(prefix="rh-pytest-")
        self.workdir = Path(given or self._tmp.name)
        self.counter = 0

    def build(self, flavor: str):
        if flavor in self.build_errors:
            raise self.build_errors[flavor]
        if flavor not in self.builds:
            try:
                self.builds[flavor] = kernel.build(flavor, self.config.getoption("--rh-source"))
            except HarnessError as exc:
                self.build_errors[flavor] = exc
                raise
        return self.builds[flavor]

    def vm(self, variant: str, topo_name: str, append: str = ""):
        v = Variant.parse(variant)
        append = " ".join(a for a in (v.append, append) if a)
        result = self.build(v.flavor)
        key = (result.key, topo_name, append)
        if key in self.boot_errors:
            raise self.boot_errors[key]
        if key in self.vms:
            self.vms.move_to_end(key)
            return self.vms[key]
        while len(self.vms) >= MAX_LIVE_VMS:
            _, old = self.vms.popitem(last=False)
            old.shutdown()
        self.counter += 1
        topo = topology.load(topo_name)
        workdir = self.workdir / f"{self.counter:03d}-{variant}-{topo_name}"
        vm = guest(result.bzimage, topo, workdir, append=append,
                   accel=self.config.getoption("--rh-accel"), name=f"{variant}-{topo_name}")
        try:
            vm.start()
        except BaseException as exc:
            vm.shutdown()
            self.boot_errors[key] = exc
            raise
        self.vms[key] = vm
        return vm

    def close(self):
        while self.vms:
            _, vm = self.vms.popitem()
            vm.shutdown()
        if self._tmp is not None:
            self._tmp.cleanup()


@pytest.fixture(scope="session")
def rh_state(request) -> _State:
    return request.config.stash[_STATE]


@pytest.fixture(scope="session")
def rh_kernel(rh_state, request):
    """The BuildResult of the --rh-flavor kernel (built or taken from the cache once)."""
    return rh_state.build(request.config.getoption("--rh-flavor"))


@pytest.fixture(scope="session")
def rh_build(rh_state):
    """Factory: rh_build("vanilla") -> BuildResult, built once per session."""
    return rh_state.build


@pytest.fixture
def rh_vm(rh_state, rh_topology, request):
    """A booted --rh-flavor guest on each selected topology, shared by the tests that use it."""
    vm = rh_state.vm(request.config.getoption("--rh-flavor"), rh_topology)
    vm.check_console()
    return vm


@pytest.fixture
def rh_guest(rh_state):
    """Factory: rh_guest(variant, topology, append="") -> booted VM, cached per arguments.

    variant is a flavor, optionally with boot parameters: "regions+mem_region_sort=0".
    """
    def get(variant: str, topo_name: str, append: str = ""):
        vm = rh_state.vm(variant, topo_name, append)
        vm.check_console()
        return vm
    return get
