#!/usr/bin/env bash
# The whole test suite: unit tests, then VM tests that build the kernels and boot them.
# Extra arguments go to pytest (e.g. ci/test.sh -m "not slow" or -k interleaved).
# Writes JUnit XML to ${RH_JUNIT:-junit.xml}.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(bash "$repo/ci/setup.sh" | tail -n 1)
cd "$repo"
exec "$bin/python" -m pytest -ra --junitxml="${RH_JUNIT:-junit.xml}" "$@" tests
