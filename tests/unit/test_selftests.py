"""harness.selftests: TAP parsing, outcomes, the verdict, the registry, the build key; on real guest output.

tests/data/selftests/<capture>/ holds what the programs printed in a TCG guest
(<test>.tap) and how they exited (exit-status): 6.12-tinyconfig-no-madvise is a
kernel without CONFIG_ADVISE_SYSCALLS (why the base config now has it);
6.12-regions-two-node is the regions kernel with the base config of today, on two-node
(migration_thp on four-node: it needs 3 CPUs; split_huge_page_test was killed at 180 s).
"""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import InfraError, UserError
from harness.kernel import parse_series
from harness.selftests import suite, tap, verdict
from harness.selftests.build import _relevant, selftests_key
from harness.selftests.run import _nodes_with_memory, guest_command, program_rows, split_output

DATA = Path(__file__).resolve().parents[1] / "data" / "selftests"
NO_MADVISE = DATA / "6.12-tinyconfig-no-madvise"
REGIONS = DATA / "6.12-regions-two-node"


def capture(directory: Path) -> dict[str, tuple[str, int]]:
    """{test: (output, exit status)} of one capture directory."""
    status = dict(line.split() for line in (directory / "exit-status").read_text().splitlines())
    return {name: ((directory / f"{name}.tap").read_text(), int(rc)) for name, rc in status.items()}


def test_a_passing_program():
    text, rc = capture(NO_MADVISE)["compaction_test"]
    parsed = tap.parse_tap(text)
    assert (parsed.plan, [t.result for t in parsed.tests]) == (1, [tap.PASS])
    assert parsed.totals == {"pass": 1, "fail": 0, "xfail": 0, "xpass": 0, "skip": 0, "error": 0}
    assert "Number of huge pages allocated = 373" in parsed.comments
    assert tap.outcome(rc, parsed) == tap.Outcome(tap.PASS)


def test_a_bail_out_is_the_reason_of_the_failure():
    text, rc = capture(NO_MADVISE)["hugepage-mmap"]
    parsed = tap.parse_tap(text)
    assert parsed.bail_out == "mmap(): Cannot allocate memory" and not parsed.tests
    got = tap.outcome(rc, parsed)
    assert got.result == tap.FAIL and "mmap(): Cannot allocate memory" in got.reason


def test_skips_with_and_without_tap():
    runs = capture(NO_MADVISE)
    plain = tap.outcome(runs["hugetlb-madvise"][1], tap.parse_tap(runs["hugetlb-madvise"][0]))
    assert plain == tap.Outcome(tap.SKIP, "Not enough free huge pages to test, exiting!")
    parsed = tap.parse_tap(runs["madv_populate"][0])
    assert [(t.number, t.result, t.reason) for t in parsed.tests] == [
        (2, tap.SKIP, "MADV_POPULATE_READ is not available")]
    assert tap.outcome(runs["madv_populate"][1], parsed) == tap.Outcome(tap.SKIP,
                                                                         "MADV_POPULATE_READ is not available")
    # the same output with exit status 0 ran 1 of 16 planned tests: not a pass
    assert tap.outcome(0, parsed).result == tap.FAIL


def test_xfail_and_failed_subtests():
    text, rc = capture(NO_MADVISE)["mremap_test"]
    parsed = tap.parse_tap(text)
    counts = {r: sum(t.result == r for t in parsed.tests) for r in tap.RESULTS}
    assert (counts[tap.PASS], counts[tap.FAIL], counts[tap.XFAIL]) == (12, 4, 3)
    assert parsed.totals["pass"] == 12 and parsed.totals["fail"] == 4 and parsed.totals["xfail"] == 3
    first = parsed.tests[0]
    assert first.name == "mremap - Source and Destination Regions Overlapping" and first.result == tap.XFAIL
    got = tap.outcome(rc, parsed)
    assert got.result == tap.FAIL and "4 of 19 tests failed: 2GB mremap" in got.reason
    assert tap.outcome(tap.TIMEOUT_STATUS, parsed).result == tap.TIMEOUT


@pytest.mark.parametrize("directory", [NO_MADVISE, REGIONS], ids=lambda d: d.name)
def test_counts_agree_with_the_totals_line(directory):
    """Where a program prints kselftest's Totals line, the parsed test lines add up to it."""
    checked = 0
    for name, (text, _) in capture(directory).items():
        parsed = tap.parse_tap(text)
        if parsed.totals is None:
            continue
        got = {r: sum(t.result == r for t in parsed.tests) for r in ("pass", "fail", "xfail", "xpass", "skip")}
        assert got == {k: v for k, v in parsed.totals.items() if k != "error"}, name
        checked += 1
    assert checked >= 5


def test_a_test_number_printed_twice_counts_once():
    """ksm_functional_tests forks with unflushed stdout: its child repeats "ok 8" and a totals line."""
    parsed = tap.parse_tap(capture(REGIONS)["ksm_functional_tests"][0])
    assert parsed.repeated == 1 and [t.number for t in parsed.tests] == list(range(1, 10))
    assert parsed.tests[7].name == "PR_SET_MEMORY_MERGE value is inherited"


def test_a_regions_guest_passes_what_it_ran():
    runs = capture(REGIONS)
    for name, (text, rc) in runs.items():
        if name != "split_huge_page_test":
            assert tap.outcome(rc, tap.parse_tap(text)).result == tap.PASS, name
    cow = tap.parse_tap(runs["cow"][0])
    assert len(cow.tests) == cow.plan > 700
    assert cow.tests[0].name.startswith("Basic COW after fork()")  # from its [RUN] line
    migration = tap.parse_tap(runs["migration_thp"][0]).tests
    assert [(t.name, t.result) for t in migration] == [("migration.private_anon_thp", tap.PASS)]
    # a shell script that prints no TAP: its exit status is its result
    hotplug = tap.parse_tap(runs["mem-on-off-test"][0])
    assert not hotplug.is_tap and "Test scope: 10% hotplug memory" in hotplug.comments


def test_a_program_killed_by_the_timeout():
    text, rc = capture(REGIONS)["split_huge_page_test"]
    test = suite.Selftest("split_huge_page_test", "mm/split_huge_page_test", timeout=180)
    rows = program_rows(test, text, rc, 180.7)
    assert rows[0]["result"] == tap.TIMEOUT and rows[0]["status"] == 143
    assert [r["result"] for r in rows[1:]] == [tap.PASS] * 3 + [tap.SKIP] * 7
    # the same status long before the timeout: something else killed it
    assert program_rows(test, text, rc, 12.0)[0]["result"] == tap.FAIL


def test_run_lines_name_the_tests_that_follow_them():
    text = ("TAP version 13\n1..2\n# [RUN] Basic COW after fork() ... with base page\n"
            "not ok 1 MADV_HUGEPAGE failed\n# [RUN] Basic COW after fork() ... with THP\nok 2 No leak\n")
    names = [t.name for t in tap.parse_tap(text).tests]
    assert names == ["Basic COW after fork() ... with base page", "Basic COW after fork() ... with THP"]


def test_nested_ktap_levels_are_not_top_level_tests():
    parsed = tap.parse_tap("TAP version 13\n1..1\n    1..2\n    ok 1 inner\n    not ok 2 inner\nok 1 outer\n")
    assert [(t.number, t.description) for t in parsed.tests] == [(1, "outer")]


def _rows(variant, topo, runs, override=None):
    rows = []
    for name, (text, rc) in runs.items():
        rc = (override or {}).get(name, rc)
        test = suite.Selftest(name, f"mm/{name}")
        for r in program_rows(test, text, rc, 1.0):
            rows.append({**r, "variant": variant, "topology": topo})
    return verdict.results_frame(rows)


def test_compare_finds_the_test_that_passes_on_the_base_only():
    runs = capture(NO_MADVISE)
    base = _rows("vanilla", "two-node", runs)
    # the same outputs on a kernel where compaction_test exits 1
    other = _rows("regions", "two-node", runs, {"compaction_test": 1})
    results = verdict.results_frame([*base.to_dict("records"), *other.to_dict("records")])
    verdicts = verdict.compare(results, "vanilla")
    bad = verdict.regressions(verdicts)
    assert bad[["test", "subtest"]].values.tolist() == [["compaction_test", ""]]
    by_test = verdicts[verdicts["subtest"] == ""].set_index("test")["verdict"].to_dict()
    assert by_test["hugepage-mmap"] == verdict.BOTH_FAIL and by_test["hugetlb-madvise"] == verdict.SKIPPED
    text = verdict.render(results, verdicts, "vanilla")
    assert "1 regression(s) against vanilla" in text and "compaction_test: pass -> fail" in text
    assert "hugetlb-madvise: skip: Not enough free huge pages" in text


def test_judge():
    assert verdict.judge(tap.PASS, tap.FAIL) == verdict.REGRESSION
    assert verdict.judge(tap.PASS, None) == verdict.REGRESSION  # the subtest never ran
    assert verdict.judge(tap.XFAIL, tap.TIMEOUT) == verdict.REGRESSION
    assert verdict.judge(tap.FAIL, tap.PASS) == verdict.FIXED
    assert verdict.judge(tap.FAIL, tap.ERROR) == verdict.BOTH_FAIL
    assert verdict.judge(tap.PASS, tap.SKIP) == verdict.SKIPPED
    assert verdict.judge(verdict.NOT_RUN, tap.PASS) == verdict.INCOMPLETE
    assert verdict.judge(tap.PASS, tap.PASS) == verdict.SAME


def test_a_subtest_missing_because_the_guest_stopped_is_not_run():
    rows = [
        {"variant": "vanilla", "topology": "t", "test": "cow", "subtest": "", "result": tap.PASS},
        {"variant": "vanilla", "topology": "t", "test": "cow", "subtest": "1 a", "result": tap.PASS},
        {"variant": "regions", "topology": "t", "test": "cow", "subtest": "", "result": verdict.NOT_RUN},
    ]
    verdicts = verdict.compare(verdict.results_frame(rows), "vanilla")
    assert set(verdicts["verdict"]) == {verdict.INCOMPLETE}


def test_guest_command_output_round_trip():
    test = suite.SELFTESTS["hugepage-mmap"]
    cmd = guest_command(test, test.hugepages)
    assert f"echo {test.hugepages} > /proc/sys/vm/nr_hugepages" in cmd and "timeout 180 ./mm/hugepage-mmap" in cmd
    assert "bash ./memory-hotplug/mem-on-off-test.sh" in guest_command(suite.SELFTESTS["mem-on-off-test"], 0)
    out, rc, secs = split_output("1..1\nok 1 x\n\n@@rh-selftest rc=4 t0=10.50 t1=12.75\n", "g: t")
    assert (out, rc, secs) == ("1..1\nok 1 x\n", 4, 2.25)
    with pytest.raises(InfraError, match="g: t: the guest command ended without"):
        split_output("1..1\nok 1 x\n", "g: t")


def test_registry():
    assert set(suite.DEFAULT) <= set(suite.SELFTESTS)
    assert [t.name for t in suite.select(["cow", "compaction_test"])] == ["compaction_test", "cow"]
    with pytest.raises(UserError, match="unknown selftest bogus"):
        suite.select(["bogus"])
    assert suite.programs(suite.select(["ksm_merge", "ksm_numa_merge"])) == ("mm/ksm_tests",)
    numa = suite.SELFTESTS["ksm_numa_merge"]
    assert "needs 2 nodes" in suite.skip_reason(numa, 1, 2, {"KSM": "y"})
    assert "CONFIG_KSM" in suite.skip_reason(numa, 2, 2, {})
    assert suite.skip_reason(numa, 2, 2, {"KSM": "y"}) is None
    assert "needs 3 CPUs, the guest has 2" in suite.skip_reason(suite.SELFTESTS["migration_thp"], 2, 2,
                                                                 {"MIGRATION": "y", "TRANSPARENT_HUGEPAGE": "y"})
    assert set(suite.select(["all"])) == set(suite.SELFTESTS.values())
    assert "ksm_functional_tests" not in suite.DEFAULT
    assert _nodes_with_memory("0-1\n") == 2 and _nodes_with_memory("0,2-3") == 3


def test_the_series_does_not_change_the_selftests_build():
    """Our series touches mm/ only: vanilla and regions share one selftests build (one key)."""
    series = parse_series()
    assert series and not [p.name for p in series if _relevant(p)]
    progs = suite.programs(suite.select(None))
    assert selftests_key("src", [], "gcc", progs) != selftests_key("src", [b"a tools/ patch"], "gcc", progs)
    assert selftests_key("src", [], "gcc", progs) != selftests_key("src", [], "gcc", progs[:1])


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_parse_tap_takes_any_mutation_of_real_output(data):
    """Cut, garbled or repeated lines of a real capture: a result, never an exception."""
    runs = capture(REGIONS)
    name = data.draw(st.sampled_from(sorted(runs)))
    lines = runs[name][0].splitlines(keepends=True)
    cut = data.draw(st.integers(0, len(lines)))
    junk = data.draw(st.text(max_size=40))
    mutated = "".join(lines[:cut]) + junk + "".join(lines[cut:][:data.draw(st.integers(0, 3))]) * 2
    parsed = tap.parse_tap(mutated)
    status = data.draw(st.sampled_from([0, 1, 4, 124, 143]))
    assert tap.outcome(status, parsed).result in tap.RESULTS
    test = suite.Selftest(name, f"mm/{name}")
    assert program_rows(test, mutated, status, data.draw(st.floats(0, 400)))[0]["test"] == name


class _Guest:
    """Answers guest_command with recorded outputs, in order (the retry logic needs no VM)."""

    def __init__(self, outputs):
        self.outputs = list(outputs)
        self.commands = []

    def run(self, cmd, timeout):
        self.commands.append(cmd)
        text, rc = self.outputs.pop(0)
        return type("Result", (), {"stdout": f"{text}\n@@rh-selftest rc={rc} t0=1.00 t1=1.10\n"})()


KSM = DATA / "6.12-ksm-numa-merge"


@pytest.mark.parametrize(("outputs", "result", "attempts"), [
    (["passed"], tap.PASS, 1),
    (["failed", "passed"], verdict.FLAKY, 2),
    (["failed", "failed", "failed"], tap.FAIL, 3),
])
def test_a_failure_is_run_again(tmp_path, outputs, result, attempts):
    """ksm_tests -N failed once on each kernel in one run (real outputs): retried, it is flaky, not a fail."""
    from harness.selftests.run import _attempts

    vm = _Guest([((KSM / f"{o}.tap").read_text(), 0 if o == "passed" else 1) for o in outputs])
    (tmp_path / "tap").mkdir()
    rows = _attempts(vm, suite.SELFTESTS["ksm_numa_merge"], 2, tmp_path, "g", lambda _: None)
    assert (rows[0]["result"], rows[0]["attempts"], len(vm.commands)) == (result, attempts, attempts)
    assert len(list((tmp_path / "tap").iterdir())) == attempts
    assert verdict.judge(tap.PASS, rows[0]["result"]) == {
        tap.PASS: verdict.SAME, verdict.FLAKY: verdict.UNSTABLE, tap.FAIL: verdict.REGRESSION}[result]
