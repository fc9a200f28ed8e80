#!/usr/bin/env bash
# Install everything region-harness needs on a Debian 12 machine: the Debian packages
# (QEMU, kernel build tools and deps, linux-source-6.12, guest userland, iasl, ccache)
# and a virtualenv with the package. Idempotent: quiet and quick when all is there.
# Prints the venv's bin directory on its last line.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${REGION_HARNESS_CACHE:-$HOME/.cache/region-harness}
# one virtualenv per checkout: an editable install points at one tree, and a venv shared
# by two checkouts would make one of them test the other's code
venv=${REGION_HARNESS_VENV:-$cache/venvs/$(printf %s "$repo" | sha256sum | cut -c1-12)}

packages=(
  qemu-system-x86            # the VMs (TCG; KVM only if a probe boot works)
  build-essential flex bison bc libelf-dev libssl-dev cpio kmod xz-utils rsync  # kernel builds
  ccache                     # warm rebuilds across flavors and runs
  linux-source-6.12          # the default kernel source (tarball under /usr/src)
  busybox-static stress-ng numactl dropbear-bin   # the guest image
  e2fsprogs                  # mkfs.ext2: the guest's scratch disk (harness/guest/disk.py)
  acpica-tools               # iasl -d: independent check of our SRAT/SLIT
  libnuma-dev                # harness selftests: ksm_tests and migration link libnuma.a (static)
  chromium                   # headless screenshot of harness report pages in the tests
  python3-venv
)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${packages[@]}"; do
  [[ $p == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >&2
fi

# The venv lives in the cache (outside the repo); it is reinstalled when pyproject.toml changed.
mkdir -p "$cache/venvs"
stamp="$venv/.region-harness-stamp"
want="$repo $(sha256sum "$repo/pyproject.toml" | cut -c1-16)"
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating virtualenv $venv" >&2
  python3 -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing region-harness into $venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check -e "$repo[test]" >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin"
