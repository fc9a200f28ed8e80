"""The pytest plugin: a guest that failed to boot fails every test asking for it, booted once."""

pytest_plugins = ["pytester"]

INNER = '''
import pytest
from types import SimpleNamespace
import harness.pytest_plugin as plugin

BOOTS = []

@pytest.fixture(autouse=True, scope="session")
def fake_kernel(tmp_path_factory, rh_state):
    bogus = tmp_path_factory.mktemp("k") / "bzImage"
    bogus.write_text("not a kernel")
    rh_state.builds["vanilla"] = SimpleNamespace(key="bogus", bzimage=bogus)
    real = plugin.guest
    def counting(*a, **kw):
        BOOTS.append(a)
        return real(*a, **kw)
    plugin.guest = counting

@pytest.mark.parametrize("i", range(3))
def test_asks_for_a_guest(rh_guest, i):
    rh_guest("vanilla", "two-node")

def test_booted_once():
    assert len(BOOTS) == 1
'''


def test_failed_boot_is_reraised_not_retried(pytester):
    pytester.makepyfile(test_inner=INNER)
    # a subprocess: the inner session patches the plugin module, which must not leak out
    result = pytester.runpytest_subprocess("--rh-accel", "tcg")
    result.assert_outcomes(failed=3, passed=1)
    # every failing test carries QEMU's own complaint, i.e. the first boot's error
    assert result.stdout.str().count("VMError") >= 3
