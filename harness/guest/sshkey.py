"""Make a throwaway ssh key pair for one run (private key file + public key line)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import paramiko

log = logging.getLogger(__name__)

KEY_NAME = "id_harness"


def make_ssh_key(directory: Path) -> tuple[Path, str]:
    """Write a new private key into ``directory``; return (its path, the public key line).

    Ed25519 is preferred (instant to generate); paramiko cannot generate Ed25519 keys
    itself, so the key is made with `cryptography` (a paramiko dependency) in the
    OpenSSH format paramiko reads. RSA 2048 through paramiko is the fallback.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / KEY_NAME
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        priv = ed25519.Ed25519PrivateKey.generate()
        pem = priv.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        _write_private(path, pem)
        key: paramiko.PKey = paramiko.Ed25519Key.from_private_key_file(str(path))
    except Exception as exc:  # old cryptography or paramiko: fall back to RSA
        log.debug("ed25519 key generation failed (%s), using RSA 2048", exc)
        rsa = paramiko.RSAKey.generate(2048)
        path.unlink(missing_ok=True)
        rsa.write_private_key_file(str(path))
        os.chmod(path, 0o600)
        key = rsa
    public = f"{key.get_name()} {key.get_base64()} region-harness"
    (directory / (KEY_NAME + ".pub")).write_text(public + "\n")
    return path, public


def _write_private(path: Path, data: bytes) -> None:
    # created 0600 from the start: a private key is never world-readable, even briefly.
    # A new file every time (O_EXCL, never through a symlink): truncating an existing one
    # would keep its old mode, and a symlink planted there would receive the key.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def load_private_key(path: Path) -> paramiko.PKey:
    """Load a key written by make_ssh_key, whatever its type."""
    for cls in (paramiko.Ed25519Key, paramiko.RSAKey, paramiko.ECDSAKey):
        try:
            return cls.from_private_key_file(str(path))
        except (paramiko.SSHException, ValueError):
            continue
    raise paramiko.SSHException(f"cannot load private key {path}")
