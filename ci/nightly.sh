#!/usr/bin/env bash
# Nightly job on a kernel build: bisectability, the suite with long stress, the main job
# repeated, a verdict against the last good run (bisecting the series on a regression),
# and a report. Exits non-zero on any failure or regression.
# Environment: RH_RUNS (default ~/region-harness-runs) keeps the runs between nights;
# RH_REPEAT (default 5) repetitions per guest.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(bash "$repo/ci/setup.sh" | tail -n 1) || exit 3
runs=${RH_RUNS:-$HOME/region-harness-runs}
repeat=${RH_REPEAT:-5}
mkdir -p "$runs"
cd "$repo"

status=0
# every patch of the series must build on its own
"$bin/harness" build --flavor regions --each-patch || status=1
# the suite, with five minutes of every kind of workload per topology under the debug kernel
# (tests/unit/test_workloads.py checks that this list covers every kind in WORKLOADS)
RH_STRESS_SECONDS=${RH_STRESS_SECONDS:-300} RH_STRESS_WORKLOADS=${RH_STRESS_WORKLOADS:-stress-pagecache,churn-pagecache-compact,thp-challenge,hotplug} \
  RH_SPOT_TOPOLOGIES=${RH_SPOT_TOPOLOGIES:-all} RH_EVACUATE_FLAVORS=${RH_EVACUATE_FLAVORS:-regions,debug} \
  RH_FILL_VARIANTS=${RH_FILL_VARIANTS:-fill,nofill} \
  RH_JUNIT="$runs/junit-$(date +%Y%m%d).xml" \
  bash ci/test.sh || status=1

# the kernel's mm selftests, the whole registry (the CI runs the default set)
"$bin/harness" selftests --tests all --topology four-node,interleaved --out "$runs/selftests" || status=1

# the series' headline: wholly free regions after churn, every policy against the baseline
# (4 variants x 8 repetitions, about 21 minutes); a regression fails the night
"$bin/harness" experiment consolidation --repeat 8 --out "$runs/consolidation" || status=1

# the base is the newest run that finished ok, never a failed or aborted one
previous=$("$bin/python" -c 'import sys; from harness.results.store import last_ok_run; r = last_ok_run(sys.argv[1]); print(r or "")' "$runs")
before=$(ls -1d "$runs"/20* 2>/dev/null | sort | tail -n 1)
"$bin/harness" run --workload stress-pagecache --seconds 120 --repeat "$repeat" --out "$runs" || status=1
latest=$(ls -1d "$runs"/20* 2>/dev/null | sort | tail -n 1)
if [ -z "$latest" ] || [ "$latest" = "$before" ]; then
  echo "nightly: the main job made no run directory" >&2
  exit 3
fi
if [ -n "$previous" ]; then
  "$bin/harness" compare "$previous" "$latest" --out "$latest/compare"
  rc=$?
  if [ "$rc" -eq 4 ]; then
    status=1
    # bisect the first regressed metric of the regions kernel, if there is one
    read -r topo metric < <("$bin/python" - "$latest/compare/compare.csv" <<'PY'
import sys
import pandas as pd
r = pd.read_csv(sys.argv[1])
r = r[(r["direction"] == "REGRESSION") & r["new"].astype(str).str.startswith("regions")]
print(f"{r.iloc[0]['topology']} {r.iloc[0]['metric']}" if len(r) else "")
PY
)
    if [ -n "${metric:-}" ]; then
      "$bin/harness" bisect --base "$previous" --metric "$metric" --topology "$topo" \
        --workload stress-pagecache --seconds 120 --repeat "$repeat" | tee "$latest/bisect.txt" || true
    fi
  elif [ "$rc" -ne 0 ]; then
    status=1
  fi
  "$bin/harness" report "$latest" --against "$previous" || status=1
else
  echo "nightly: no earlier run finished ok; nothing to compare with" >&2
  "$bin/harness" report "$latest" || status=1
fi
exit $status
