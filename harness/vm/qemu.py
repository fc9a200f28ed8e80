"""Run one QEMU guest: launch, drain its serial console, wait for it to be ready, shut it down.

Conventions from QEMU's python machine class (context manager, soft stop then kill,
launch errors carry argv and console tail) and drgn's vmtest (-no-reboot with
panic=-1, QEMU dies with its parent through PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import errno
import functools
import json
import logging
import os
import queue
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import pexpect

from harness.errors import GuestKernelError, VMError
from harness.fs import atomic_write

from .console import ConsoleWatcher
from .ssh import Result, SSHClient

log = logging.getLogger(__name__)

QEMU = "qemu-system-x86_64"
GUEST_PORT = 22
#: what build_argv and VM accept; "auto" is resolved before, by accel.choose_accel
ACCELS = ("tcg", "kvm")

_PR_SET_PDEATHSIG = 1
# QEMU's words when the host port of a hostfwd rule is taken by someone else
_PORT_TAKEN = ("Could not set up host forwarding rule", "Address already in use")
_PORT_RETRIES = 5

# ports handed out by this process and not yet released: two VMs started at the same
# time in one process must not pick the same port between bind-probe and QEMU's bind
_ports_lock = threading.Lock()
_ports_in_use: set[int] = set()


def _pick_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        with _ports_lock:
            if port not in _ports_in_use:
                _ports_in_use.add(port)
                return port
    raise VMError("could not find a free TCP port on 127.0.0.1")


def _release_port(port: int | None) -> None:
    with _ports_lock:
        _ports_in_use.discard(port)


@functools.cache
def qemu_version(qemu: str = QEMU) -> str:
    """First line of ``qemu --version``, recorded with every run."""
    try:
        out = subprocess.run([qemu, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VMError(f"cannot run {qemu} --version: {exc}") from exc
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise VMError(f"{qemu} --version failed: {out.stderr.strip()}")
    return lines[0]


def build_argv(kernel: Path, initrd: Path, port: int, accel: str,
               qemu_args: list[str], append: str = "", qemu: str = QEMU) -> list[str]:
    """The QEMU command line; machine, memory, smp and ACPI tables come in qemu_args."""
    if accel not in ACCELS:
        raise ValueError(f"accel must be tcg or kvm here, not {accel!r}")
    # loglevel=5: only warnings and worse reach the (slow, emulated) serial console,
    # which is what the console watcher looks for; `dmesg` in the guest has everything
    cmdline = "console=ttyS0 panic=-1 loglevel=5"
    if append.strip():
        cmdline += " " + append.strip()
    return [
        qemu,
        "-nographic",
        # serial on stdio (the pty pexpect reads) and no monitor there, so the console
        # stream is only the guest's serial output and no Ctrl-A escapes apply
        "-serial", "stdio",
        "-monitor", "none",
        # a panic (panic=-1 reboots at once) or a reboot ends QEMU instead of looping
        "-no-reboot",
        "-kernel", str(kernel),
        "-initrd", str(initrd),
        "-append", cmdline,
        # restrict=on: the guest reaches nothing outside (not even host loopback services
        # through the gateway); the forwarding rule into it still works
        "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:{GUEST_PORT}",
        # no option ROM (iPXE) and no VGA: SeaBIOS initialising them costs ~0.5 s of TCG
        "-device", "virtio-net-pci,netdev=n0,romfile=",
        "-vga", "none",
        "-accel", accel,
        *qemu_args,
    ]


@dataclass
class VMRecord:
    """What a run needs to be reproduced and compared: written to workdir/vm.json."""

    name: str
    argv: list[str] = field(default_factory=list)
    qemu_version: str = ""
    accel: str = ""
    port: int | None = None
    pid: int | None = None
    boot_seconds: float | None = None
    ssh_seconds: float | None = None
    exit_status: int | None = None
    error: str | None = None


def _child_setup(stderr_path: str) -> None:
    """Runs in the forked child before exec (pexpect already made it a session leader)."""
    # QEMU must not outlive the harness, even on SIGKILL of the harness
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    # QEMU's own messages go to a file, so the pty carries only the guest console
    fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    os.close(fd)


class _PortTaken(Exception):
    pass


_T = TypeVar("_T")


class _Launcher:
    """Fork QEMU from one long-lived thread.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the
    process: a VM started from a short-lived worker thread (a thread pool booting
    VMs in parallel) would be killed as soon as that worker ended. Forking from a
    daemon thread that lives as long as the process gives "dies with the harness".
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = queue.Queue()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while True:
            fn, fut = self._queue.get()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:  # handed to the caller, not lost here
                fut.set_exception(exc)

    def call(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on the launcher thread; its result, or its exception raised here."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="qemu-launcher",
                                                daemon=True)
                self._thread.start()
        fut: concurrent.futures.Future[_T] = concurrent.futures.Future()
        self._queue.put((fn, fut))
        return fut.result()


_launcher = _Launcher()


class VM:
    """A QEMU guest as a context manager: ``with VM(...) as vm: vm.run("uname -r")``.

    Entering launches QEMU and waits for the ready marker; leaving always shuts the
    guest down and reaps QEMU. The workdir holds console.log, qemu-stderr.log and
    vm.json; give every VM its own workdir.

    ``accel`` is "tcg" or "kvm", chosen before (accel.choose_accel turns "auto" into one
    of them by a probe boot, which is itself a VM).
    """

    def __init__(self, kernel: Path, initrd: Path, workdir: Path, qemu_args: list[str], *,
                 accel: str, append: str = "", boot_timeout: float = 120,
                 name: str | None = None, ssh_key: Path | None = None, qemu: str = QEMU,
                 scratch: Path | None = None, host_key: str | None = None,
                 ignore_problems: list[str] | tuple[str, ...] = ()):
        if accel not in ACCELS:
            raise ValueError(f"accel must be tcg or kvm, not {accel!r} (resolve auto with choose_accel)")
        self.kernel = Path(kernel)
        self.initrd = Path(initrd)
        self.workdir = Path(workdir)
        self.qemu_args = list(qemu_args)
        self.append = append
        self._accel = accel
        self.boot_timeout = boot_timeout
        self.name = name or self.workdir.name
        self.ssh_key = Path(ssh_key) if ssh_key else None
        #: a directory of per-VM secrets and copies (ssh key, initrd) removed at shutdown
        self.scratch = Path(scratch) if scratch else None
        #: the guest's public ssh host key; ssh accepts no other when it is set
        self.host_key = host_key
        self.qemu = qemu
        # regexes of console lines that are expected (a test that provokes a WARNING
        # on purpose) and must not count as a guest kernel problem
        self.ignore_problems = [re.compile(p) for p in ignore_problems]
        self.record = VMRecord(name=self.name)

        self.console_log = self.workdir / "console.log"
        self.stderr_log = self.workdir / "qemu-stderr.log"
        #: the serial console of the current QEMU process (a new one per launch attempt)
        self.console = self._new_console()

        self._child: pexpect.spawn | None = None
        self._logfile: BinaryIO | None = None
        self._reader: threading.Thread | None = None
        self._start_time = 0.0  # time.monotonic() at launch
        self._ssh: SSHClient | None = None
        self._shutdown_lock = threading.Lock()
        self._ssh_lock = threading.RLock()  # the sampler thread and the caller share the client
        self._stopped = False

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> VM:
        try:
            self.start()
        except BaseException:
            # __exit__ is not called when __enter__ raises: clean up here
            self.shutdown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def start(self) -> None:
        """Launch QEMU and wait until the guest prints the ready marker."""
        for _ in range(_PORT_RETRIES):
            self.launch()
            try:
                self.wait_ready()
                break
            except _PortTaken:
                log.info("%s: port %s was taken, retrying with another", self.name,
                         self.record.port)
                self._kill_and_reap()
                self._reset()
        else:
            raise VMError(f"{self.name}: no free port after {_PORT_RETRIES} attempts",
                          argv=self.record.argv)
        if self.ssh_key is not None:
            # connect now: a guest whose ssh is broken fails at start, not in the first
            # test, and boot-to-ssh is measured without the caller's delays
            self.ssh  # noqa: B018 (property with the side effect of connecting)

    def _new_console(self) -> ConsoleWatcher:
        return ConsoleWatcher(self.ignore_problems, name=self.name)

    def _reset(self) -> None:
        """Forget the failed attempt: a fresh console for the next QEMU process."""
        self.console = self._new_console()
        self._stopped = False

    def launch(self) -> None:
        """Start QEMU (no waiting): console reader thread running, record filled in."""
        for path, what in ((self.kernel, "kernel"), (self.initrd, "initrd")):
            if not path.is_file():
                raise VMError(f"{self.name}: {what} {path} does not exist")
        if shutil.which(self.qemu) is None:
            raise VMError(f"{self.qemu} not found in PATH")
        self.workdir.mkdir(parents=True, exist_ok=True)
        accel = self._accel
        port = _pick_port()
        argv = build_argv(self.kernel, self.initrd, port, accel, self.qemu_args,
                          self.append, self.qemu)
        self.record.argv, self.record.accel, self.record.port = argv, accel, port
        self.record.qemu_version = qemu_version(self.qemu)
        self.record.boot_seconds = self.record.exit_status = self.record.error = None
        log.info("%s: starting %s (accel %s, ssh port %d)", self.name, self.kernel, accel, port)
        log.debug("%s: argv %s", self.name, argv)

        # open for the VM's life, not a with-block: the reader thread writes it, _close_child closes it
        logfile = self._logfile = open(self.console_log, "ab")
        self._start_time = time.monotonic()
        stderr_path = str(self.stderr_log)
        try:
            child = _launcher.call(lambda: pexpect.spawn(
                argv[0], argv[1:], encoding=None, echo=False, timeout=None,
                preexec_fn=lambda: _child_setup(stderr_path),
                dimensions=(50, 200),
            ))
        except (pexpect.ExceptionPexpect, OSError) as exc:
            logfile.close()
            _release_port(port)
            raise VMError(f"{self.name}: cannot start QEMU: {exc}", argv=argv) from exc
        self._child = child
        self.record.pid = child.pid
        self._write_record()
        self._reader = threading.Thread(target=self._read_console,
                                        args=(child.child_fd, logfile, self.console),
                                        name=f"console-{self.name}", daemon=True)
        self._reader.start()

    # ---------------------------------------------------------------- console

    @staticmethod
    def _read_console(fd: int, logfile: BinaryIO, console: ConsoleWatcher) -> None:
        """Drain the pty all the time: a full pty would stall the guest's serial port.

        Reads the fd directly rather than through pexpect's read_nonblocking, which
        calls waitpid() on EOF and would race with the reaping in shutdown().
        """
        while True:
            try:
                readable, _, _ = select.select([fd], [], [], 0.5)
                if not readable:
                    continue
                data = os.read(fd, 65536)
            except (OSError, ValueError):
                break  # EIO: QEMU closed the pty (exited); EBADF: we closed it
            if not data:
                break
            try:
                logfile.write(data)
                logfile.flush()
            except (OSError, ValueError):
                pass  # the log is a copy; losing it must not stop the drain
            console.feed(data.decode("utf-8", errors="replace"))
        console.close()

    def console_text(self) -> str:
        """Everything the guest printed so far."""
        return self.console.text()

    def console_tail(self, lines: int = 60) -> str:
        return self.console.tail(lines)

    def _stderr_tail(self, max_chars: int = 4000) -> str:
        try:
            return self.stderr_log.read_text(errors="replace")[-max_chars:]
        except OSError:
            return ""

    def _tail_for_error(self) -> str:
        tail = self.console_tail()
        err = self._stderr_tail().strip()
        if err:
            tail += "\n--- qemu stderr ---\n" + err
        return tail

    def check_console(self, settle: float = 1.0) -> None:
        """Raise GuestKernelError if the guest kernel reported a problem so far.

        ``settle``: after a report is first seen, give the kernel this long to finish
        printing it (stack trace, register dump) so the excerpt is complete.
        """
        problem = self.console.settled_problem(settle)
        if problem is not None:
            self.record.error = f"guest kernel reported {problem.kind}"
            raise GuestKernelError(problem.kind, problem.excerpt)

    def wait_ready(self, timeout: float | None = None) -> float:
        """Wait for the ready marker; return the boot time in seconds (QEMU start to marker)."""
        timeout = self.boot_timeout if timeout is None else timeout
        ready = self.console.wait_ready(self._start_time + timeout)
        if ready is not None:
            boot_seconds = self.record.boot_seconds = round(ready - self._start_time, 3)
            log.info("%s: ready after %.2f s", self.name, boot_seconds)
            self._write_record()
            return boot_seconds
        if self.console.problem is not None:
            self.check_console()
        if self.console.closed:
            status = self._wait_exit(5)
            err = self._stderr_tail()
            if any(s in err for s in _PORT_TAKEN):
                raise _PortTaken()
            self.record.error = f"QEMU exited (status {status}) before the guest was ready"
            self._write_record()
            raise VMError(f"{self.name}: {self.record.error}", self._tail_for_error(),
                          self.record.argv)
        self.record.error = f"guest not ready within {timeout} s"
        self._write_record()
        raise VMError(f"{self.name}: {self.record.error}", self._tail_for_error(),
                      self.record.argv)

    @property
    def boot_seconds(self) -> float | None:
        return self.record.boot_seconds

    @property
    def accel(self) -> str:
        return self.record.accel

    @property
    def port(self) -> int | None:
        return self.record.port

    @property
    def pid(self) -> int | None:
        return self.record.pid

    def wait_exit(self, timeout: float) -> int | None:
        """Wait for QEMU to exit on its own (a guest booted with rh.poweroff=1); its status or None."""
        status = self._wait_exit(timeout)
        if status is not None:
            # let the reader finish the last console lines before callers read them
            self.console.wait_closed()
        return status

    def is_running(self) -> bool:
        return self._child is not None and bool(self._child.isalive())

    # ---------------------------------------------------------------- ssh

    @property
    def ssh(self) -> SSHClient:
        """The guest's ssh client, connected on first use."""
        with self._ssh_lock:
            return self._connected()

    def _connected(self) -> SSHClient:
        if self._ssh is None:
            if self.ssh_key is None:
                raise VMError(f"{self.name}: no ssh key was given to this VM")
            if self.record.boot_seconds is None or self.record.port is None:
                raise VMError(f"{self.name}: guest is not ready")
            t0 = time.monotonic()
            client = SSHClient("127.0.0.1", self.record.port, self.ssh_key, name=self.name,
                               host_key=self.host_key)
            try:
                client.connect(timeout=30)
            except VMError as exc:
                self.check_console()  # a dead kernel explains a dead sshd best
                raise VMError(str(exc), self._tail_for_error(), self.record.argv) from exc
            self._ssh = client
            self.record.ssh_seconds = round(time.monotonic() - self._start_time, 3)
            log.info("%s: ssh up after %.2f s (%.2f s after ready)", self.name,
                     self.record.ssh_seconds, time.monotonic() - t0)
            self._write_record()
        return self._ssh

    def run(self, cmd: str, timeout: float = 60, check: bool = False,
            check_console: bool = True) -> Result:
        """Run a shell command in the guest over ssh; then look for kernel reports.

        A connection that died between two commands (dropbear under memory pressure has
        been seen to drop it) is made again before this command: nothing ran on it yet.
        """
        with self._ssh_lock:
            if self._ssh is not None and not self._ssh.is_active() and self.is_running():
                log.warning("%s: the ssh connection was lost; connecting again", self.name)
                self._ssh.close()
                self._ssh = None
        try:
            result = self.ssh.run(cmd, timeout=timeout, check=check)
        except VMError:
            # a command that failed because the kernel died: report the kernel problem
            self.check_console()
            raise
        if check_console:
            self.check_console()
        return result

    def fetch(self, remote: str, local: Path) -> Path:
        return self.ssh.fetch(remote, local)

    def put(self, local: Path, remote: str) -> None:
        self.ssh.put(local, remote)

    # ---------------------------------------------------------------- shutdown

    def _wait_exit(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` for QEMU to exit; reap it; return its status or None."""
        child = self._child
        if child is None:
            return self.record.exit_status
        deadline = time.monotonic() + timeout
        while True:
            # isalive() reaps with waitpid(WNOHANG) and stores the status
            if not child.isalive():
                if child.exitstatus is not None:
                    self.record.exit_status = int(child.exitstatus)
                elif child.signalstatus is not None:
                    self.record.exit_status = -child.signalstatus
                return self.record.exit_status
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def _signal_group(self, sig: int) -> None:
        if self._child is None:
            return
        pid = self._child.pid
        try:
            # pexpect made QEMU a session (and group) leader: its group is its pid
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, sig)

    def _kill_and_reap(self) -> None:
        child = self._child
        if child is None:
            return
        if self._wait_exit(0) is None:
            self._signal_group(signal.SIGKILL)
            if self._wait_exit(10) is None:
                log.error("%s: QEMU pid %d did not die on SIGKILL", self.name, child.pid)
        self._close_child()

    def _close_child(self) -> None:
        """Join the console reader, close the pty and the console log, free the port."""
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        try:
            if self._child is not None:
                self._child.close(force=True)
        except Exception as exc:  # already reaped: pexpect may complain; nothing left to do
            log.debug("%s: closing pty: %s", self.name, exc)
        if self._logfile is not None:
            self._logfile.close()
            self._logfile = None
        _release_port(self.record.port)

    def shutdown(self, soft_timeout: float = 5, term_timeout: float = 5) -> None:
        """Power the guest off, escalating to SIGTERM then SIGKILL; always reap. Idempotent."""
        with self._shutdown_lock:
            if self._stopped or self._child is None:
                self._stopped = True
                self._remove_scratch()
                return
            try:
                if self._wait_exit(0) is None:
                    asked = self._soft_stop()
                    if self._wait_exit(soft_timeout if asked else 0) is None:
                        log.info("%s: no poweroff within %s s, sending SIGTERM", self.name,
                                 soft_timeout)
                        self._signal_group(signal.SIGTERM)
                        if self._wait_exit(term_timeout) is None:
                            log.warning("%s: QEMU ignored SIGTERM, killing it", self.name)
                            self._signal_group(signal.SIGKILL)
                            self._wait_exit(10)
            finally:
                if self._ssh is not None:
                    self._ssh.close()
                    self._ssh = None
                self._close_child()
                self._stopped = True
                self._write_record()
                self._remove_scratch()
                log.info("%s: stopped (QEMU exit status %s)", self.name, self.record.exit_status)

    def _remove_scratch(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def _soft_stop(self) -> bool:
        """Ask the guest to power off; False if there was no way to ask."""
        # poweroff -f: no init scripts to run in this guest, and an immediate ACPI
        # poweroff is what makes QEMU exit
        if self._ssh is not None:
            try:
                self._ssh.run_nowait("poweroff -f")
                return True
            except Exception as exc:  # the guest may be wedged: fall back to the console
                log.debug("%s: poweroff over ssh failed: %s", self.name, exc)
        if self.record.boot_seconds is not None and self._child is not None:
            # a shell runs on the console once the guest is ready
            try:
                self._child.send(b"\npoweroff -f\n")
                return True
            except OSError as exc:
                log.debug("%s: poweroff on console failed: %s", self.name, exc)
        return False

    # ---------------------------------------------------------------- record

    def _write_record(self) -> None:
        path = self.workdir / "vm.json"
        # A workdir removed under a running VM (a test's tmp dir cleaned up early) is not
        # an error, and must not come back: atomic_write would create it again.
        if not self.workdir.is_dir():
            return
        try:
            # not write_json: that sorts the keys, and vm.json keeps the record's field order
            atomic_write(path, json.dumps(asdict(self.record), indent=2) + "\n")
        except OSError as exc:
            if exc.errno != errno.ENOENT:  # removed between the check and the write
                log.warning("%s: cannot write %s: %s", self.name, path, exc)
