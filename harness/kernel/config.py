"""Kernel config: flavor definitions, fragment parsing, configure (tinyconfig + fragments), verification.

Like KUnit's kunit_tool, every option a fragment asks for is checked in the final
.config after olddefconfig: Kconfig silently drops options whose dependencies are not
met, and a kernel built without the option we asked for would make every later
measurement wrong without anyone noticing.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.errors import ConfigError, InfraError
from harness.fs import raise_if_disk_full
from harness.metrics.kconfig import ConfigOption, parse_config_text
from harness.paths import FLAVORS_DIR

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- flavors

@dataclass(frozen=True)
class Flavor:
    """A kernel flavor: which fragments to merge onto tinyconfig and whether to apply the series."""

    name: str
    fragments: tuple[Path, ...]
    patches: bool
    description: str = ""
    path: Path | None = None


_FLAVOR_KEYS = {"description", "fragments", "patches"}


def load_flavor(name_or_path: str | Path, flavors_dir: Path | None = None) -> Flavor:
    """Load qemu-configs/kernel/<name>.yaml (or a given .yaml path) into a Flavor."""
    flavors_dir = Path(flavors_dir) if flavors_dir else FLAVORS_DIR
    p = Path(name_or_path)
    path = p if p.suffix in (".yaml", ".yml") else flavors_dir / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(list_flavors(flavors_dir)) or "none"
        raise ConfigError(f"unknown kernel flavor {str(name_or_path)!r}: no {path} (known: {known})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {sorted(_FLAVOR_KEYS)}")
    unknown = set(data) - _FLAVOR_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {sorted(unknown)} (allowed: {sorted(_FLAVOR_KEYS)})")
    frags = data.get("fragments")
    if not isinstance(frags, list) or not frags or not all(isinstance(f, str) for f in frags):
        raise ConfigError(f"{path}: field 'fragments' must be a non-empty list of file names")
    patches = data.get("patches", False)
    if not isinstance(patches, bool):
        raise ConfigError(f"{path}: field 'patches' must be true or false, not {patches!r}")
    resolved = []
    for f in frags:
        fp = (path.parent / f).resolve()
        if not fp.is_file():
            raise ConfigError(f"{path}: field 'fragments': {f} does not exist ({fp})")
        resolved.append(fp)
    return Flavor(name=path.stem, fragments=tuple(resolved), patches=patches,
                  description=str(data.get("description", "")), path=path.resolve())


def list_flavors(flavors_dir: Path | None = None) -> list[str]:
    flavors_dir = Path(flavors_dir) if flavors_dir else FLAVORS_DIR
    return sorted(p.stem for p in flavors_dir.glob("*.yaml"))


# --------------------------------------------------------------------------- fragments

# ConfigOption and parse_config_text live in harness.metrics.kconfig (the model reads a
# guest's .config with the same parser); imported above, they stay importable from here.


def parse_fragment(path: Path) -> dict[str, ConfigOption]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config fragment {path}: {exc}") from exc
    return parse_config_text(text, source=str(path))


def requested_options(fragments: list[Path] | tuple[Path, ...]) -> dict[str, ConfigOption]:
    """The options the fragments ask for, later fragments overriding earlier ones (merge_config order)."""
    merged: dict[str, ConfigOption] = {}
    for frag in fragments:
        merged.update(parse_fragment(frag))
    return merged


# --------------------------------------------------------------------------- verification

def _same_value(want: str, got: str) -> bool:
    if want == got:
        return True
    try:  # numbers: 0x10 == 0x0010 == 16
        return int(want, 0) == int(got, 0)
    except ValueError:
        return False


@dataclass
class KconfigSymbol:
    """What a best-effort grep of the Kconfig files tells about a symbol."""

    name: str
    defined_at: list[str] = field(default_factory=list)  # "mm/Kconfig:123"
    depends: list[str] = field(default_factory=list)  # "depends on" expressions


def find_kconfig_symbols(srctree: Path, names: list[str]) -> dict[str, KconfigSymbol]:
    """Grep `config NAME` / `menuconfig NAME` in the tree's Kconfig files and read each `depends on`.

    One `grep -r` over the tree (under a second) rather than a Python walk of ~90k files.
    """
    syms = {n: KconfigSymbol(n) for n in names}
    if not names:
        return syms
    pattern = r"^\s*(menu)?config\s+(" + "|".join(map(re.escape, names)) + r")\s*$"
    proc = subprocess.run(["grep", "-rnE", "--include=Kconfig*", pattern, "."], cwd=srctree,
                          capture_output=True, text=True, errors="replace")
    block_end = re.compile(r"^\s*(?:config|menuconfig|choice|endchoice|menu|endmenu|if|endif|source|comment)\b")
    files: dict[str, list[str]] = {}
    for hit in proc.stdout.splitlines():
        fname, lineno, text = hit.split(":", 2)
        name = text.split()[-1]
        if name not in syms:
            continue
        fname = fname.removeprefix("./")
        sym = syms[name]
        sym.defined_at.append(f"{fname}:{lineno}")
        if fname not in files:
            files[fname] = (srctree / fname).read_text(errors="replace").splitlines()
        for body in files[fname][int(lineno):]:
            if block_end.match(body):
                break
            m = re.match(r"^\s*depends\s+on\s+(.+?)\s*$", body)
            if m:
                sym.depends.append(m.group(1))
    return syms



_IDENT = re.compile(r"(!?)\s*\b([A-Z][A-Z0-9_]+)\b")


def _unmet(depends: list[str], final: dict[str, ConfigOption]) -> list[str]:
    """Hints from the depends expressions: symbols that are off (or on, where negated) in the final config.

    Not a Kconfig evaluator: `A || B` with A off and B on still lists A. Good enough to
    point at the likely culprit in an error message.
    """
    out = []
    for expr in depends:
        for neg, ident in _IDENT.findall(expr):
            opt = final.get(ident)
            on = opt is not None and opt.value != "n"
            if neg and on:
                hint = f"CONFIG_{ident} is set"
            elif not neg and not on:
                hint = f"CONFIG_{ident} is not set"
            else:
                continue
            if hint not in out:
                out.append(hint)
    return out


def verify_config(requested: dict[str, ConfigOption], final_text: str,
                  srctree: Path | None = None) -> None:
    """Check that every requested option came out as asked; raise ConfigError listing those that did not."""
    final = parse_config_text(final_text, source=".config", strict=False)
    problems: list[tuple[str, str]] = []
    for name, want in requested.items():
        got = final.get(name)
        got_value = got.value if got else "n"
        if want.value == "n":
            ok = got_value == "n"
        else:
            ok = got is not None and _same_value(want.value, got_value)
        if ok:
            continue
        where = f"{Path(want.source).name}:{want.line}" if want.source else "?"
        if got is None:
            came = "it is missing from the final .config"
        elif got_value == "n":
            came = "it is not set in the final .config"
        else:
            came = f"the final .config has {got_value}"
        problems.append((name, f"CONFIG_{name}: {where} asks for {want.value}, {came}"))
    if not problems:
        return
    syms = find_kconfig_symbols(srctree, [n for n, _ in problems]) if srctree is not None else {}
    lines = []
    for name, msg in problems:
        sym = syms.get(name)
        if sym is not None:
            if not sym.defined_at:
                msg += f"; CONFIG_{name} does not exist in this kernel's Kconfig (typo or removed option)"
            elif sym.depends:
                unmet = _unmet(sym.depends, final)
                msg += f"; it depends on {' && '.join(f'({d})' for d in sym.depends)}"
                if unmet:
                    msg += f" ({'; '.join(unmet)})"
                msg += f" [{sym.defined_at[0]}]"
            else:
                msg += f" [{sym.defined_at[0]}; no 'depends on': maybe a choice, a select or a range]"
        lines.append(msg)
    raise ConfigError("kernel config options did not take effect:\n  " + "\n  ".join(lines))


# --------------------------------------------------------------------------- configure

def configure_commands(srctree: Path, builddir: Path, fragments: list[Path] | tuple[Path, ...],
                       make_vars: list[str]) -> list[list[str]]:
    """The commands that produce <builddir>/.config (also used as the metadata reproducer)."""
    make = ["make", "-s", "-C", str(srctree), f"O={builddir}", *make_vars]
    return [
        [*make, "tinyconfig"],
        [str(srctree / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(builddir),
         str(builddir / ".config"), *map(str, fragments)],
        [*make, "olddefconfig"],
    ]


def configure(srctree: Path, builddir: Path, fragments: list[Path] | tuple[Path, ...],
              make_vars: list[str], env: dict, log_file=None, partial_series: bool = False) -> str:
    """Write <builddir>/.config from tinyconfig + fragments, verify it, return its text.

    If the result is identical to the previous .config, the old file (and its mtime)
    is kept so make does not even rerun syncconfig. partial_series: the tree carries
    only the first patches of the series (--each-patch), so an option no Kconfig file
    defines yet is one a later patch adds: it is skipped, not an error.
    """
    builddir.mkdir(parents=True, exist_ok=True)
    cfg = builddir / ".config"
    old = cfg.read_bytes() if cfg.exists() else None
    old_stat = cfg.stat() if cfg.exists() else None
    for cmd in configure_commands(srctree, builddir, fragments, make_vars):
        proc = subprocess.run(cmd, cwd=builddir.parent, env=env, capture_output=True, text=True)
        if log_file is not None:
            log_file.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr).strip()
            raise_if_disk_full(out, f"configuring in {builddir}")
            # the fragments were parsed already; a failing kconfig run is the host's problem
            # (missing flex/bison/gcc, a broken tree), not the user's input
            raise InfraError(f"configuring failed: {' '.join(cmd)} exited {proc.returncode}:\n{out[-2000:]}")
    new = cfg.read_bytes()
    if old is not None and new == old and old_stat is not None:
        os.utime(cfg, ns=(old_stat.st_atime_ns, old_stat.st_mtime_ns))
    text = new.decode()
    requested = requested_options(fragments)
    if partial_series:
        undefined = [n for n, sym in find_kconfig_symbols(srctree, list(requested)).items() if not sym.defined_at]
        for name in undefined:
            log.info("CONFIG_%s is not defined before a later patch of the series: not verified", name)
            del requested[name]
    verify_config(requested, text, srctree)
    return text
