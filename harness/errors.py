"""The one exception tree of the harness: bad input versus infrastructure failures."""


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""

    #: process exit code the CLI uses for this kind of error
    exit_code = 1


class UserError(HarnessError):
    """The input is wrong (a file, a field, a patch, an option): the user must fix it."""

    exit_code = 2


class TopologyError(UserError):
    """A topology file is invalid; the message names the file and the field."""


class ConfigError(UserError):
    """A kernel config fragment or flavor definition is invalid, or an option did not take effect."""


class PatchError(UserError):
    """A patch of the series is missing or does not apply; names the patch, file and hunk."""


class SourceError(UserError):
    """The kernel source is missing, unreadable or not a kernel tree."""


class ParseError(UserError):
    """Captured kernel output is truncated or garbled; names the file and line."""

    def __init__(self, source: str, line: int | None, message: str):
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line


class InfraError(HarnessError):
    """The infrastructure failed (build, QEMU, SSH, disk): not the user's input."""

    exit_code = 3


class BuildError(InfraError):
    """The kernel build failed; carries the log path and the last compiler errors."""

    def __init__(self, message: str, log_path: str | None = None, excerpt: str = ""):
        text = message
        if excerpt:
            text += "\n--- last errors ---\n" + excerpt
        if log_path:
            text += f"\n(full log: {log_path})"
        super().__init__(text)
        self.log_path = log_path
        self.excerpt = excerpt


class VMError(InfraError):
    """A VM failed to start, boot or answer; carries the console tail."""

    def __init__(self, message: str, console_tail: str = "", argv: list[str] | None = None):
        text = message
        if argv:
            text += "\nqemu: " + " ".join(argv)
        if console_tail:
            text += "\n--- console tail ---\n" + console_tail
        super().__init__(text)
        self.console_tail = console_tail
        self.argv = argv or []


class GuestKernelError(VMError):
    """The guest kernel reported a problem (panic, Oops, BUG, WARNING, KASAN, lockdep, hung task)."""

    def __init__(self, kind: str, excerpt: str):
        super().__init__(f"guest kernel reported {kind}", console_tail=excerpt)
        self.kind = kind


class CheckFailed(HarnessError):
    """Observed metrics differ from the model; the CLI exits non-zero."""

    exit_code = 4


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C, so runs are marked aborted and QEMU is stopped."""

    def __init__(self, signum: int):
        import signal

        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum
