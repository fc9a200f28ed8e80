"""Virtual machines: the QEMU process, acceleration probe, serial console checks and ssh."""

from .accel import choose_accel, kernel_release
from .console import ConsoleProblem, first_problem
from .qemu import READY_MARKER, VM, VMRecord, build_argv, qemu_version
from .ssh import Result, SSHClient

__all__ = [
    "VM",
    "VMRecord",
    "READY_MARKER",
    "build_argv",
    "qemu_version",
    "choose_accel",
    "kernel_release",
    "ConsoleProblem",
    "first_problem",
    "Result",
    "SSHClient",
]
