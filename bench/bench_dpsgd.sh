#!/usr/bin/env bash
# DP-SGD cost and accuracy, side by side in one run:
#  1. step time of DP-SGD over non-private SGD in ondev, for fmnist-mlp and
#     fmnist-cnn (same batch size; best of --repeats runs of each);
#  2. samples/s of the same DP-SGD step in PyTorch: per-example gradients by
#     vmap and by a micro-batch loop, and hand-written ghost clipping
#     (bench/torch_dpsgd.py);
#  3. with --accuracy, fmnist-cnn and fmnist-scatter trained to epsilon = 3,
#     delta = 1e-5 (Poisson sampling): test accuracy and hyper-parameters.
# Runs one job at a time; run it on an idle machine.
#
#   bench/bench_dpsgd.sh [--quick] [--accuracy] [--threads N] [--batch B]
#                        [--repeats R] [--out DIR]
#
# ONDEV_BIN names the ondev program (default build/ondev).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${ONDEV_BIN:-$root/build/ondev}
out=$root/bench/out/dpsgd
threads=1
batch=256
# Five runs of 50 steps each: shorter runs left the MLP's 2-3 ms steps
# within noise of each other (ratios from 1.24 to 1.33 on the same build).
repeats=5
subset=12800
accuracy=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) repeats=1; subset=1280 ;;
    --accuracy) accuracy=1 ;;
    --threads) threads=$2; shift ;;
    --batch) batch=$2; shift ;;
    --repeats) repeats=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_dpsgd: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$bin" ] || { echo "bench_dpsgd: no ondev at $bin (set ONDEV_BIN)" >&2; exit 2; }
mkdir -p "$out"

# Step time of one short run: host_time_s / steps. DP runs use Poisson
# sampling at q = batch / subset, sigma 1.
run_ms() {   # workload dp repeat -> prints ms per step
  local wl=$1 dp=$2 r=$3
  "$bin" run -q --json --out "$out/step-$wl-dp$dp-$r.h5" \
    --set workload="$wl" --set dp="$dp" \
    --set noise_multiplier=1 --set clip_norm=1 --set batch_size="$batch" \
    --set train_subset="$subset" --set test_subset=100 \
    --set eval_each_epoch=false --set threads="$threads" \
    > "$out/step-$wl-dp$dp-$r.json"
  /usr/bin/python3 - "$out/step-$wl-dp$dp-$r.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
d = d["runs"][0] if "runs" in d else d   # with a results file: one run
print(f"{1e3 * d['host_time_s'] / d['steps']:.3f}")
EOF
}

echo "== ondev: DP-SGD / SGD step time (batch $batch, $threads thread(s))" >&2
summary="$out/summary.txt"
: > "$summary"
for wl in fmnist-mlp fmnist-cnn; do
  # The best of $repeats runs each, the private and the plain run taking
  # turns so that a slow spell of the machine falls on both.
  plain="" dp=""
  for r in $(seq "$repeats"); do
    p=$(run_ms "$wl" false "$r")
    q=$(run_ms "$wl" true "$r")
    plain=$(/usr/bin/python3 -c "print(f'{min($p, ${plain:-$p}):.3f}')")
    dp=$(/usr/bin/python3 -c "print(f'{min($q, ${dp:-$q}):.3f}')")
  done
  ratio=$(/usr/bin/python3 -c "print(f'{$dp / $plain:.3f}')")
  sps=$(/usr/bin/python3 -c "print(f'{$batch / ($dp / 1e3):.0f}')")
  line="ondev $wl: SGD $plain ms/step, DP-SGD $dp ms/step, ratio $ratio, DP $sps samples/s"
  echo "$line" | tee -a "$summary" >&2
done

echo "== PyTorch: the same DP-SGD step" >&2
# OpenBLAS (PyTorch's linear layers) and OpenMP get the same thread count
# as PyTorch itself: left alone, OpenBLAS takes every core.
for wl in fmnist-mlp fmnist-cnn; do
  OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads \
  /usr/bin/python3 "$root/bench/torch_dpsgd.py" --model "$wl" \
    --batch "$batch" --threads "$threads" --repeats "$repeats" \
    --json "$out/torch-$wl.json" 2>&1 | sed 's/^/torch /' | tee -a "$summary" >&2
done

if [ "$accuracy" = 1 ]; then
  # One line per accuracy run: test accuracy, epsilon and how it was spent.
  accuracy_line() {   # json label
    /usr/bin/python3 - "$1" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
d = d["runs"][0] if "runs" in d else d
print(f"{sys.argv[2]} DP: test accuracy {100 * d['test_accuracy']:.2f} % at "
      f"epsilon {d['epsilon']:.3f}, delta {d['delta']:g} ({d['accountant']}, "
      f"{d['conversion']}), sigma {d['noise_multiplier']:.4f}, "
      f"q {d['sampling_rate']:.5f}, {d['steps']} steps, "
      f"clipped {100 * d['clipped_fraction']:.0f} %, "
      f"{d['host_time_s']:.0f} s")
EOF
  }

  # fmnist-cnn at epsilon 3: sigma is calibrated for the whole run before
  # training (RDP, improved conversion).
  acc=(--set workload=fmnist-cnn --set dp=true --set epsilon=3
       --set delta=1e-5 --set sampling=poisson --set batch_size=1024
       --set epochs=15 --set lr=1.0 --set momentum=0.9 --set schedule=cosine
       --set clip_norm=1 --set seed=1 --set threads=2
       --set eval_each_epoch=false)
  echo "== fmnist-cnn at epsilon 3: ${acc[*]}" >&2
  "$bin" run -q --json --out "$out/accuracy-cnn-eps3.h5" "${acc[@]}" > "$out/accuracy-cnn-eps3.json"
  accuracy_line "$out/accuracy-cnn-eps3.json" fmnist-cnn | tee -a "$summary" >&2

  # fmnist-scatter (scattering features + linear, Tramer and Boneh 2021) at
  # epsilon 3: large batches, few steps, a small clip norm. Its features
  # take 15 to 20 s to compute at load; host_time_s counts training only.
  sacc=(--set workload=fmnist-scatter --set dp=true --set epsilon=3
        --set delta=1e-5 --set sampling=poisson --set batch_size=8192
        --set epochs=40 --set lr=16 --set momentum=0.9
        --set schedule=constant --set clip_norm=0.1 --set seed=1
        --set threads=2 --set eval_each_epoch=false)
  echo "== fmnist-scatter at epsilon 3: ${sacc[*]}" >&2
  "$bin" run -q --json --out "$out/accuracy-scatter-eps3.h5" "${sacc[@]}" > "$out/accuracy-scatter-eps3.json"
  accuracy_line "$out/accuracy-scatter-eps3.json" fmnist-scatter | tee -a "$summary" >&2
fi
echo "== summary in $summary" >&2
