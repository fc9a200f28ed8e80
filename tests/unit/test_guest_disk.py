"""The guest's scratch disk: a sparse ext2 image made on the host, attached as virtio-blk."""

import struct
from pathlib import Path

from harness.guest.disk import make_scratch_disk, qemu_drive, scratch_size
from harness.units import GiB, MiB


def test_scratch_disk_is_a_sparse_ext2_image(tmp_path):
    path = make_scratch_disk(tmp_path / "disk.img", 2 * GiB)
    st = path.stat()
    assert st.st_size == 2 * GiB
    assert st.st_blocks * 512 < 64 * MiB        # sparse: only mkfs's metadata takes host disk
    with open(path, "rb") as f:
        f.seek(1024)                            # the ext2 superblock
        sb = f.read(1024)
    magic, = struct.unpack_from("<H", sb, 56)
    assert magic == 0xEF53
    assert sb[120:130] == b"rh-scratch"         # s_volume_name
    assert struct.unpack_from("<I", sb, 8)[0] == 0   # s_r_blocks_count: -m 0


def test_scratch_disk_size_and_drive():
    assert scratch_size(4 * GiB) == 8 * GiB and scratch_size(256 * MiB) == GiB
    assert qemu_drive(Path("/x/d.img")) == ["-drive", "file=/x/d.img,if=virtio,format=raw,cache=unsafe"]
