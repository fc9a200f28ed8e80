"""One guest for one kernel on one topology: image, ssh key, QEMU arguments and VM together."""

from __future__ import annotations

from pathlib import Path

from harness.guest import prepare_run
from harness.kernel import cache_root
from harness.topology import Topology, qemu_args
from harness.vm import VM


#: TCG boots of a 6.12 tinyconfig kernel take seconds; debug kernels and 8 GiB guests longer
DEFAULT_BOOT_TIMEOUT = 180.0


def guest(kernel: Path, topo: Topology, workdir: Path, *, append: str = "", accel: str = "auto",
          boot_timeout: float = DEFAULT_BOOT_TIMEOUT, name: str | None = None) -> VM:
    """A VM (not started: use it as a context manager) booting `kernel` on `topo`.

    workdir receives the per-run initrd and ssh key, the generated ACPI tables,
    console.log and vm.json.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cache = cache_root()
    initrd, key = prepare_run(cache / "guest", workdir)
    return VM(kernel, initrd, workdir, qemu_args(topo, workdir), append=append, accel=accel,
              boot_timeout=boot_timeout, name=name or f"{topo.name}", ssh_key=key, cache_dir=cache)
