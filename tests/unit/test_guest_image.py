"""Guest image: cpio format, key archive, caching, ssh keys (no VM)."""

import gzip
import shutil
import stat
import subprocess

import paramiko
import pytest

from harness.guest import build_initramfs, key_archive, make_ssh_key
from harness.guest.cpio import CpioWriter
from harness.guest.sshkey import load_private_key


def cpio_list(data: bytes, tmp_path) -> str:
    if shutil.which("cpio") is None:
        pytest.skip("cpio(1) not installed")
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    proc = subprocess.run(["cpio", "-itv", "--quiet"], input=data,
                          capture_output=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode()


def test_cpio_writer_is_read_by_cpio(tmp_path):
    w = CpioWriter()
    w.add_dir("root", 0o700)
    w.add_file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
    w.add_symlink("bin/sh", "/bin/busybox")
    w.add_chardev("dev/console", 5, 1)
    listing = cpio_list(w.finish_gzip(), tmp_path)
    assert "drwx------" in listing.splitlines()[0]
    assert "etc/passwd" in listing and "bin/sh -> /bin/busybox" in listing
    assert "5,   1" in listing or "5, 1" in listing


def test_newc_header_alignment():
    w = CpioWriter()
    w.add_file("a", b"123")
    raw = w.finish()
    assert raw.startswith(b"070701")
    assert len(raw) % 512 == 0
    assert b"TRAILER!!!" in raw


def test_key_archive_modes(tmp_path):
    data = key_archive("ssh-ed25519 AAAA test")
    listing = cpio_list(data, tmp_path)
    lines = {l.split()[-1]: l.split()[0] for l in listing.splitlines()}
    assert lines["root/.ssh"] == "drwx------"
    assert lines["root/.ssh/authorized_keys"] == "-rw-------"
    with pytest.raises(ValueError):
        key_archive("two\nlines")


def test_make_ssh_key(tmp_path):
    path, public = make_ssh_key(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = load_private_key(path)
    kind, blob = public.split()[:2]
    assert kind == key.get_name() and blob == key.get_base64()
    assert isinstance(key, (paramiko.Ed25519Key, paramiko.RSAKey))


@pytest.mark.skipif(any(shutil.which(p) is None for p in
                        ("busybox", "stress-ng", "numactl", "dropbear", "dropbearkey", "gcc")),
                    reason="guest image tools not installed")
def test_build_is_cached_and_key_is_appended(tmp_path):
    base = build_initramfs(tmp_path)
    mtime = base.stat().st_mtime_ns
    assert build_initramfs(tmp_path) == base
    assert base.stat().st_mtime_ns == mtime  # not rebuilt
    out = tmp_path / "run" / "initrd.cpio"
    got = build_initramfs(tmp_path, "ssh-ed25519 AAAA k", dest=out)
    assert got == out
    data = out.read_bytes()
    assert data.startswith(base.read_bytes())
    # the appended gzip member holds the key
    rest = data[len(base.read_bytes()):]
    assert b"ssh-ed25519 AAAA k" in gzip.decompress(rest)
    listing = cpio_list(base.read_bytes(), tmp_path)
    for path in ("init", "bin/busybox", "usr/bin/stress-ng", "usr/bin/numactl",
                 "usr/sbin/dropbear", "usr/bin/pfbench", "lib64/ld-linux-x86-64.so.2",
                 "etc/dropbear/dropbear_ed25519_host_key", "bin/sh -> /bin/busybox"):
        assert path in listing, path
    assert not list(tmp_path.glob("*.tmp"))
    assert base.read_bytes()[:6] == b"070701", "the base archive is stored uncompressed"


def test_private_key_replaces_a_lax_file_and_never_follows_a_symlink(tmp_path):
    import stat

    from harness.guest.sshkey import KEY_NAME, make_ssh_key

    lax = tmp_path / KEY_NAME
    lax.write_text("old")
    lax.chmod(0o644)
    path, _ = make_ssh_key(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    path.unlink()
    path.symlink_to(victim)
    path, _ = make_ssh_key(tmp_path)
    assert victim.read_text() == "keep me" and not path.is_symlink()
