"""QEMU process handling without booting a kernel: early exit, port collision retry, cleanup.

QEMU is started for real but given a garbage kernel, so it exits within a second
after setting up its network backend: enough to exercise the process plumbing.
"""

import os
import shutil
import socket

import pytest

from harness.errors import VMError
from harness.vm import VM, qemu

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                reason="qemu-system-x86_64 not installed")


@pytest.fixture
def bogus(tmp_path):
    kernel = tmp_path / "bzImage"
    kernel.write_bytes(os.urandom(4096))
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"\0" * 512)
    return kernel, initrd


def test_early_exit_carries_stderr_and_argv(bogus, tmp_path):
    kernel, initrd = bogus
    vm = VM(kernel, initrd, tmp_path / "w", ["-m", "128M"], accel="tcg", boot_timeout=30)
    with pytest.raises(VMError) as info:
        with vm:
            pass
    text = str(info.value)
    assert "QEMU exited (status 1)" in text
    assert "--- qemu stderr ---" in text and "qemu:" in text
    assert info.value.argv[0] == "qemu-system-x86_64"
    assert vm.record.exit_status == 1
    assert not vm.is_running()
    assert (tmp_path / "w" / "vm.json").is_file()


def test_port_collision_is_retried(bogus, tmp_path, monkeypatch):
    kernel, initrd = bogus
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        picks = [taken]
        real = qemu._pick_port
        monkeypatch.setattr(qemu, "_pick_port", lambda: picks.pop() if picks else real())
        vm = VM(kernel, initrd, tmp_path / "w", ["-m", "128M"], accel="tcg", boot_timeout=30)
        with pytest.raises(VMError, match="QEMU exited"):
            with vm:
                pass
    # the second attempt got past the hostfwd rule with another port
    assert vm.port != taken
    assert "linux kernel" in (tmp_path / "w" / "qemu-stderr.log").read_text()
