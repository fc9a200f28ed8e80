"""Write gzip-compressed cpio "newc" archives, the format the kernel unpacks as initramfs.

Written in Python rather than by calling cpio(1) so owners and modes are exact
(root:root, 0700 for ~/.ssh as dropbear demands) whatever user builds the image,
and so the output is deterministic (fixed mtimes and inode numbers).
"""

from __future__ import annotations

import gzip
import io
import stat
from dataclasses import dataclass, field

_TRAILER = "TRAILER!!!"


@dataclass
class CpioWriter:
    """Collect entries in memory, then serialise them as one newc archive."""

    mtime: int = 0
    _buf: io.BytesIO = field(default_factory=io.BytesIO)
    _ino: int = 721  # arbitrary start; only uniqueness within the archive matters
    _dirs: set[str] = field(default_factory=set)
    _closed: bool = False

    def _header(self, name: str, mode: int, size: int, nlink: int = 1) -> None:
        encoded = name.encode() + b"\0"
        self._ino += 1
        fields = (
            self._ino, mode, 0, 0, nlink, self.mtime, size,
            0, 0, 0, 0, len(encoded), 0,
        )
        header = b"070701" + b"".join(b"%08X" % v for v in fields)
        self._buf.write(header + encoded)
        self._pad()

    def _pad(self) -> None:
        # newc aligns both the header+name and the file data to 4 bytes
        rem = self._buf.tell() % 4
        if rem:
            self._buf.write(b"\0" * (4 - rem))

    @staticmethod
    def _norm(path: str) -> str:
        path = path.strip("/")
        if not path:
            raise ValueError("empty archive path")
        return path

    def add_dir(self, path: str, mode: int = 0o755) -> None:
        path = self._norm(path)
        if path in self._dirs:
            return
        parent = path.rpartition("/")[0]
        if parent:
            self.add_dir(parent)
        self._dirs.add(path)
        self._header(path, stat.S_IFDIR | mode, 0, nlink=2)

    def _parents(self, path: str) -> None:
        parent = path.rpartition("/")[0]
        if parent:
            self.add_dir(parent)

    def add_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        path = self._norm(path)
        self._parents(path)
        self._header(path, stat.S_IFREG | mode, len(data))
        self._buf.write(data)
        self._pad()

    def add_symlink(self, path: str, target: str) -> None:
        path = self._norm(path)
        self._parents(path)
        data = target.encode()
        self._header(path, stat.S_IFLNK | 0o777, len(data))
        self._buf.write(data)
        self._pad()

    def add_chardev(self, path: str, major: int, minor: int, mode: int = 0o600) -> None:
        """A device node, so /dev/console exists before devtmpfs is mounted."""
        path = self._norm(path)
        self._parents(path)
        encoded = path.encode() + b"\0"
        self._ino += 1
        fields = (
            self._ino, stat.S_IFCHR | mode, 0, 0, 1, self.mtime, 0,
            0, 0, major, minor, len(encoded), 0,
        )
        self._buf.write(b"070701" + b"".join(b"%08X" % v for v in fields) + encoded)
        self._pad()

    def finish(self) -> bytes:
        """The archive bytes (uncompressed), trailer included."""
        if not self._closed:
            self._header(_TRAILER, 0, 0, nlink=1)
            # pad to 512 like cpio(1) does; harmless and keeps concatenation clean
            rem = self._buf.tell() % 512
            if rem:
                self._buf.write(b"\0" * (512 - rem))
            self._closed = True
        return self._buf.getvalue()

    def finish_gzip(self, level: int = 6) -> bytes:
        # mtime=0 keeps the gzip header deterministic
        return gzip.compress(self.finish(), compresslevel=level, mtime=0)
