#!/usr/bin/env bash
# Set up ondev on Debian 12 (installing whatever packages are missing), build
# it, then run one of:
#   ./setup.sh run    the main job: the default experiment
#   ./setup.sh test   the whole test suite (ctest)
#   ./setup.sh build  set up and build only
# Environment: ONDEV_BUILD_DIR (default build), ONDEV_SANITIZE=1 for an
# AddressSanitizer + UBSan build, ONDEV_JOBS for build parallelism.
set -euo pipefail
cd "$(dirname "$0")"

what=${1:-build}
shift || true

build_dir=${ONDEV_BUILD_DIR:-build}
jobs=${ONDEV_JOBS:-$(nproc 2>/dev/null || echo 2)}

# Everything the build, the tests and the main job need, as Debian packages.
packages=(
  build-essential cmake pkg-config git
  zlib1g-dev libyaml-dev libcmocka-dev libfftw3-dev
  libhwloc-dev hwloc libpapi-dev papi-tools libhdf5-dev libsodium-dev libssl-dev
  gnuplot-nox python3 python3-h5py python3-numpy
  dataset-fashion-mnist bible-kjv bible-kjv-text
)
# The test suite also cross-builds every source file for aarch64.
if [ "$what" = test ]; then
  packages+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing missing Debian packages: ${missing[*]}" >&2
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then
      sudo_cmd=(sudo)
    else
      echo "setup: these packages are missing and this is not root:" >&2
      echo "  apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake_args=(-S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DONDEV_WERROR=ON)
if [ "${ONDEV_SANITIZE:-0}" = 1 ]; then
  cmake_args+=(-DONDEV_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo)
fi
cmake "${cmake_args[@]}" >/dev/null
cmake --build "$build_dir" -j "$jobs" >/dev/null || cmake --build "$build_dir" -j 1

case "$what" in
  build) ;;
  run)
    exec "$build_dir/ondev" run "$@"
    ;;
  test)
    cd "$build_dir"
    exec ctest --output-on-failure -j "$jobs" "$@"
    ;;
  *)
    echo "usage: ./setup.sh [build|run|test]" >&2
    exit 2
    ;;
esac
