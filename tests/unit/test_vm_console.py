"""Console problem detection on real console text (tests/data/console/, see its README)."""

from pathlib import Path

import pytest

from harness.vm import console as con

DATA = Path(__file__).resolve().parents[1] / "data" / "console"


def read(name: str) -> str:
    return (DATA / name).read_text()


@pytest.mark.parametrize("name,kind,line_text", [
    ("doc-bug-hunting-warning.txt", "WARNING",
     "WARNING: CPU: 1 PID: 28102 at kernel/module.c:1108 module_put+0x57/0x70"),
    # the Oops example begins with its BUG line, which is the first report
    ("doc-bug-hunting-oops.txt", "BUG",
     "BUG: unable to handle kernel NULL pointer dereference at   (null)"),
    ("doc-kasan.txt", "KASAN",
     "BUG: KASAN: slab-out-of-bounds in kmalloc_oob_right+0xa8/0xbc [kasan_test]"),
    ("fmt-lockdep-circular.txt", "lockdep", None),
    ("fmt-lockdep-inconsistent.txt", "lockdep", None),
    ("fmt-lockdep-recursive.txt", "lockdep", None),
    ("fmt-hung-task.txt", "hung task", None),
])
def test_first_problem_kind(name, kind, line_text):
    problem = con.first_problem(read(name))
    assert problem is not None
    assert problem.kind == kind
    if line_text:
        assert problem.text == line_text
    assert problem.text in problem.excerpt


def test_oops_line_is_found_after_the_bug_line():
    kinds = [k for _, k in con.find_problems(con.normalise(read("doc-bug-hunting-oops.txt")))]
    assert kinds == ["BUG", "Oops"]


def test_clean_boot_has_no_problem():
    for path in sorted(DATA.glob("boot-*.txt")):
        assert con.first_problem(path.read_text()) is None, path.name


def test_real_panic_boot_log():
    logs = sorted(DATA.glob("panic-*.txt"))
    if not logs:
        pytest.skip("no captured panic log in tests/data/console")
    for path in logs:
        problem = con.first_problem(path.read_text())
        assert problem is not None and problem.kind == "panic", path.name


@pytest.mark.parametrize("line,kind", [
    ("[    1.234567] Kernel panic - not syncing: No working init found.", "panic"),
    ("<0>[    1.2][    T1] Kernel panic - not syncing: Attempted to kill init!", "panic"),
    ("\x1bc\x1b[?7l\x1b[2J[    1.9] Kernel panic - not syncing: Requested init", "panic"),
    ("Booting from ROM..\x1bc\x1b[?7l\x1b[2J[    2.1] Kernel panic - not syncing: x", "panic"),
    ("Booting from ROM..\x1bc\x1b[?7l\x1b[2J[    2.1] note: Kernel panic - not syncing", None),
    ("[   3.1] Oops: general protection fault, probably for non-canonical address", "Oops"),
    ("[   3.1] kernel BUG at mm/page_alloc.c:1234!", "BUG"),
    ("[   3.1] BUG: Bad page state in process stress-ng  pfn:1a2b3", "BUG"),
    ("[   3.1] BUG: KASAN: use-after-free in free_pages+0x1/0x2", "KASAN"),
    ("[   3.1] WARNING: CPU: 0 PID: 1 at mm/page_alloc.c:10 f+0x1/0x2", "WARNING"),
    ("[   3.1] WARNING: possible circular locking dependency detected", "lockdep"),
    ("[   3.1] INFO: task kworker/0:1:12 blocked for more than 122 seconds.", "hung task"),
    # mentions in the middle of a line (user-space output, messages) do not count
    ("[   0.0] Command line: console=ttyS0 note=BUG:", None),
    ("stress-ng: info: no Oops here", None),
    ("rh-init: no debugfs", None),
    ("REGION-HARNESS-READY", None),
])
def test_classify_line(line, kind):
    assert con.classify_line(line) == kind


def test_carriage_returns_are_normalised():
    text = "[ 0.1] hello\r\n[ 0.2] WARNING: CPU: 0 PID: 1 at x.c:1 f+0x0/0x1\r\n[ 0.3] tail\r\n"
    problem = con.first_problem(text)
    assert problem.kind == "WARNING" and problem.line == 1
    assert "\r" not in problem.excerpt


def test_excerpt_is_bounded():
    lines = [f"[ {i}] line {i}" for i in range(500)]
    lines[250] = "[ 250] Kernel panic - not syncing: test"
    problem = con.first_problem("\n".join(lines))
    got = problem.excerpt.splitlines()
    assert got[0] == lines[250 - con.CONTEXT_BEFORE]
    assert got[-1] == lines[250 + con.CONTEXT_AFTER]


def _vm(tmp_path, **kw):
    from harness.vm import VM

    return VM(tmp_path / "k", tmp_path / "i", tmp_path / "w", [], accel="tcg", **kw)


def test_vm_console_stream_ready_and_problem(tmp_path):
    from harness.errors import GuestKernelError

    vm = _vm(tmp_path)
    boot = (DATA / "boot-vanilla-6.12.117-tcg-q35-2G-2cpu.txt").read_text(errors="replace")
    # fed in odd-sized pieces, as the pty delivers it
    for i in range(0, len(boot), 777):
        vm._feed(boot[i:i + 777])
    assert vm._ready_time is not None
    vm.check_console()  # clean
    vm._feed("[ 9.0] WARNING: CPU: 1 PID: 7 at mm/page_alloc.c:1 f+0x1/0x2\r\n[ 9.1] Call Trace:\r\n")
    with pytest.raises(GuestKernelError) as info:
        vm.check_console(settle=0)
    assert info.value.kind == "WARNING"
    assert "Call Trace:" in str(info.value)


def test_vm_console_ignores_expected_problems(tmp_path):
    vm = _vm(tmp_path, ignore_problems=[r"WARNING: .* at mm/expected\.c"])
    vm._feed("[ 9.0] WARNING: CPU: 1 PID: 7 at mm/expected.c:1 f+0x1/0x2\n")
    vm.check_console(settle=0)
