"""Kernel builds: source, patch series, config fragments, cached builds (public API of harness.kernel)."""

from harness.kernel.build import (
                                  BuildResult,
                                  PatchStep,
                                  build,
                                  cache_key,
                                  cached_build,
                                  compiler_version,
                                  error_excerpt,
                                  format_steps,
                                  patched_tree,
                                  pre_key,
)
from harness.kernel.cache import build_lock
from harness.kernel.config import (
                                  ConfigOption,
                                  Flavor,
                                  configure,
                                  list_flavors,
                                  load_flavor,
                                  parse_config_text,
                                  parse_fragment,
                                  requested_options,
                                  verify_config,
)
from harness.kernel.patches import Patch, apply_in_staging, parse_series, sync_series, touched_files
from harness.kernel.source import KernelSource, read_version, resolve_source
from harness.paths import cache_root

__all__ = [
    "BuildResult", "cached_build", "PatchStep", "build", "cache_key", "pre_key", "compiler_version", "error_excerpt",
    "format_steps", "patched_tree", "build_lock", "cache_root", "ConfigOption", "Flavor", "configure",
    "list_flavors", "load_flavor", "parse_config_text", "parse_fragment",
    "requested_options", "verify_config", "Patch", "apply_in_staging", "parse_series", "sync_series",
    "touched_files", "KernelSource", "read_version", "resolve_source",
]
