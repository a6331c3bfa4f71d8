#!/usr/bin/env bash
# End-to-end checks of `ondev profile`: a quick profile of this machine with
# --json, the keys and ranges of its summary, the hardware-counter line
# (present whether or not the machine has counters), the written device
# profile as `ondev devices` reads it (by name on ONDEV_DEVICE_PATH and by
# path), its efficiencies against the JSON, their effect on an emulated run,
# and usage errors. Nothing here depends on how fast the machine is.
# Needs ONDEV_BIN (set by ctest).
set -u

bin=${ONDEV_BIN:?set ONDEV_BIN to the ondev executable}
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# expect_status WANT NAME CMD...: run CMD with output in $tmp/out, $tmp/err.
expect_status() {
  local want=$1 name=$2
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [ "$got" -ne "$want" ]; then
    fail "$name: exit status $got, expected $want"
    sed 's/^/  stderr: /' "$tmp/err" | head -20 >&2
  fi
}

# expect_in FILE TEXT NAME: FILE contains TEXT (fixed string).
expect_in() {
  if ! grep -qF -- "$2" "$1"; then
    fail "$3: '$2' not found in $(basename "$1")"
    sed 's/^/  | /' "$1" | head -20 >&2
  fi
}

# ---- Usage ----------------------------------------------------------------
expect_status 0 "profile --help" "$bin" profile --help
expect_in "$tmp/out" "ONDEV_DEVICE_PATH" "profile --help"
expect_status 0 "ondev --help" "$bin" --help
expect_in "$tmp/out" "profile [--out FILE]" "ondev --help lists profile"
expect_status 2 "unknown option" "$bin" profile --bogus
expect_in "$tmp/err" "unknown argument '--bogus'" "unknown option"
expect_status 2 "--out without a file" "$bin" profile --out
expect_status 2 "unwritable --out" "$bin" profile --quick \
  --out "$tmp/no-such-dir/host.yaml"
expect_in "$tmp/err" "cannot write into" "unwritable --out"

# ---- A quick profile --------------------------------------------------------
mkdir -p "$tmp/dev"
expect_status 0 "profile --quick --json" "$bin" profile --quick \
  --out "$tmp/dev/host.yaml" --json
cp "$tmp/out" "$tmp/profile.json"
cp "$tmp/err" "$tmp/profile.err"
[ -s "$tmp/dev/host.yaml" ] || fail "profile: $tmp/dev/host.yaml not written"

# The summary: keys, kinds and ranges (never speeds).
if ! "$py" - "$tmp/profile.json" "$tmp/dev/host.yaml" <<'EOF'
import json, math, re, sys

d = json.load(open(sys.argv[1]))
bad = []

def need(cond, what):
    if not cond:
        bad.append(what)

for k in ("profile_path", "profile_name", "quick", "host", "isa", "clock",
          "counters", "peak", "memory", "kernels", "training",
          "kernel_efficiency", "train_efficiency", "efficiency",
          "efficiency_from", "elapsed_s"):
    need(k in d, "missing key " + k)
need(d.get("profile_name") == "host", "profile_name is not 'host'")
need(d.get("quick") is True, "quick is not true")

h = d.get("host", {})
for k in ("cpu_model", "packages", "cores", "pus", "numa_nodes",
          "mem_total_bytes", "caches"):
    need(k in h, "host." + k + " missing")
need(h.get("cores", 0) >= 1 and h.get("pus", 0) >= h.get("cores", 0),
     "host: cores >= 1 and pus >= cores")
need(h.get("mem_total_bytes", 0) > 0, "host.mem_total_bytes > 0")
for c in h.get("caches", []):
    need(c["level"] >= 1 and c["size_bytes"] > 0 and c["count"] >= 1,
         "cache entry %r" % c)
    need(c["type"] in ("data", "instruction", "unified"),
         "cache type %r" % c["type"])
need(d.get("isa") in ("portable", "avx2", "avx512"), "isa %r" % d.get("isa"))

clk = d.get("clock", {})
need(clk.get("freq_khz", 0) > 1e4, "clock.freq_khz > 10 MHz")
need(bool(clk.get("method")), "clock.method empty")

ctr = d.get("counters", {})
for k in ("papi_built", "slots", "usable", "text"):
    need(k in ctr, "counters." + k + " missing")
text = ctr.get("text", "")
if ctr.get("usable", 0) == 0:
    need(text.startswith("none available") and
         text.endswith("measurements use wall-clock time only"),
         "counters.text for no counters: %r" % text)
else:
    need("usable" in text, "counters.text with counters: %r" % text)

pk = d.get("peak", {})
need(pk.get("gflop_s_per_core", 0) > 0, "peak.gflop_s_per_core > 0")
need(pk.get("flop_per_cycle", 0) > 0, "peak.flop_per_cycle > 0")
mem = d.get("memory", {})
for k in ("buffer_bytes", "copy_gb_s_1", "triad_gb_s_1", "triad_gb_s_all"):
    need(mem.get(k, 0) > 0, "memory.%s > 0" % k)
need(mem.get("threads_all", 0) >= 1, "memory.threads_all >= 1")

kinds = {"gemm", "conv", "pool", "eltwise", "softmax", "norm", "embed",
         "reduce", "optim", "rng", "copy"}
ks = d.get("kernels", [])
need(len(ks) >= 6, "fewer than 6 kernels")
for k in ks:
    need(k["kind"] in kinds, "kernel kind %r" % k["kind"])
    need(k["flops"] > 0 and k["bytes"] > 0 and k["best_s"] > 0,
         "kernel %s: flops, bytes, time > 0" % k["name"])
    # The reported rates are the counts over the best time.
    need(abs(k["gflop_s"] - k["flops"] / k["best_s"] / 1e9)
         <= 1e-9 * k["gflop_s"], "kernel %s: gflop_s" % k["name"])
    need(0 < k["roofline_gflop_s"] <= pk["gflop_s_per_core"] * (1 + 1e-12),
         "kernel %s: roofline above the peak" % k["name"])
keff = d.get("kernel_efficiency", {})
for kind in ("gemm", "conv", "pool", "eltwise", "softmax", "reduce"):
    need(kind in keff, "kernel_efficiency." + kind + " missing")
for kind, v in keff.items():
    need(kind in kinds and 0 < v <= 1, "kernel_efficiency.%s = %r"
         % (kind, v))
    # A kind's efficiency is its kernels' flops over their time over the
    # peak (capped at 1).
    f = sum(k["flops"] for k in ks if k["kind"] == kind)
    s = sum(k["best_s"] for k in ks if k["kind"] == kind)
    want = min(1.0, f / s / (pk["gflop_s_per_core"] * 1e9))
    need(abs(v - want) <= 1e-9 * want, "kernel_efficiency.%s" % kind)

# Training steps of fmnist-cnn and fmnist-mlp have GEMMs, convolutions,
# pooling, ReLU and the loss; their efficiencies follow the same formula.
tr = d.get("training", {})
need(tr.get("steps_per_model", 0) >= 1, "training.steps_per_model >= 1")
teff = d.get("train_efficiency", {})
for kind in ("gemm", "conv", "pool", "eltwise", "softmax"):
    need(kind in tr.get("kinds", {}), "training.kinds." + kind + " missing")
    need(kind in teff, "train_efficiency." + kind + " missing")
for kind, v in teff.items():
    t = tr.get("kinds", {}).get(kind)
    need(t is not None and t["flops_per_step"] > 0 and t["best_s"] > 0,
         "training.kinds.%s" % kind)
    if t:
        want = min(1.0, t["flops_per_step"] / t["best_s"] /
                   (pk["gflop_s_per_core"] * 1e9))
        need(abs(v - want) <= 1e-9 * want, "train_efficiency.%s" % kind)

# The profile gets the training figure where there is one, else the
# kernels' figure.
eff, src = d.get("efficiency", {}), d.get("efficiency_from", {})
need(set(eff) == set(keff) | set(teff), "efficiency kinds")
for kind, v in eff.items():
    want, frm = (teff[kind], "training") if kind in teff else \
                (keff.get(kind), "kernels")
    need(v == want and src.get(kind) == frm,
         "efficiency.%s = %r from %r" % (kind, v, src.get(kind)))

# The profile file carries the same efficiencies, to 4 digits.
y = open(sys.argv[2]).read()
sect = y.split("\nefficiency:\n", 1)
need(len(sect) == 2, "no efficiency section in the profile")
if len(sect) == 2:
    got = dict(re.findall(r"^  ([a-z]+): ([0-9.eE+-]+)(?:\s+#.*)?$",
                          sect[1], re.M))
    need(set(got) == set(eff), "profile efficiency kinds %r vs JSON %r"
         % (sorted(got), sorted(eff)))
    for kind, v in got.items():
        if kind in eff:
            need(abs(float(v) - eff[kind]) <= 1e-3 * eff[kind],
                 "profile efficiency.%s %s vs JSON %r" % (kind, v, eff[kind]))
need("freq_khz: [%.0f]" % (round(clk.get("freq_khz", 0) / 1000) * 1000) in y,
     "profile freq_khz is not the measured clock")

if bad:
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
EOF
then
  fail "profile --json summary (see above)"
fi

# The counter line is on stderr with --json, whatever the machine has.
none='none available \(.*\); measurements use wall-clock time only'
if ! grep -qE "^hardware counters: ($none|[0-9]+ usable .*)\$" \
     "$tmp/profile.err"; then
  fail "no 'hardware counters:' line on stderr"
  sed 's/^/  | /' "$tmp/profile.err" | head -30 >&2
fi

# ---- The profile as a device ------------------------------------------------
expect_status 0 "devices host (ONDEV_DEVICE_PATH)" \
  env ONDEV_DEVICE_PATH="$tmp/dev" "$bin" devices host
expect_in "$tmp/out" "efficiency.gemm" "devices host shows efficiencies"
expect_in "$tmp/out" "measured by ondev profile on" "devices host sources"
expect_status 0 "devices list with ONDEV_DEVICE_PATH" \
  env ONDEV_DEVICE_PATH="$tmp/dev" "$bin" devices
expect_in "$tmp/out" "host" "devices lists host"
expect_status 0 "devices by path" "$bin" devices "$tmp/dev/host.yaml"

# A profile with a broken efficiency is refused with its line.
mkdir -p "$tmp/bad"
sed 's/^  gemm: .*/  gemm: 1.5/' "$tmp/dev/host.yaml" >"$tmp/bad/host.yaml"
expect_status 2 "devices with efficiency 1.5" "$bin" devices \
  "$tmp/bad/host.yaml"
expect_in "$tmp/err" "efficiency.gemm = 1.5 is outside" "bad efficiency"
sed 's/^  gemm: /  matmul: /' "$tmp/dev/host.yaml" >"$tmp/bad/host.yaml"
expect_status 2 "devices with an unknown kind" "$bin" devices \
  "$tmp/bad/host.yaml"
expect_in "$tmp/err" "unknown key 'matmul'" "unknown efficiency kind"

# ---- The emulator uses the profile's efficiencies --------------------------
# The same short run on the profile and on a copy whose GEMM and convolution
# efficiencies are halved: the emulated time must grow (those ops are
# compute-bound in the roofline), while the host work is the same.
if [ -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] ||
   [ -n "${ONDEV_FMNIST_DIR:-}" ]; then
  mkdir -p "$tmp/slow"
  "$py" - "$tmp/dev/host.yaml" "$tmp/slow/host.yaml" <<'EOF'
import re, sys
y = open(sys.argv[1]).read()
head, eff = y.split("\nefficiency:\n", 1)
def half(m):
    return "  %s: %.6g" % (m.group(1), float(m.group(2)) / 2)
eff = re.sub(r"^  (gemm|conv): ([0-9.eE+-]+)", half, eff, flags=re.M)
open(sys.argv[2], "w").write(head + "\nefficiency:\n" + eff)
EOF
  run() {
    env ONDEV_DEVICE_PATH="$1" "$bin" run --json -q \
      --set workload=fmnist-cnn --set device=host --set device_threads=1 \
      --set train_subset=128 --set test_subset=64 --set batch_size=32 \
      --set threads=1 -o "$tmp/r.h5" 2>"$tmp/err" |
      "$py" -c 'import json,sys; print(json.load(sys.stdin)["emulated_time_s"])'
  }
  fast=$(run "$tmp/dev")
  slow=$(run "$tmp/slow")
  echo "emulated time: $fast s as measured, $slow s with halved" \
    "efficiencies" >&2
  if ! "$py" -c "import sys; f, s = float('$fast'), float('$slow'); \
                 sys.exit(0 if 0 < f < s else 1)" 2>/dev/null; then
    fail "emulated time with halved efficiencies: $slow s, as written: $fast s"
    sed 's/^/  stderr: /' "$tmp/err" | head -20 >&2
  fi
else
  echo "note: dataset-fashion-mnist is not installed; skipping the run" >&2
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "e2e_profile: all checks passed"
