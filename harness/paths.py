"""Where things live: the repository's data directories and the one cache root."""

from __future__ import annotations

import os
from pathlib import Path

#: the repository root (harness/paths.py -> repo); topologies, flavors and the series live there
REPO_ROOT = Path(__file__).resolve().parent.parent
TOPOLOGY_DIR = REPO_ROOT / "qemu-configs" / "topologies"
FLAVORS_DIR = REPO_ROOT / "qemu-configs" / "kernel"
PATCHES_DIR = REPO_ROOT / "kernel-patches"


def cache_root() -> Path:
    """The cache root: $REGION_HARNESS_CACHE, else ~/.cache/region-harness."""
    env = os.environ.get("REGION_HARNESS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "region-harness"
