"""Console problem detection and the streaming ConsoleWatcher, on real consoles (tests/data/console/README.md)."""

import re
import threading
import time
from pathlib import Path

import pytest

from harness.guest import READY_MARKER
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


# ---------------------------------------------------------------- ConsoleWatcher on a stream

BOOT = "boot-vanilla-6.12.117-tcg-q35-2G-2cpu.txt"
PANIC = "panic-no-init-vanilla-6.12.117.txt"
CAPTURES = sorted(p.name for p in DATA.glob("*.txt"))


def chunks(text: str, size: int) -> list[str]:
    """``text`` in pieces of ``size`` characters, as a pty delivers it: most end mid-line."""
    pieces = [text[i:i + size] for i in range(0, len(text), size)]
    if len(pieces) > 1:
        assert any(not piece.endswith("\n") for piece in pieces[:-1]), "no piece ends mid-line"
    return pieces


def watch(text: str, size: int, **kw) -> con.ConsoleWatcher:
    watcher = con.ConsoleWatcher(**kw)
    for piece in chunks(text, size):
        watcher.feed(piece)
    return watcher


@pytest.mark.parametrize("size", [1, 7, 777, 1 << 16])
def test_watcher_sees_ready_on_a_clean_boot(size):
    boot = read(BOOT)
    watcher = watch(boot, size)
    assert watcher.ready_time is not None
    assert watcher.problem is None
    assert watcher.settled_problem(settle=0) is None
    assert watcher.wait_ready(deadline=0) == watcher.ready_time
    # every line arrives whole, whatever the split (a \r|\n split may add an empty line)
    assert [l for l in watcher.text().split("\n") if l] == [l for l in con.normalise(boot) if l]
    assert watcher.tail(3).split("\n")[-1] == watcher.text().split("\n")[-1]


def test_watcher_ready_marker_split_across_chunks_and_without_newline():
    boot = read(BOOT)
    cut = boot.index(READY_MARKER) + len(READY_MARKER) // 2
    watcher = con.ConsoleWatcher()
    watcher.feed(boot[:cut])
    assert watcher.ready_time is None
    watcher.feed(boot[cut:cut + len(READY_MARKER)])  # the marker whole, its newline not yet
    assert watcher.ready_time is not None


@pytest.mark.parametrize("size", [5, 300, 1 << 16])
def test_watcher_finds_the_panic_of_a_real_boot(size):
    watcher = watch(read(PANIC), size)
    assert watcher.problem == "panic"
    assert watcher.ready_time is None
    assert watcher.wait_ready(deadline=time.monotonic() + 30) is None  # at once: the problem wins
    problem = watcher.settled_problem(settle=0)
    assert problem is not None and problem.kind == "panic"
    assert problem.text.endswith("Kernel panic - not syncing: Requested init /no-such-init failed (error -2).")
    assert problem.text in problem.excerpt and "Call Trace:" in problem.excerpt


@pytest.mark.parametrize("name", CAPTURES)
@pytest.mark.parametrize("size", [3, 64])
def test_watcher_agrees_with_first_problem(name, size):
    """The stream finds the report the whole-text scan finds, in every capture."""
    text = read(name)
    watcher = watch(text, size)
    watcher.close()  # a capture may end without a newline: its last line counts at the end
    expected = con.first_problem(text)
    got = watcher.settled_problem(settle=0)
    if expected is None:
        assert got is None and watcher.problem is None
    else:
        assert got is not None and (got.kind, got.text) == (expected.kind, expected.text)


def test_watcher_a_report_line_counts_once_complete_or_at_close():
    watcher = con.ConsoleWatcher()
    watcher.feed("[ 4.5] Kernel panic - not syncing: Attempted to kill init!")
    assert watcher.problem is None  # the line may go on; kinds are decided on whole lines
    assert not watcher.closed
    watcher.close()
    assert watcher.closed and watcher.problem == "panic"


def test_watcher_keeps_the_first_problem_and_ignores_expected_ones():
    watcher = con.ConsoleWatcher(ignore=[re.compile(r"WARNING: .* at mm/expected\.c")])
    watcher.feed(read(BOOT))
    watcher.feed("[ 9.0] WARNING: CPU: 1 PID: 7 at mm/expected.c:1 f+0x1/0x2\n")
    assert watcher.problem is None
    watcher.feed(read("doc-bug-hunting-oops.txt") + "\n")
    watcher.feed(read("doc-kasan.txt"))
    problem = watcher.settled_problem(settle=0)
    assert problem is not None and problem.kind == "BUG"
    assert problem.text == "BUG: unable to handle kernel NULL pointer dereference at   (null)"


def test_watcher_wait_ready_times_out():
    watcher = con.ConsoleWatcher()
    watcher.feed(read(BOOT)[:2000])
    t0 = time.monotonic()
    assert watcher.wait_ready(deadline=t0 + 0.2) is None
    assert time.monotonic() - t0 >= 0.15


def test_watcher_wakes_waiters_from_the_feeding_thread():
    boot = read(BOOT)
    watcher = con.ConsoleWatcher()

    def feed():
        for piece in chunks(boot, 997):
            watcher.feed(piece)
            time.sleep(0.001)
        watcher.close()

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        assert watcher.wait_ready(deadline=time.monotonic() + 30) is not None
        watcher.wait_closed()
        assert watcher.closed
    finally:
        feeder.join()


def test_watcher_settle_ends_early_when_the_stream_closes():
    watcher = con.ConsoleWatcher()
    watcher.feed(read(PANIC))
    closer = threading.Timer(0.1, watcher.close)
    closer.start()
    t0 = time.monotonic()
    problem = watcher.settled_problem(settle=20)
    assert time.monotonic() - t0 < 10
    assert problem is not None and problem.kind == "panic"
    closer.join()


# ---------------------------------------------------------------- the VM's console


def _vm(tmp_path, **kw):
    from harness.vm import VM

    return VM(tmp_path / "k", tmp_path / "i", tmp_path / "w", [], accel="tcg", **kw)


def test_vm_console_stream_ready_and_problem(tmp_path):
    from harness.errors import GuestKernelError

    vm = _vm(tmp_path)
    boot = read(BOOT)
    for piece in chunks(boot, 777):  # fed in odd-sized pieces, as the pty delivers it
        vm.console.feed(piece)
    assert vm.console.ready_time is not None
    vm.check_console()  # clean
    assert READY_MARKER in vm.console_text() and READY_MARKER in vm.console_tail()
    vm.console.feed("[ 9.0] WARNING: CPU: 1 PID: 7 at mm/page_alloc.c:1 f+0x1/0x2\r\n[ 9.1] Call Trace:\r\n")
    with pytest.raises(GuestKernelError) as info:
        vm.check_console(settle=0)
    assert info.value.kind == "WARNING"
    assert "Call Trace:" in str(info.value)
    assert vm.record.error == "guest kernel reported WARNING"


def test_vm_console_ignores_expected_problems(tmp_path):
    vm = _vm(tmp_path, ignore_problems=[r"WARNING: .* at mm/expected\.c"])
    vm.console.feed("[ 9.0] WARNING: CPU: 1 PID: 7 at mm/expected.c:1 f+0x1/0x2\n")
    vm.check_console(settle=0)
