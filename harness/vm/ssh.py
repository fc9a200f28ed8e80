"""SSH into a guest (dropbear behind QEMU's hostfwd): run commands, copy files with cat
(the guest image has no sftp-server)."""

from __future__ import annotations

import base64
import logging
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

from harness.errors import VMError
from harness.guest.sshkey import load_private_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    """Outcome of one guest command: exit status and decoded output."""

    status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.status == 0


class SSHClient:
    """One paramiko connection to a guest as root with the per-run key."""

    def __init__(self, host: str, port: int, key_path: Path, user: str = "root",
                 name: str = "guest", host_key: str | None = None):
        self.host, self.port, self.user, self.name = host, port, user, name
        self.key = load_private_key(Path(key_path))
        #: the guest's public host key ("ssh-ed25519 AAAA..."): when given, nothing else is accepted
        self.host_key = host_key
        self._client: paramiko.SSHClient | None = None

    def _trust(self, client: paramiko.SSHClient) -> None:
        if self.host_key is None:
            # a guest booted without a known key (ad hoc images): accept what it offers
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            return
        kind, b64 = self.host_key.split()[:2]
        client.get_host_keys().add(f"[{self.host}]:{self.port}", kind,
                                   paramiko.PKey.from_type_string(kind, base64.b64decode(b64)))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())

    def connect(self, timeout: float = 30) -> None:
        """Connect, retrying until ``timeout``: hostfwd accepts TCP before sshd listens."""
        deadline = time.monotonic() + timeout
        attempt, last = 0, None
        while True:
            attempt += 1
            client = paramiko.SSHClient()
            self._trust(client)
            try:
                client.connect(self.host, port=self.port, username=self.user, pkey=self.key,
                               look_for_keys=False, allow_agent=False, timeout=5,
                               banner_timeout=10, auth_timeout=10)
                self._client = client
                log.debug("%s: ssh connected after %d attempt(s)", self.name, attempt)
                return
            except (paramiko.SSHException, OSError, EOFError) as exc:
                client.close()
                last = exc
                if isinstance(exc, paramiko.BadHostKeyException):
                    # not the guest the harness built: never retry into it
                    raise VMError(f"{self.name}: 127.0.0.1:{self.port} offered host key "
                                  f"{exc.key.get_fingerprint().hex()[:16]}..., not the guest image's "
                                  f"({self.host_key}); refusing to connect") from exc
                if isinstance(exc, paramiko.AuthenticationException):
                    # a wrong key will not get better with retries
                    raise VMError(f"{self.name}: ssh authentication failed on port "
                                  f"{self.port}: {exc}") from exc
            if time.monotonic() >= deadline:
                raise VMError(f"{self.name}: ssh to 127.0.0.1:{self.port} failed after "
                              f"{attempt} attempts: {last!r}")
            time.sleep(0.3)

    @property
    def client(self) -> paramiko.SSHClient:
        if self._client is None:
            raise VMError(f"{self.name}: ssh is not connected")
        return self._client

    def is_active(self) -> bool:
        """The connection is up (False once the guest's sshd or the forwarding dropped it)."""
        transport = self._client.get_transport() if self._client is not None else None
        return transport is not None and transport.is_active()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _open(self, cmd: str) -> paramiko.Channel:
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise VMError(f"{self.name}: ssh connection is closed")
        # Opening a session channel runs nothing yet, so a refused or vanished open is
        # retried: under load dropbear has been seen to drop one (CI, 2026-11-22).
        for attempt in range(3):
            try:
                chan = transport.open_session(timeout=10)
                break
            except paramiko.SSHException as exc:
                if attempt == 2 or not transport.is_active():
                    raise
                log.debug("%s: opening a channel failed (%r), retrying", self.name, exc)
                time.sleep(0.2)
        chan.exec_command(cmd)
        return chan

    def run(self, cmd: str, timeout: float = 60, check: bool = False,
            stdin: bytes | None = None) -> Result:
        """Run ``cmd`` through the guest's /bin/sh; ``check`` raises VMError on non-zero exit."""
        raw = self.run_bytes(cmd, timeout=timeout, stdin=stdin)
        result = Result(raw[0], raw[1].decode(errors="replace"), raw[2].decode(errors="replace"))
        if check and result.status != 0:
            raise VMError(f"{self.name}: command {cmd!r} exited {result.status}\n"
                          f"--- stderr ---\n{result.stderr[-4000:]}")
        return result

    def run_bytes(self, cmd: str, timeout: float = 60,
                  stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        log.debug("%s: run %s", self.name, cmd)
        deadline = time.monotonic() + timeout
        try:
            chan = self._open(cmd)
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            # drain both streams while waiting: a command with a lot of output would
            # block on a full window if only the exit status were awaited
            while True:
                if chan.recv_ready():
                    out += chan.recv(65536)
                elif chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                elif chan.exit_status_ready():
                    break
                elif time.monotonic() >= deadline:
                    chan.close()
                    raise VMError(f"{self.name}: command {cmd!r} timed out after {timeout} s")
                else:
                    time.sleep(0.005)
            # output sent just before the exit status may still be in flight
            chan.settimeout(2)
            for reader, buf in ((chan.recv, out), (chan.recv_stderr, err)):
                try:
                    while chunk := reader(65536):
                        buf += chunk
                except TimeoutError:
                    pass
            status = chan.recv_exit_status()
            chan.close()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise VMError(f"{self.name}: ssh command {cmd!r} failed: {exc!r}") from exc
        return status, bytes(out), bytes(err)

    def run_nowait(self, cmd: str) -> None:
        """Start a command and do not wait (for poweroff: the connection dies with it)."""
        chan = self._open(cmd)
        chan.shutdown_write()

    def fetch(self, remote: str, local: Path, timeout: float = 120) -> Path:
        """Copy a guest file to ``local``."""
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        status, out, err = self.run_bytes(f"cat -- {shlex.quote(remote)}", timeout=timeout)
        if status != 0:
            raise VMError(f"{self.name}: cannot fetch {remote}: "
                          f"{err.decode(errors='replace').strip()}")
        local.write_bytes(out)
        return local

    def put(self, local: Path, remote: str, mode: int | None = None,
            timeout: float = 120) -> None:
        """Copy a host file into the guest."""
        data = Path(local).read_bytes()
        status, _, err = self.run_bytes(f"cat > {shlex.quote(remote)}", timeout=timeout,
                                        stdin=data)
        if status != 0:
            raise VMError(f"{self.name}: cannot put {remote}: "
                          f"{err.decode(errors='replace').strip()}")
        if mode is not None:
            self.run(f"chmod {mode:o} {shlex.quote(remote)}", check=True)
