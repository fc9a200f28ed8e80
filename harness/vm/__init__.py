"""Virtual machines: the QEMU process, its NUMA arguments, acceleration probe, serial console and ssh."""

from .accel import choose_accel, kernel_release
from .console import ConsoleProblem, ConsoleWatcher, first_problem
from .qemu import VM, VMRecord, build_argv, qemu_version
from .ssh import Result, SSHClient

__all__ = [
    "VM",
    "VMRecord",
    "build_argv",
    "qemu_version",
    "choose_accel",
    "kernel_release",
    "ConsoleProblem",
    "ConsoleWatcher",
    "first_problem",
    "Result",
    "SSHClient",
]
