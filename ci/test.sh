#!/usr/bin/env bash
# The whole test suite: unit tests, then VM tests that build the kernels and boot them.
# Extra arguments go to pytest (e.g. ci/test.sh -m "not slow" or -k interleaved).
# Writes JUnit XML to ${RH_JUNIT:-junit.xml}.
#
# Without arguments the three kernels the VM tests boot are built in the background while
# the unit tests run, which keep only one of the cores busy: one build at a time (the
# build lock), and a VM test that needs a kernel not built yet waits on that lock. A
# failed background build is only lost time: the VM test that needs the kernel builds it
# again and reports the error. The background builds end with the suite, whatever its end.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(bash "$repo/ci/setup.sh" | tail -n 1)
cd "$repo"

prebuild=""
stop_prebuild() {
  if [ -n "$prebuild" ]; then
    kill -TERM -- "-$prebuild" 2>/dev/null || true
    wait "$prebuild" 2>/dev/null || true
  fi
}
trap stop_prebuild EXIT
if [ $# -eq 0 ]; then
  log=${RH_PREBUILD_LOG:-prebuild.log}
  # its own process group, so that stopping it stops make and the compilers too
  set -m
  ( for flavor in regions debug vanilla; do
      "$bin/harness" build --flavor "$flavor" || exit 1
    done ) > "$log" 2>&1 &
  prebuild=$!
  set +m
fi
status=0
"$bin/python" -m pytest -ra --junitxml="${RH_JUNIT:-junit.xml}" "$@" tests || status=$?
exit $status
