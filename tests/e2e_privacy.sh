#!/usr/bin/env bash
# End-to-end test of `ondev privacy`: published ε values through the
# command with --json, the σ round trip, the shuffle label and warning, and
# the refusal of bad flags (exit 2, flag named on stderr).
set -u

bin=${ONDEV_BIN:?ONDEV_BIN must point at the ondev binary}
py=/usr/bin/python3
fails=0
passes=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# field FILE KEY: print one field of a JSON object.
field() {
    "$py" -c 'import json, sys
print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

# near GOT WANT TOL: |got - want| <= tol.
near() {
    "$py" -c 'import sys
g, w, t = map(float, sys.argv[1:4])
sys.exit(0 if abs(g - w) <= t else 1)' "$1" "$2" "$3"
}

# check PYTHON-EXPR ARGS...: exit status of a boolean over float(argv[i]).
check() {
    local expr=$1
    shift
    "$py" -c "import sys
a = [float(x) for x in sys.argv[1:]]
sys.exit(0 if ($expr) else 1)" "$@"
}

# Opacus tests/accountants_test.py: q = 0.04, σ = 1.5, 2250 steps,
# δ = 1e-5, Opacus's orders, improved conversion: 7.32911117143.
if "$bin" privacy epsilon --sampling-rate 0.04 --noise-multiplier 1.5 \
        --steps 2250 --delta 1e-5 --orders opacus --json >"$tmp/o.json"; then
    eps=$(field "$tmp/o.json" epsilon)
    near "$eps" 7.32911117143 1e-8 && ok || bad "opacus epsilon $eps"
    [ "$(field "$tmp/o.json" accountant)" = rdp ] && ok || bad "accountant"
    [ "$(field "$tmp/o.json" conversion)" = improved ] && ok || bad "conversion"
    near "$(field "$tmp/o.json" delta)" 1e-5 1e-12 && ok || bad "delta"
    near "$(field "$tmp/o.json" order)" 3.9 1e-12 && ok || bad "order"
else
    bad "opacus case exited $?"
fi

# TF Privacy tutorial: N = 60000, batch 256, σ = 1.1, 60 epochs (14062
# steps), δ = 1e-5, classic conversion: ε = 3.01.
if "$bin" privacy epsilon --sampling-rate 0.004266666666666667 \
        --noise-multiplier 1.1 --steps 14062 --delta 1e-5 --orders opacus \
        --conversion classic --json >"$tmp/t.json"; then
    eps=$(field "$tmp/t.json" epsilon)
    near "$eps" 3.01 0.005 && ok || bad "tf privacy tutorial epsilon $eps"
    [ "$(field "$tmp/t.json" conversion)" = classic ] && ok || bad "classic"
else
    bad "tutorial case exited $?"
fi

# PLD: TF Privacy's example-privacy test (dp_accounting PLD 2.4612381);
# the upper bound is reported and is at least the estimate.
if "$bin" privacy epsilon --sampling-rate 0.01 --noise-multiplier 0.7 \
        --steps 120 --delta 1e-5 --accountant pld --json >"$tmp/p.json"; then
    up=$(field "$tmp/p.json" epsilon_upper)
    est=$(field "$tmp/p.json" epsilon_estimate)
    near "$up" 2.4612381 1e-3 && ok || bad "pld upper $up"
    check 'a[0] >= a[1]' "$up" "$est" && ok \
        || bad "pld upper $up < estimate $est"
    [ "$(field "$tmp/p.json" epsilon)" = "$up" ] && ok || bad "pld epsilon"
else
    bad "pld case exited $?"
fi

# σ for a target ε, then ε for that σ.
if "$bin" privacy sigma --epsilon 2 --sampling-rate 0.01 --steps 1000 \
        --delta 1e-5 --json >"$tmp/s.json"; then
    sigma=$(field "$tmp/s.json" noise_multiplier)
    "$bin" privacy epsilon --sampling-rate 0.01 --noise-multiplier "$sigma" \
        --steps 1000 --delta 1e-5 --json >"$tmp/s2.json" || bad "round trip"
    eps=$(field "$tmp/s2.json" epsilon)
    check 'a[0] <= 2 and a[0] > 2 - 1e-4' "$eps" && ok \
        || bad "round trip epsilon $eps for sigma $sigma"
else
    bad "sigma exited $?"
fi

# Shuffled batches: labelled in JSON and warned about on stderr.
if "$bin" privacy epsilon --sampling-rate 0.01 --noise-multiplier 1 \
        --steps 100 --delta 1e-5 --sampling shuffle --json \
        >"$tmp/sh.json" 2>"$tmp/sh.err"; then
    [ "$(field "$tmp/sh.json" sampling)" = shuffle ] && ok || bad "sampling"
    [ "$(field "$tmp/sh.json" assumption)" = poisson-approximation ] && ok \
        || bad "assumption"
    grep -q "APPROXIMATION" "$tmp/sh.err" && ok || bad "no shuffle warning"
else
    bad "shuffle case exited $?"
fi

# Bad values: exit 2 and the flag named on stderr.
refuse() {
    local flag=$1
    shift
    "$bin" privacy "$@" >"$tmp/r.out" 2>"$tmp/r.err"
    local rc=$?
    if [ "$rc" -ne 2 ]; then
        bad "privacy $* exited $rc, want 2"
    elif ! grep -q -- "$flag" "$tmp/r.err"; then
        bad "privacy $*: stderr does not name $flag"
    else
        ok
    fi
}
base=(--noise-multiplier 1 --steps 10 --delta 1e-5)
refuse --sampling-rate epsilon --sampling-rate 0 "${base[@]}"
refuse --sampling-rate epsilon --sampling-rate 1.5 "${base[@]}"
refuse --sampling-rate epsilon --sampling-rate abc "${base[@]}"
refuse --noise-multiplier epsilon --sampling-rate 0.1 --noise-multiplier 0 \
    --steps 10 --delta 1e-5
refuse --noise-multiplier epsilon --sampling-rate 0.1 --noise-multiplier -1 \
    --steps 10 --delta 1e-5
refuse --delta epsilon --sampling-rate 0.1 --noise-multiplier 1 --steps 10 \
    --delta 1
refuse --delta epsilon --sampling-rate 0.1 --noise-multiplier 1 --steps 10 \
    --delta 0
refuse --steps epsilon --sampling-rate 0.1 --noise-multiplier 1 --steps 0 \
    --delta 1e-5
refuse --steps epsilon --sampling-rate 0.1 --noise-multiplier 1 --steps 2.5 \
    --delta 1e-5
refuse --accountant epsilon --sampling-rate 0.1 "${base[@]}" --accountant gdp
refuse --conversion epsilon --sampling-rate 0.1 "${base[@]}" --conversion x
refuse --epsilon sigma --epsilon 0 --sampling-rate 0.1 --steps 10 \
    --delta 1e-5
refuse --delta epsilon --sampling-rate 0.1 --noise-multiplier 1 --steps 10

# --help succeeds and documents the flags.
if "$bin" privacy --help >"$tmp/h.out"; then
    grep -q -- "--noise-multiplier" "$tmp/h.out" && ok || bad "help text"
else
    bad "--help exited $?"
fi

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
