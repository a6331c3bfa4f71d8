#!/usr/bin/env bash
# Host cost of the device emulation: the same training run with and without
# an emulated phone, best of several repeats each, as a share of the
# training loop's host time. fmnist-mlp has the shortest steps of the
# workloads, so it shows the largest share.
# Usage: bench/bench_emulation.sh [DEVICE] [REPEATS]   (defaults: pixel6 5)
set -euo pipefail
cd "$(dirname "$0")/.."
device=${1:-pixel6}
repeats=${2:-5}
bin=${ONDEV_BIN:-${ONDEV_BUILD_DIR:-build}/ondev}
[ -x "$bin" ] || ./setup.sh build
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

best() {   # best host_time_s over the repeats of one configuration
  local b=""
  for _ in $(seq "$repeats"); do
    t=$("$bin" run -q --json --out "$out/run.h5" --set workload=fmnist-mlp \
          --set train_subset=20000 --set test_subset=100 \
          --set eval_each_epoch=false "$@" |
        /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["host_time_s"])')
    b=$(/usr/bin/python3 -c "print(min(float('$t'), float('${b:-inf}')))")
  done
  echo "$b"
}

plain=$(best --set device=)
emulated=$(best --set device="$device")
/usr/bin/python3 - "$plain" "$emulated" "$device" <<'PY'
import sys
plain, emu, dev = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
print(f"training loop, fmnist-mlp, 313 steps: {plain:.3f} s without a device, "
      f"{emu:.3f} s emulating {dev}")
print(f"emulation overhead: {100 * (emu - plain) / plain:.1f} % of the host time")
PY
