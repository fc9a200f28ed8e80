"""Cache keys, error excerpts and the each-patch table of harness.kernel.build (no make)."""

from pathlib import Path

from harness.kernel.build import PatchStep, cache_key, error_excerpt, format_steps, pre_key

DATA = Path(__file__).resolve().parents[1] / "data" / "kernel"
CONFIG = (DATA / "vanilla-6.12.118.config").read_text()
P1 = (DATA / "patches" / "0001-mm-build-mm_regions.o.patch").read_bytes()
P2 = (DATA / "patches" / "0002-mm-no-KASAN-for-mm_regions.o.patch").read_bytes()
SRC = "debian:linux-source-6.12=6.12.117-1~deb12u1:6.12.117"
GCC = "gcc (Debian 12.2.0-14+deb12u1) 12.2.0"


def key(src=SRC, patches=(P1, P2), config=CONFIG, cc=GCC):
    return cache_key(src, list(patches), config, cc)


def test_key_is_stable_across_processes():
    """The key is a content hash, not Python's per-process hash(): other interpreters agree."""
    import os
    import subprocess
    import sys

    code = ("import sys; sys.path.insert(0, sys.argv[1]); from test_kernel_build import key; print(key())")
    here = str(Path(__file__).parent)
    keys = {subprocess.run([sys.executable, "-c", code, here], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip() for seed in ("1", "2")}
    assert keys == {key()} and len(key()) == 64


def test_key_changes_with_each_input():
    base = key()
    flipped = bytearray(P2)
    flipped[-10] ^= 1
    assert key(patches=(P1, bytes(flipped))) != base  # one patch byte
    assert key(patches=(P2, P1)) != base  # order
    assert key(patches=(P1,)) != base  # fewer patches
    assert key(config=CONFIG.replace("CONFIG_NR_CPUS=64", "CONFIG_NR_CPUS=32")) != base  # one config line
    assert key(cc="gcc (Debian 12.2.0-14+deb12u2) 12.2.0") != base  # compiler
    assert key(src=SRC.replace("117-1", "117-2")) != base  # Debian package version


def test_keys_ignore_where_the_inputs_live(tmp_path):
    """A fragment renamed or moved, or the same patch from another file, does not change the kernel."""
    a, b = tmp_path / "a" / "base.config", tmp_path / "elsewhere" / "renamed.config"
    for f in (a, b):
        f.parent.mkdir()
        f.write_text("CONFIG_NUMA=y\n")
    assert pre_key(SRC, [a], [P1], "gcc | ld") == pre_key(SRC, [b], [P1], "gcc | ld")
    moved = tmp_path / "moved.patch"
    moved.write_bytes(P1)
    assert key(patches=(moved.read_bytes(), P2)) == key()


def test_pre_key(tmp_path):
    frag = tmp_path / "a.config"
    frag.write_text("CONFIG_NUMA=y\n")
    k1 = pre_key(SRC, [frag], [P1], "gcc | ld")
    assert pre_key(SRC, [frag], [P1], "gcc | ld") == k1
    frag.write_text("CONFIG_NUMA=y\nCONFIG_SMP=y\n")
    assert pre_key(SRC, [frag], [P1], "gcc | ld") != k1
    assert pre_key(SRC, [frag], [P1], "gcc2 | ld") != pre_key(SRC, [frag], [P1], "gcc | ld")


def test_error_excerpt_keeps_compiler_errors():
    log = "\n".join(
        [f"  CC      mm/f{i}.o" for i in range(50)]
        + ["/src/mm/page_alloc.c: In function 'foo':",
           "/src/mm/page_alloc.c:123:5: error: 'bar' undeclared (first use in this function)",
           "  123 |     bar = 1;",
           "      |     ^~~",
           "make[4]: *** [scripts/Makefile.build:229: mm/page_alloc.o] Error 1"]
        + [f"  CC      kernel/g{i}.o" for i in range(20)]
    )
    ex = error_excerpt(log)
    assert "error: 'bar' undeclared" in ex
    assert "In function 'foo'" in ex
    assert "mm/f3.o" not in ex
    assert error_excerpt("just\nsome\nlines").endswith("lines")


def test_format_steps():
    table = format_steps([PatchStep("0001-a.patch", True, True, 12.34),
                          PatchStep("0002-b.patch", True, False, 3.0),
                          PatchStep("0003-c.patch", False, False, 0.1)])
    lines = table.splitlines()
    assert lines[0].split() == ["patch", "applied", "built", "seconds"]
    assert lines[1].split() == ["0001-a.patch", "yes", "yes", "12.3"]
    assert lines[2].split() == ["0002-b.patch", "yes", "no", "3.0"]
    assert lines[3].split() == ["0003-c.patch", "no", "no", "0.1"]


def test_config_key_ignores_patches_without_kconfig(tmp_path):
    from harness.kernel.build import config_key
    from harness.kernel.patches import Patch

    frag = tmp_path / "a.config"
    frag.write_text("CONFIG_NUMA=y\n")
    code = Patch("0001-code.patch", tmp_path / "x", P1, 1)  # touches mm/Makefile, mm/mm_regions.c
    kconf = Patch("0002-kconfig.patch", tmp_path / "y",
                  b"diff --git a/mm/Kconfig b/mm/Kconfig\n--- a/mm/Kconfig\n+++ b/mm/Kconfig\n", 2)
    none = config_key(SRC, [frag], [], "gcc | ld")
    assert config_key(SRC, [frag], [code], "gcc | ld") == none
    assert config_key(SRC, [frag], [code, kconf], "gcc | ld") != none
    frag.write_text("CONFIG_NUMA=y\nCONFIG_SMP=y\n")
    assert config_key(SRC, [frag], [], "gcc | ld") != none


def test_a_killed_harness_leaves_no_compiler_running_once_the_lock_is_free(tmp_path):
    """make dies with the harness; its children hold the build lock until they are gone."""
    import fcntl
    import os
    import signal
    import subprocess
    import sys
    import time

    bindir = tmp_path / "bin"
    bindir.mkdir()
    # a make whose "compiler" outlives it for a few seconds, silently
    (bindir / "make").write_text("#!/bin/sh\nsleep 4 &\necho $! > \"$RH_CHILD\"\nwait\n")
    (bindir / "make").chmod(0o755)
    child_file = tmp_path / "child.pid"
    script = f"""
import sys
from pathlib import Path
from types import SimpleNamespace
from harness.kernel.build import _run_make
from harness.kernel.cache import build_lock
ctx = SimpleNamespace(srctree=Path("."), builddir=Path("."), jobs=1, make_vars=[], workdir=Path({str(tmp_path)!r}),
                      env={{"PATH": {str(bindir)!r} + ":/usr/bin:/bin", "RH_CHILD": {str(child_file)!r}}},
                      progress=lambda m: None, lock_fd=None)
with build_lock(Path({str(tmp_path)!r})) as ctx.lock_fd, open({str(tmp_path / "log")!r}, "w") as log:
    _run_make(ctx, log, 0)
"""
    harness = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 20
    while not (child_file.exists() and child_file.read_text().strip()):
        assert time.monotonic() < deadline, "the fake make never started"
        time.sleep(0.05)
    child = int(child_file.read_text())
    os.kill(harness.pid, signal.SIGKILL)
    harness.wait()
    with open(tmp_path / "build.lock", "a+") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline + 10, "the lock was never released"
                time.sleep(0.05)
        # the lock is free: the compiler child must be gone by now
        state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] \
            if Path(f"/proc/{child}").exists() else "gone"
        assert state in ("gone", "Z"), f"compiler child {child} still {state} with the lock free"
