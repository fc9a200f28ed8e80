"""Parse kernel config text (a hand-written fragment or a build's .config) into its CONFIG_ options."""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.errors import ConfigError

__all__ = ["ConfigOption", "parse_config_text"]


@dataclass(frozen=True)
class ConfigOption:
    """One CONFIG_ line; value is 'y', 'm', 'n', a quoted string (quotes kept) or a number."""

    name: str  # without the CONFIG_ prefix
    value: str
    source: str = ""  # file the option came from
    line: int = 0

    def __str__(self) -> str:
        if self.value == "n":
            return f"# CONFIG_{self.name} is not set"
        return f"CONFIG_{self.name}={self.value}"


_SET = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set\s*$")
_VALUE = re.compile(r'^(?:[ymn]|"(?:[^"\\]|\\.)*"|-?\d+|0[xX][0-9a-fA-F]+)$')


def parse_config_text(text: str, source: str = "<config>", strict: bool = True) -> dict[str, ConfigOption]:
    """Parse fragment or .config text into {name: ConfigOption}; a later line wins.

    strict: a line that looks like an option but is malformed raises ConfigError
    (fragments are written by hand; a typo must not be silently ignored). A .config the
    kernel wrote is read with strict=False: whatever is not an option line is skipped.
    """
    opts: dict[str, ConfigOption] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        m = _UNSET.match(line)
        if m:
            opts[m.group(1)] = ConfigOption(m.group(1), "n", source, lineno)
            continue
        if line.startswith("#"):
            continue
        m = _SET.match(line)
        if m and _VALUE.match(m.group(2).strip()):
            opts[m.group(1)] = ConfigOption(m.group(1), m.group(2).strip(), source, lineno)
            continue
        if strict:
            raise ConfigError(f"{source}:{lineno}: not a config option line: {raw!r} "
                              f"(expected CONFIG_X=y|m|n|\"string\"|number or '# CONFIG_X is not set')")
    return opts
