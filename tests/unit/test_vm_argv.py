"""QEMU argv construction, port picking, accel choice and record keeping (no QEMU started)."""

import json
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.errors import VMError
from harness.vm import qemu
from harness.vm.accel import choose_accel, kernel_release


def test_argv_shape():
    argv = qemu.build_argv(Path("/k/bzImage"), Path("/i/initrd.gz"), 40022, "tcg",
                           ["-machine", "q35", "-m", "2G", "-smp", "2"], append="rh.x=1")
    assert argv[0] == "qemu-system-x86_64"
    assert "-no-reboot" in argv and "-nographic" in argv
    assert argv[argv.index("-kernel") + 1] == "/k/bzImage"
    assert argv[argv.index("-initrd") + 1] == "/i/initrd.gz"
    assert argv[argv.index("-append") + 1] == "console=ttyS0 panic=-1 loglevel=5 rh.x=1"
    assert argv[argv.index("-netdev") + 1] == "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22"
    assert argv[argv.index("-device") + 1] == "virtio-net-pci,netdev=n0,romfile="
    assert argv[argv.index("-accel") + 1] == "tcg"
    assert argv[argv.index("-serial") + 1] == "stdio"
    # topology arguments come last, untouched
    assert argv[-6:] == ["-machine", "q35", "-m", "2G", "-smp", "2"]
    assert "host" not in argv  # never -cpu host
    assert argv[argv.index("-vga") + 1] == "none"


def test_argv_empty_append():
    argv = qemu.build_argv(Path("k"), Path("i"), 1, "kvm", [])
    assert argv[argv.index("-append") + 1] == "console=ttyS0 panic=-1 loglevel=5"


def test_argv_rejects_auto():
    with pytest.raises(ValueError):
        qemu.build_argv(Path("k"), Path("i"), 1, "auto", [])


def test_ports_are_unique_until_released():
    ports = [qemu._pick_port() for _ in range(20)]
    try:
        assert len(set(ports)) == 20
    finally:
        for p in ports:
            qemu._release_port(p)


def test_missing_kernel_is_vmerror(tmp_path):
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"x")
    vm = qemu.VM(tmp_path / "nope", initrd, tmp_path / "w", [], accel="tcg")
    with pytest.raises(VMError, match="does not exist"):
        with vm:
            pass
    vm.shutdown()  # idempotent after a failed start


def test_forced_accel_needs_no_probe(tmp_path):
    assert choose_accel(tmp_path / "k", tmp_path / "i", tmp_path, "tcg") == "tcg"
    assert choose_accel(tmp_path / "k", tmp_path / "i", tmp_path, "kvm") == "kvm"
    with pytest.raises(ValueError):
        choose_accel(tmp_path / "k", tmp_path / "i", tmp_path, "hvf")


def test_vm_takes_a_chosen_accel_only(tmp_path):
    for accel in ("auto", "hvf", ""):
        with pytest.raises(ValueError, match="tcg or kvm"):
            qemu.VM(tmp_path / "k", tmp_path / "i", tmp_path / "w", [], accel=accel)


def test_cached_probe_is_used(tmp_path, monkeypatch):
    from harness.vm import accel

    kernel = tmp_path / "bzImage"
    kernel.write_bytes(b"\0" * 100)
    monkeypatch.setattr(accel.os, "access", lambda *a: True)
    key = accel.probe_key(qemu.qemu_version(), kernel_release(kernel), os.uname().release)
    (tmp_path / accel.PROBE_FILE).write_text(json.dumps({key: {"accel": "kvm", "epoch": time.time()}}))
    monkeypatch.setattr(accel, "probe_kvm", lambda *a, **k: pytest.fail("probed"))
    assert choose_accel(kernel, tmp_path / "i", tmp_path) == "kvm"


def test_kernel_release_from_bzimage_header(tmp_path):
    img = bytearray(0x1000)
    img[0x202:0x206] = b"HdrS"
    img[0x20E:0x210] = (0x300).to_bytes(2, "little")
    text = b"6.12.117 (root@host) #1 SMP\0"
    img[0x500:0x500 + len(text)] = text
    path = tmp_path / "bzImage"
    path.write_bytes(bytes(img))
    assert kernel_release(path) == "6.12.117 (root@host) #1 SMP"


def test_probe_result_is_cached(tmp_path, monkeypatch):
    from harness.vm import accel

    kernel, initrd = tmp_path / "bzImage", tmp_path / "initrd"
    kernel.write_bytes(b"\0" * 100)
    initrd.write_bytes(b"x")
    cache = tmp_path / "cache"
    monkeypatch.setattr(accel.os, "access", lambda *a: True)
    monkeypatch.setattr(accel, "qemu_version", lambda: "QEMU emulator version 7.2.22")
    probes = []
    monkeypatch.setattr(accel, "probe_kvm", lambda *a, **k: probes.append(a) or (False, "hung"))
    assert choose_accel(kernel, initrd, cache) == "tcg"
    assert choose_accel(kernel, initrd, cache) == "tcg"
    assert len(probes) == 1  # the second answer came from the cache
    stored = json.loads((cache / accel.PROBE_FILE).read_text())
    (entry,) = stored.values()
    assert entry["accel"] == "tcg" and entry["reason"] == "hung"


def test_probe_is_repeated_when_old_or_the_host_kernel_changed(tmp_path, monkeypatch):
    from harness.vm import accel

    kernel, initrd = tmp_path / "bzImage", tmp_path / "initrd"
    kernel.write_bytes(b"\0" * 100)
    initrd.write_bytes(b"x")
    monkeypatch.setattr(accel.os, "access", lambda *a: True)
    monkeypatch.setattr(accel, "qemu_version", lambda: "QEMU emulator version 7.2.22")
    probes = []
    monkeypatch.setattr(accel, "probe_kvm", lambda *a, **k: probes.append(a) or (False, "hung"))
    choose_accel(kernel, initrd, tmp_path)
    stored = json.loads((tmp_path / accel.PROBE_FILE).read_text())
    (key,) = stored
    stored[key]["epoch"] -= accel.PROBE_MAX_AGE + 1      # a day old: asked again
    (tmp_path / accel.PROBE_FILE).write_text(json.dumps(stored))
    choose_accel(kernel, initrd, tmp_path)
    monkeypatch.setattr(accel.os, "uname", lambda: SimpleNamespace(release="6.99.0-new-host"))
    choose_accel(kernel, initrd, tmp_path)             # another host kernel: asked again
    choose_accel(kernel, initrd, tmp_path)             # then cached
    assert len(probes) == 3


def test_garbled_probe_cache_is_ignored(tmp_path, monkeypatch):
    from harness.vm import accel

    kernel, initrd = tmp_path / "bzImage", tmp_path / "initrd"
    kernel.write_bytes(b"\0" * 100)
    initrd.write_bytes(b"x")
    (tmp_path / accel.PROBE_FILE).write_text("{not json")
    monkeypatch.setattr(accel.os, "access", lambda *a: True)
    monkeypatch.setattr(accel, "qemu_version", lambda: "QEMU emulator version 7.2.22")
    monkeypatch.setattr(accel, "probe_kvm", lambda *a, **k: (True, "ready after 1.0 s"))
    assert choose_accel(kernel, initrd, tmp_path) == "kvm"
    assert json.loads((tmp_path / accel.PROBE_FILE).read_text())  # rewritten whole


def test_auto_with_a_missing_file_is_not_probed(tmp_path, monkeypatch):
    from harness.vm import accel

    kernel = tmp_path / "bzImage"
    kernel.write_bytes(b"\0" * 100)
    monkeypatch.setattr(accel.os, "access", lambda *a: True)
    monkeypatch.setattr(accel, "qemu_version", lambda: "QEMU emulator version 7.2.22")
    monkeypatch.setattr(accel, "probe_kvm", lambda *a, **k: pytest.fail("probed"))
    with pytest.raises(VMError, match="kernel .* does not exist"):
        choose_accel(tmp_path / "nope", tmp_path / "i", tmp_path)
    with pytest.raises(VMError, match="initrd .* does not exist"):
        choose_accel(kernel, tmp_path / "i", tmp_path)
    assert not (tmp_path / accel.PROBE_FILE).exists()  # nothing cached


def test_record_is_written_and_a_removed_workdir_is_not_recreated(tmp_path):
    vm = qemu.VM(tmp_path / "k", tmp_path / "i", tmp_path / "w", [], accel="tcg", name="rec")
    vm.workdir.mkdir()
    vm.record.port = 40022
    vm._write_record()
    data = json.loads((vm.workdir / "vm.json").read_text())
    assert list(data) == list(qemu.VMRecord.__dataclass_fields__)  # field order kept
    assert (data["name"], data["port"]) == ("rec", 40022)
    shutil.rmtree(vm.workdir)
    vm._write_record()  # the workdir went away under the VM: no error
    assert not vm.workdir.exists()
