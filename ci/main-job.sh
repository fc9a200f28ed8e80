#!/usr/bin/env bash
# The main job end to end on the built-in defaults: build vanilla and regions, boot the
# default topologies, run the stress workload, snapshot, check, write runs/<stamp>/.
# Extra arguments go to `harness run` (see `harness run --help`).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(bash "$repo/ci/setup.sh" | tail -n 1)
cd "$repo"
exec "$bin/harness" run "$@"
