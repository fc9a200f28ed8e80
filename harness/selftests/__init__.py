"""The kernel's own selftests (tools/testing/selftests/mm, memory-hotplug) in every guest.

suite: which tests, how, and why the others are left out (the registry);
build: the programs, static, from the source the kernel is built from (cached);
tap: parse what a program printed (pure); verdict: judge results (pure);
run: boot a guest per (variant, topology), run, store, judge (`harness selftests`).
"""

from harness.selftests.build import SelftestBuild, build_selftests
from harness.selftests.run import SelftestsOptions, raise_for_verdicts, run_selftests
from harness.selftests.suite import DEFAULT, LEFT_OUT, SELFTESTS, Selftest, select
from harness.selftests.tap import parse_tap

__all__ = ["DEFAULT", "LEFT_OUT", "SELFTESTS", "Selftest", "SelftestBuild", "SelftestsOptions", "build_selftests",
           "parse_tap", "raise_for_verdicts", "run_selftests", "select"]
