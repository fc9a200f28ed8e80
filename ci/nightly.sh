#!/usr/bin/env bash
# Nightly job on a kernel build: the full test suite with long stress, a bisectability
# build of the series, the main job, and a regression comparison with the previous run.
# Environment: RH_RUNS (default ~/region-harness-runs) keeps the runs between nights.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(bash "$repo/ci/setup.sh" | tail -n 1)
runs=${RH_RUNS:-$HOME/region-harness-runs}
mkdir -p "$runs"
cd "$repo"

status=0
# every patch of the series must build on its own
"$bin/harness" build --flavor regions --each-patch || status=1
# the suite, with several minutes of stress per topology under the debug kernel
RH_STRESS_SECONDS=${RH_STRESS_SECONDS:-300} RH_JUNIT="$runs/junit-$(date +%Y%m%d).xml" \
  bash ci/test.sh || status=1
# the main job with the page-cache workload (the critics' case), then compare
previous=$(ls -1d "$runs"/20* 2>/dev/null | tail -n 1 || true)
"$bin/harness" run --workload stress-pagecache --seconds 120 --out "$runs" || status=1
latest=$(ls -1d "$runs"/20* | tail -n 1)
if [ -n "$previous" ] && [ "$previous" != "$latest" ]; then
  "$bin/harness" compare "$previous" "$latest" --out "$latest/compare" || status=1
fi
exit $status
