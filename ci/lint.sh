#!/usr/bin/env bash
# Lint and type checks (config in pyproject.toml): any finding fails.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(bash "$repo/ci/setup.sh" | tail -n 1)
cd "$repo"
"$bin/ruff" check harness tests benchmarks
"$bin/mypy"
