#!/usr/bin/env bash
# End-to-end checks of the `ondev` command: run with --json on a small
# subset, configuration errors and their exit status, --print-config,
# --help, --version, bad workloads and data directories, saving the
# initial model (epochs=0) and training from it in stored order
# (shuffle=false), a clean stop on SIGINT, and docs/configuration.md
# against the key table.
# Needs ONDEV_BIN (set by ctest) and ONDEV_SOURCE_DIR.
set -u

bin=${ONDEV_BIN:?set ONDEV_BIN to the ondev executable}
src=${ONDEV_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# expect_status WANT NAME CMD...: run CMD, keep its output in $tmp/out and
# $tmp/err, and check its exit status.
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

have_data=1
if [ ! -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] &&
   [ -z "${ONDEV_FMNIST_DIR:-}" ]; then
  echo "note: dataset-fashion-mnist is not installed; skipping the runs" >&2
  have_data=0
fi

# ---- Help, version, usage errors ---------------------------------------------
expect_status 0 "--help" "$bin" --help
expect_in "$tmp/out" "usage: ondev" "--help"
expect_status 0 "run --help" "$bin" run --help
expect_in "$tmp/out" "--print-config" "run --help"
expect_in "$tmp/out" "fmnist-mlp" "run --help lists workloads"
expect_status 0 "--version" "$bin" --version
expect_in "$tmp/out" "ondev " "--version"
expect_in "$tmp/out" "compiler:" "--version"
expect_in "$tmp/out" "kernels:" "--version"
expect_in "$tmp/out" "host:" "--version"
expect_status 0 "--version --json" "$bin" --version --json
$py -c 'import json,sys; d=json.load(open(sys.argv[1]));
assert d["isa"] in ("portable","avx2","avx512"), d
assert d["host"]["cores"] >= 1' "$tmp/out" || fail "--version --json"

expect_status 2 "no command" "$bin"
expect_in "$tmp/err" "usage: ondev" "no command"
expect_status 2 "unknown command" "$bin" frobnicate
expect_in "$tmp/err" "unknown command 'frobnicate'" "unknown command"
expect_in "$tmp/err" "usage: ondev" "unknown command"
[ -s "$tmp/out" ] && fail "unknown command wrote to stdout"
expect_status 2 "unknown option" "$bin" run --frobnicate
expect_in "$tmp/err" "--frobnicate" "unknown option"

# ---- Configuration errors: refused before any work, exit 2 --------------------
expect_status 2 "unknown key" "$bin" run --set epoch=2
expect_in "$tmp/err" "'epoch'" "unknown key"
expect_in "$tmp/err" "did you mean 'epochs'" "unknown key"
expect_status 2 "bad value" "$bin" run --set batch_size=-3
expect_in "$tmp/err" "batch_size" "bad value"
expect_in "$tmp/err" "'-3'" "bad value"
expect_status 2 "bad enum" "$bin" run --set optimizer=foo
expect_in "$tmp/err" "sgd, adam, adamw" "bad enum"
expect_status 2 "bad size" "$bin" run --set mem_budget=12XB
expect_in "$tmp/err" "mem_budget" "bad size"
expect_status 2 "shuffle=false with dp" "$bin" run --set dp=true \
  --set epsilon=3 --set shuffle=false
expect_in "$tmp/err" "shuffle = false" "shuffle=false with dp"

printf 'epochs: 2\nlr: [0.1\n' >"$tmp/bad.yaml"
expect_status 2 "malformed YAML" "$bin" run "$tmp/bad.yaml"
expect_in "$tmp/err" "$tmp/bad.yaml:2:" "malformed YAML"
expect_status 2 "missing file" "$bin" run "$tmp/none.yaml"
expect_in "$tmp/err" "$tmp/none.yaml" "missing file"

# ---- --print-config: every key, readable back, --set wins over the file ------
expect_status 0 "--print-config" "$bin" run --print-config
cp "$tmp/out" "$tmp/defaults.yaml"
for key in $("$bin" config --markdown | sed -n 's/^| `\([a-z0-9_]*\)` |.*/\1/p'); do
  grep -q "^$key: " "$tmp/defaults.yaml" || fail "--print-config lacks $key"
done
expect_in "$tmp/defaults.yaml" "workload: \"fmnist-mlp\"" "--print-config"
printf 'epochs: 4\nbatch_size: 16\n' >"$tmp/exp.yaml"
expect_status 0 "file + --set" "$bin" run "$tmp/exp.yaml" --set epochs=7 \
  --print-config
expect_in "$tmp/out" "epochs: 7  # from --set" "--set wins over the file"
expect_in "$tmp/out" "batch_size: 16  # from $tmp/exp.yaml" "file value"
cp "$tmp/out" "$tmp/printed.yaml"
expect_status 0 "printed config read back" "$bin" run "$tmp/printed.yaml" \
  --print-config
sed 's/  # from .*//' "$tmp/printed.yaml" >"$tmp/a"
sed 's/  # from .*//' "$tmp/out" >"$tmp/b"
cmp -s "$tmp/a" "$tmp/b" || fail "--print-config output does not read back"

# ---- docs/configuration.md holds the table the code generates ----------------
doc="$src/docs/configuration.md"
if [ -r "$doc" ]; then
  sed -n '/<!-- keys:begin -->/,/<!-- keys:end -->/p' "$doc" |
    sed '1d;$d' >"$tmp/doc_table"
  "$bin" config --markdown >"$tmp/gen_table"
  if ! cmp -s "$tmp/doc_table" "$tmp/gen_table"; then
    fail "docs/configuration.md is out of date; regenerate the table" \
         "between the keys markers with: ondev config --markdown"
    diff "$tmp/doc_table" "$tmp/gen_table" | head -20 >&2
  fi
else
  fail "docs/configuration.md is missing"
fi

# ---- Workload and data errors ---------------------------------------------------
expect_status 2 "unknown workload" "$bin" run --set workload=fmnist-mpl
expect_in "$tmp/err" "fmnist-mpl" "unknown workload"
expect_in "$tmp/err" "fmnist-mlp" "unknown workload lists the valid ones"
expect_status 2 "missing data_dir" "$bin" run --set data_dir="$tmp/nodata"
expect_in "$tmp/err" "apt-get install" "missing data_dir"
expect_in "$tmp/err" "$tmp/nodata" "missing data_dir"

if [ "$have_data" -eq 1 ]; then
  # ---- A small run with --json ------------------------------------------------
  small=(--set train_subset=300 --set test_subset=100 --set batch_size=64
         --set epochs=2)
  expect_status 0 "run --json" "$bin" run --json "${small[@]}"
  $py - "$tmp/out" <<'PY' || fail "run --json: bad summary"
import json, math, sys
d = json.load(open(sys.argv[1]))
need = ["workload", "epochs", "samples", "steps", "batch_size", "threads",
        "seed", "isa", "host_time_s", "samples_per_s", "test_accuracy",
        "test_loss", "train_loss", "epoch_test_accuracy", "epoch_train_loss",
        "epoch_host_time_s", "peak_mem_bytes", "peak_mem_by_kind",
        "mem_budget_bytes", "param_count", "flops_total", "cost_by_kind",
        "cpus", "bound"]
missing = [k for k in need if k not in d]
assert not missing, "missing keys: %s" % missing
assert d["workload"] == "fmnist-mlp" and d["epochs"] == 2
assert d["steps"] == 2 * 5, d["steps"]          # 300 / 64 -> 5 steps
assert d["samples"] == 600, d["samples"]
assert len(d["epoch_train_loss"]) == 2 and len(d["epoch_test_accuracy"]) == 2
assert 0.0 <= d["test_accuracy"] <= 1.0
assert 0 < d["train_loss"] < 5 and math.isfinite(d["test_loss"])
assert d["param_count"] == 269322
kinds = d["peak_mem_by_kind"]
assert set(kinds) == {"parameters", "gradients", "optimizer", "activations",
                      "scratch"}, kinds
assert kinds["parameters"] >= 4 * 269322
assert d["peak_mem_bytes"] <= sum(kinds.values())
assert d["flops_total"] > 0 and d["cost_by_kind"]["gemm"]["flops"] > 0
assert abs(sum(v["flops"] for v in d["cost_by_kind"].values())
           - d["flops_total"]) <= 1e-9 * d["flops_total"]
assert d["host_time_s"] > 0 and d["samples_per_s"] > 0
assert d["threads"] == 1 and d["interrupted"] is False
assert len(d["cpus"]) == (1 if d["bound"] else 0)
PY
  # Human text went to stderr, only JSON to stdout.
  expect_in "$tmp/err" "test accuracy" "run --json: text on stderr"

  # -q: nothing on stderr for a run that succeeds.
  expect_status 0 "run -q" "$bin" run -q --json "${small[@]}"
  [ -s "$tmp/err" ] && fail "run -q wrote to stderr: $(head -3 "$tmp/err")"

  # A budget too small for the model, or for one step, is refused before
  # training with the bytes needed and available and what to change.
  expect_status 2 "small mem_budget" "$bin" run "${small[@]}" \
    --set mem_budget=100KiB
  expect_in "$tmp/err" "needed" "small mem_budget"
  expect_in "$tmp/err" "available" "small mem_budget"
  expect_in "$tmp/err" "Raise mem_budget" "small mem_budget hint"
  expect_status 2 "mem_budget for a step" "$bin" run "${small[@]}" \
    --set mem_budget=3MiB --set batch_size=4096
  expect_in "$tmp/err" "one training step" "mem_budget for a step"
  expect_in "$tmp/err" "smaller batch_size" "mem_budget for a step hint"

  # ---- Same start: epochs=0 saves the initial model, shuffle=false --------
  # The seed sets only the initialisation and the order, so two runs from
  # one saved initial model in stored order must agree to the last bit
  # whatever their seeds; shuffled runs with different seeds must not.
  tiny=(--set train_subset=256 --set test_subset=100)
  expect_status 0 "epochs=0" "$bin" run -q --json --out "$tmp/init.h5" \
    "${tiny[@]}" --set epochs=0 --set seed=5 --set checkpoint="$tmp/init.bin"
  cp "$tmp/out" "$tmp/init.json"
  [ -s "$tmp/init.bin" ] || fail "epochs=0: no checkpoint written"
  expect_status 0 "resume init, epochs=0" "$bin" run -q --json \
    --out "$tmp/init2.h5" "${tiny[@]}" --set epochs=0 --set seed=9 \
    --set resume="$tmp/init.bin"
  cp "$tmp/out" "$tmp/init2.json"
  for run in a:1:false b:2:false c:1:true d:2:true; do
    IFS=: read -r tag seed shuf <<<"$run"
    expect_status 0 "same start $tag" "$bin" run -q --json \
      --out "$tmp/same_$tag.h5" "${tiny[@]}" --set epochs=2 \
      --set seed="$seed" --set shuffle="$shuf" --set resume="$tmp/init.bin"
    cp "$tmp/out" "$tmp/same_$tag.json"
  done
  $py - "$tmp" <<'PY' || fail "same start: runs do not agree as they should"
import json, sys
d = {k: json.load(open(f"{sys.argv[1]}/{k}.json"))
     for k in ("init", "init2", "same_a", "same_b", "same_c", "same_d")}
i = d["init"]
assert i["epochs_done"] == 0 and i["steps"] == 0 and i["samples"] == 0, i
assert 0 < i["test_loss"] < 10 and 0 <= i["test_accuracy"] <= 1, i
# Loaded under another seed, the saved model evaluates the same.
assert d["init2"]["test_loss"] == i["test_loss"], (d["init2"], i)
a, b, c, e = (d[k]["epoch_train_loss"] for k in
              ("same_a", "same_b", "same_c", "same_d"))
assert len(a) == 2 and a == b, (a, b)
assert d["same_a"]["test_loss"] == d["same_b"]["test_loss"]
assert c != e, (c, e)                       # the shuffles did differ
assert a != c, (a, c)                       # and stored order is not one
PY

  # ---- SIGINT: stop after the current step, report, exit 130 ---------------
  "$bin" run --json --set train_subset=256 --set test_subset=64 \
    --set epochs=100000 --set checkpoint="$tmp/ck.bin" \
    >"$tmp/int_out" 2>"$tmp/int_err" &
  pid=$!
  for _ in $(seq 1 300); do
    grep -q "epoch 3/" "$tmp/int_err" 2>/dev/null && break
    sleep 0.1
  done
  kill -INT "$pid"
  wait "$pid"
  status=$?
  [ "$status" -eq 130 ] || fail "SIGINT: exit status $status, expected 130"
  expect_in "$tmp/int_err" "stopped on request" "SIGINT"
  $py -c 'import json,sys; d=json.load(open(sys.argv[1]));
assert d["interrupted"] is True and d["steps"] > 0, d' "$tmp/int_out" ||
    fail "SIGINT: no complete JSON summary"
  [ -e "$tmp/ck.bin" ] && fail "SIGINT: a checkpoint was written"
  ls "$tmp" | grep -q "ck.bin." && fail "SIGINT: a temporary file was left"
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all command-line checks passed"
