#!/usr/bin/env bash
# Train the keyboard-text and health-activity workloads and report their
# held-out accuracy against their baselines, and training throughput on 1
# and 2 threads. Runs one training at a time; run it on an idle machine.
#
#   bench/bench_workloads.sh [--quick] [--out DIR] [--kjv-epochs N]
#                            [--har-epochs N]
#
# ONDEV_BIN names the ondev program (default build/ondev). The Bible text
# is cached in $XDG_CACHE_HOME/ondev (or ~/.cache/ondev) on the first run.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${ONDEV_BIN:-$root/build/ondev}
out=$root/bench/out/workloads
kjv_epochs=2
har_epochs=10
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out=$2; shift ;;
    --kjv-epochs) kjv_epochs=$2; shift ;;
    --har-epochs) har_epochs=$2; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_workloads: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$bin" ] || { echo "bench_workloads: no ondev at $bin (set ONDEV_BIN)" >&2; exit 2; }
mkdir -p "$out"

# Settings of the accuracy runs: Adam with a cosine schedule.
kjv=(--set workload=kjv-char --set batch_size=64 --set optimizer=adam
     --set lr=0.003 --set schedule=cosine --set seed=1)
har=(--set workload=har-cnn --set batch_size=32 --set optimizer=adam
     --set lr=0.001 --set seed=1)
# Throughput runs: a fixed slice of the data, one epoch.
kjv_tp=(--set train_subset=3200 --set test_subset=64)
har_tp=(--set train_subset=4096 --set test_subset=64)
if [ "$quick" = 1 ]; then
  kjv_epochs=1; har_epochs=2
  kjv+=(--set train_subset=2000 --set test_subset=300)
  kjv_tp=(--set train_subset=640 --set test_subset=64)
fi

run() {   # name, then ondev arguments
  local name=$1; shift
  echo "== $name: $*" >&2
  "$bin" run -q --json "$@" > "$out/$name.json"
}

run kjv-accuracy "${kjv[@]}" --set epochs="$kjv_epochs" --set threads=2 \
    --set eval_each_epoch=true
run har-accuracy "${har[@]}" --set epochs="$har_epochs" --set threads=1
for t in 1 2; do
  run "kjv-throughput-t$t" "${kjv[@]}" "${kjv_tp[@]}" --set epochs=1 \
      --set threads=$t --set eval_each_epoch=false
  run "har-throughput-t$t" "${har[@]}" "${har_tp[@]}" --set epochs=1 \
      --set threads=$t --set eval_each_epoch=false
done

/usr/bin/python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
def load(name):
    with open(os.path.join(out, name + ".json")) as f:
        return json.load(f)
def pct(v):
    return "n/a" if v is None else "%.1f %%" % (100 * v)
rows = []
k, h = load("kjv-accuracy"), load("har-accuracy")
print("workload  epochs  test top-1  baseline top-1  extra")
print("kjv-char  %6d  %10s  %14s  top-3 %s, %.3f bits/char (bigram %.3f)" % (
    k["epochs_done"], pct(k["test_accuracy"]), pct(k.get("baseline_accuracy")),
    pct(k.get("top3_accuracy")), k.get("bits_per_char") or float("nan"),
    k.get("baseline_bits_per_char") or float("nan")))
print("har-cnn   %6d  %10s  %14s  gap %.1f points" % (
    h["epochs_done"], pct(h["test_accuracy"]), pct(h.get("baseline_accuracy")),
    100 * (h["test_accuracy"] - (h.get("baseline_accuracy") or 0))))
print()
print("training throughput (samples/s; a kjv-char sample is 64 characters)")
print("workload  1 thread  2 threads  speed-up")
for w in ("kjv", "har"):
    a, b = load(w + "-throughput-t1"), load(w + "-throughput-t2")
    print("%-8s  %8.0f  %9.0f  %8.2f" % (
        "kjv-char" if w == "kjv" else "har-cnn", a["samples_per_s"],
        b["samples_per_s"], b["samples_per_s"] / a["samples_per_s"]))
summary = {"kjv_char": k, "har_cnn": h}
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump({w: {key: v.get(key) for key in (
        "test_accuracy", "baseline_accuracy", "top3_accuracy",
        "bits_per_char", "baseline_bits_per_char", "samples_per_s",
        "epochs_done")} for w, v in summary.items()}, f, indent=2)
PY
