"""Build the guest initramfs: a cached base archive plus a tiny per-run key archive.

The base (busybox, stress-ng, numactl, dropbear, pfbench, their libraries, /init,
an ssh host key) takes seconds to build and is cached under a content key. It is
stored uncompressed: under TCG the guest spends about 0.9 s gunzipping 12 MB at boot,
while QEMU copies 38 MB of plain cpio into guest memory in milliseconds. The per-run
ssh public key goes into a second (gzip) cpio appended to it: the kernel unpacks
concatenated archives in order, compressed or not, so a new key costs milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from harness.errors import InfraError
from harness.fs import SECRET_MODE, atomic_write

from .cpio import CpioWriter

log = logging.getLogger(__name__)

#: bump when the layout of the image changes in a way the inputs do not show
IMAGE_FORMAT = 7

#: the line files/init.sh prints on the serial console once the guest is up (harness.vm
#: waits for it); this is its one definition, keep it equal to the echo in init.sh
READY_MARKER = "REGION-HARNESS-READY"

#: guest path -> host program; the guest paths are where PATH finds them
PROGRAMS = {
    "usr/bin/stress-ng": "stress-ng",
    "usr/bin/numactl": "numactl",
    "usr/sbin/dropbear": "dropbear",
    "usr/bin/dropbearkey": "dropbearkey",
    # the memory-hotplug selftest (mem-on-off-test.sh) is a bash script
    "bin/bash": "bash",
}
BUSYBOX = "busybox"
#: static C helpers compiled into the image: source in files/ -> /usr/bin/<name>
HELPERS = ("pfbench.c", "rh-seed.c", "churn.c", "thpchallenge.c")


def guest_programs() -> frozenset[str]:
    """Names of the programs the image carries besides busybox's applets (what workloads may need)."""
    return frozenset([Path(p).name for p in PROGRAMS] + [h.removesuffix(".c") for h in HELPERS])

_PASSWD = "root:x:0:0:root:/root:/bin/sh\n"
# dropbear rejects a login whose shell is not listed here
_SHELLS = "/bin/sh\n/bin/ash\n"
_GROUP = "root:x:0:\n"


def _guest_file(name: str) -> bytes:
    return resources.files("harness.guest").joinpath("files", name).read_bytes()


def _which(prog: str) -> Path:
    found = shutil.which(prog, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if not found:
        raise InfraError(f"guest image needs {prog!r} on the host, not found in PATH")
    return Path(found)


def _libraries(binary: Path) -> dict[str, Path]:
    """Shared objects a binary needs, as {path the loader looks up: host file}.

    ldd prints both "name => /path (addr)" lines and the bare loader line
    "/lib64/ld-linux-x86-64.so.2 (addr)"; a static binary prints neither.
    """
    proc = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        if "not a dynamic executable" in out:
            return {}
        raise InfraError(f"ldd {binary} failed: {out.strip()}")
    libs: dict[str, Path] = {}
    for line in out.splitlines():
        line = line.strip()
        if "not found" in line:
            raise InfraError(f"{binary}: missing shared library: {line}")
        m = re.match(r"\S+ => (/\S+) \(0x", line) or re.match(r"(/\S+) \(0x", line)
        if m:
            libs[m.group(1)] = Path(m.group(1))
    return libs


def _inputs() -> dict[str, Path]:
    """Every host binary that goes into the image, keyed by its guest path."""
    files = {"bin/busybox": _which(BUSYBOX)}
    for guest_path, prog in PROGRAMS.items():
        files[guest_path] = _which(prog)
    return files


def base_key(files: dict[str, Path] | None = None) -> str:
    """Content key of the base image: scripts, pfbench source, binaries, libraries.

    Binaries are keyed on path, size and mtime instead of their bytes: stress-ng and
    its libraries are tens of MiB and a package upgrade changes the mtime anyway.
    """
    files = files if files is not None else _inputs()
    h = hashlib.sha256()
    h.update(f"format={IMAGE_FORMAT}\n".encode())
    for name in ("init.sh", *HELPERS):
        h.update(name.encode() + b"\0" + hashlib.sha256(_guest_file(name)).digest())
    everything: dict[str, Path] = dict(files)
    for host in files.values():
        everything.update(_libraries(host))
    for guest_path in sorted(everything):
        host = everything[guest_path]
        st = host.stat()  # follows symlinks: the real library file
        h.update(f"{guest_path}={host.resolve()}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _compile_helper(workdir: Path, source: str) -> bytes:
    src = workdir / source
    src.write_bytes(_guest_file(source))
    out = workdir / source.removesuffix(".c")
    cc = os.environ.get("CC", "gcc")
    proc = subprocess.run(
        [cc, "-static", "-O2", "-Wall", "-pthread", "-o", str(out), str(src)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise InfraError(f"compiling {source} failed:\n{proc.stderr.strip()}")
    return out.read_bytes()


def _host_key(workdir: Path) -> tuple[bytes, str]:
    """A dropbear host key made now (no guest boot spends time on one): (private key file, public key line)."""
    key = workdir / "dropbear_ed25519_host_key"
    tool = str(_which("dropbearkey"))
    proc = subprocess.run([tool, "-t", "ed25519", "-f", str(key)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise InfraError(f"dropbearkey failed: {proc.stderr.strip()}")
    pub = subprocess.run([tool, "-y", "-f", str(key)], capture_output=True, text=True)
    line = next((ln for ln in pub.stdout.splitlines() if ln.startswith("ssh-ed25519 ")), None)
    if pub.returncode != 0 or line is None:
        raise InfraError(f"dropbearkey -y printed no public key: {pub.stderr.strip() or pub.stdout.strip()}")
    return key.read_bytes(), " ".join(line.split()[:2])


def _busybox_links(busybox: Path) -> list[str]:
    proc = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise InfraError(f"{busybox} --list-full failed: {proc.stderr.strip()}")
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def _build_base(dest: Path, files: dict[str, Path]) -> None:
    w = CpioWriter()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "lib", "lib64", "etc/dropbear",
              "proc", "sys", "dev", "tmp", "run", "var/log", "mnt"):
        w.add_dir(d)
    w.add_dir("root", 0o700)
    # the kernel opens /dev/console for init before any devtmpfs is mounted
    w.add_chardev("dev/console", 5, 1)
    w.add_chardev("dev/null", 1, 3, 0o666)

    w.add_file("init", _guest_file("init.sh"), 0o755)
    w.add_file("etc/passwd", _PASSWD.encode())
    w.add_file("etc/group", _GROUP.encode())
    w.add_file("etc/shells", _SHELLS.encode())

    libs: dict[str, Path] = {}
    for guest_path, host in files.items():
        w.add_file(guest_path, host.read_bytes(), 0o755)
        libs.update(_libraries(host))
    for guest_path in sorted(libs):
        w.add_file(guest_path, libs[guest_path].read_bytes(), 0o755)

    taken = set(files)
    for link in _busybox_links(files["bin/busybox"]):
        if link not in taken and link != "bin/busybox":
            w.add_symlink(link, "/bin/busybox")
            taken.add(link)

    with tempfile.TemporaryDirectory(prefix="rh-guest-") as tmp:
        for source in HELPERS:
            w.add_file("usr/bin/" + source.removesuffix(".c"),
                       _compile_helper(Path(tmp), source), 0o755)
        private, public = _host_key(Path(tmp))
        w.add_file("etc/dropbear/dropbear_ed25519_host_key", private, 0o600)

    # the public half first: an image on disk always has its host key beside it, so the
    # harness pins the guest's key instead of accepting whatever answers on the port
    atomic_write(host_key_path(dest), public + "\n")
    # the image carries the guest's dropbear host private key: readable by its owner only
    atomic_write(dest, w.finish(), mode=SECRET_MODE)


def host_key_path(image: Path) -> Path:
    """Where the public host key of a base image is kept (beside it)."""
    return image.with_suffix(".hostkey.pub")


def host_public_key(cache_dir: Path) -> str:
    """The guest's ssh host key ("ssh-ed25519 AAAA..."), from the cached base image (built if needed)."""
    path = host_key_path(build_base_initramfs(cache_dir))
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise InfraError(f"{path}: the guest image has no host key beside it; remove the image to rebuild it") \
            from None



def build_base_initramfs(cache_dir: Path) -> Path:
    """The cached base archive, rebuilt only when one of its inputs changed."""
    cache_dir = Path(cache_dir)
    files = _inputs()
    key = base_key(files)
    dest = cache_dir / f"initramfs-{key}.cpio"
    if dest.exists():
        log.debug("guest image %s is up to date", dest)
        return dest
    log.info("building guest image %s", dest)
    _build_base(dest, files)
    meta = {"key": key, "format": IMAGE_FORMAT,
            "inputs": {k: str(v) for k, v in sorted(files.items())},
            "size_bytes": dest.stat().st_size}
    atomic_write(dest.with_suffix(".json"),
                  (json.dumps(meta, indent=2) + "\n").encode())
    log.info("guest image built: %s (%d KiB)", dest, dest.stat().st_size // 1024)
    return dest


def key_archive(authorized_key: str | None, extra_files: dict[str, bytes] | None = None) -> bytes:
    """The per-run gzip cpio: /root/.ssh/authorized_keys (modes dropbear accepts) and a
    fresh entropy seed /etc/rh-seed that /init credits so sshd need not wait for the crng."""
    w = CpioWriter()
    if authorized_key is not None:
        line = authorized_key.strip()
        if not line or "\n" in line:
            raise ValueError("authorized_key must be one public key line")
        w.add_dir("root", 0o700)
        w.add_dir("root/.ssh", 0o700)
        w.add_file("root/.ssh/authorized_keys", (line + "\n").encode(), 0o600)
    w.add_file("etc/rh-seed", os.urandom(64), 0o600)
    # per-run files, e.g. etc/rh-cmd, which /init runs before powering off when
    # booted with rh.poweroff=1; executable so a script works as is
    for path, data in sorted((extra_files or {}).items()):
        w.add_file(path, data, 0o755)
    return w.finish_gzip()


def build_initramfs(cache_dir: Path, authorized_key: str | None = None,
                    dest: Path | None = None,
                    extra_files: dict[str, bytes] | None = None) -> Path:
    """Return an initramfs to boot: the cached base, plus the per-run archive if needed.

    With a key or extra files (guest path -> bytes, mode 0755), the result is the base
    followed by the key archive, written to ``dest`` (default: next to the base, named
    after the key's hash) atomically.
    Pass a per-VM ``dest`` (e.g. in the VM workdir) to keep per-run files out of the cache.
    """
    base = build_base_initramfs(Path(cache_dir))
    if authorized_key is None and not extra_files:
        return base
    extra = key_archive(authorized_key, extra_files)
    if dest is None:
        ident = (authorized_key or "").strip().encode() + repr(sorted(
            (extra_files or {}).items())).encode()
        khash = hashlib.sha256(ident).hexdigest()[:12]
        dest = base.with_name(base.name.replace(".cpio", f"-key-{khash}.cpio"))
    dest = Path(dest)
    atomic_write(dest, base.read_bytes() + extra, mode=SECRET_MODE)
    return dest


def prepare_run(cache_dir: Path, run_dir: Path) -> tuple[Path, Path]:
    """Per-run guest files in ``run_dir``: (initrd with a fresh authorized key, private key)."""
    from .sshkey import make_ssh_key

    run_dir = Path(run_dir)
    key_path, public = make_ssh_key(run_dir)
    initrd = build_initramfs(Path(cache_dir), public, dest=run_dir / "initrd.cpio")
    return initrd, key_path
