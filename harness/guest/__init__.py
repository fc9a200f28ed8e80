"""Guest image: the initramfs the VMs boot, its /init and helpers, and per-run ssh keys."""

from .image import (
    READY_MARKER,
    base_key,
    build_base_initramfs,
    build_initramfs,
    host_public_key,
    key_archive,
    prepare_run,
)
from .sshkey import load_private_key, make_ssh_key

__all__ = [
    "READY_MARKER",
    "base_key",
    "build_base_initramfs",
    "build_initramfs",
    "host_public_key",
    "key_archive",
    "load_private_key",
    "make_ssh_key",
    "prepare_run",
]
