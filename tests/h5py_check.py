#!/usr/bin/python3
"""Open a results file written by `ondev run` with h5py alone and check its
layout against docs/results-format.md: names, shapes, units, the complete
marker, and the CSV and JSON summaries beside it.

usage: /usr/bin/python3 tests/h5py_check.py RUN.h5
Exit status 0 when every check passes; each failure is printed.
"""
import csv
import json
import math
import os
import sys

import h5py
import numpy as np

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def main(path):
    f = h5py.File(path, "r")

    # Root: format, version, kind and the complete marker.
    check(text(f.attrs.get("format", "")) == "ondev-results", "root format")
    check(int(f.attrs.get("format_version", 0)) == 1, "root format_version")
    check(text(f.attrs.get("kind", "")) == "run", "root kind")
    check(int(f.attrs.get("complete", 0)) == 1, "root complete marker")

    # Configuration: the text and one string attribute per key.
    cfg = f["config"].attrs
    check("workload: " in text(cfg.get("text", "")), "config/text")
    for key in ("workload", "seed", "epochs", "batch_size", "lr"):
        check(key in cfg, "config attribute %s" % key)
    check(text(cfg.get("seed", "")) == "7", "config seed as given (7)")

    # Version, build and host.
    for key in ("version", "git_describe", "compiler", "isa"):
        check(key in f["build"].attrs, "build/%s" % key)
    check("cpu_model" in f["host"].attrs, "host cpu_model")
    check("hardware_counters" in f["host"].attrs, "host hardware_counters")
    for key, units in (("cores", "1"), ("pus", "1"), ("l2_bytes", "B")):
        d = f["host"].get(key)
        check(d is not None and d.shape == (), "host/%s scalar" % key)
        if d is not None:
            check(text(d.attrs.get("units")) == units,
                  "host/%s units %s" % (key, units))

    # Summary: scalars with the units docs/results-format.md gives.
    s = f["summary"]
    want = {
        "test_accuracy": "1", "test_loss": "nat", "train_loss": "nat",
        "host_time_s": "s", "samples_per_s": "1/s", "steps": "1",
        "samples": "1", "epochs_done": "1", "peak_mem_bytes": "B",
        "flops_total": "FLOP", "flops_gemm": "FLOP", "bytes_gemm": "B",
        "param_count": "1", "seed": "1", "interrupted": "1",
    }
    for key, units in want.items():
        d = s.get(key)
        check(d is not None, "summary/%s present" % key)
        if d is None:
            continue
        check(d.shape == (), "summary/%s is a scalar" % key)
        check(text(d.attrs.get("units", "")) == units,
              "summary/%s units '%s', want '%s'"
              % (key, text(d.attrs.get("units", "")), units))
    check(text(s.attrs.get("workload", "")) == "fmnist-mlp",
          "summary workload")
    acc = float(s["test_accuracy"][()])
    check(0.0 <= acc <= 1.0, "test_accuracy in [0, 1]")
    steps = int(s["steps"][()])
    epochs = int(s["epochs_done"][()])
    check(steps > 0 and epochs == 2, "steps > 0 and two epochs done")
    check(int(s["interrupted"][()]) == 0, "not interrupted")

    # Every numeric dataset anywhere carries units.
    def units_everywhere(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "fiu":
            check("units" in obj.attrs, "%s has units" % name)
    f.visititems(units_everywhere)

    # Per-step trace: one row per step and per evaluation, 1-D columns of
    # one length; columns that never applied are absent.
    t = f["traces/steps"]
    cols = list(t.keys())
    for key, units in (("step", "1"), ("host_time_s", "s"), ("loss", "nat"),
                       ("accuracy", "1")):
        check(key in t, "traces/steps/%s present" % key)
        if key in t:
            check(text(t[key].attrs.get("units")) == units,
                  "traces/steps/%s units" % key)
    check("energy_j" not in t, "traces/steps/energy_j absent (no device)")
    n = steps + epochs
    for key in cols:
        check(t[key].shape == (n,), "traces/steps/%s shape %s, want (%d,)"
              % (key, t[key].shape, n))
    step = t["step"][:]
    loss = t["loss"][:]
    acc_col = t["accuracy"][:]
    check(np.all(np.diff(step) >= 0), "steps never go back")
    check(int(np.isfinite(loss).sum()) == steps, "a loss per step")
    evals = acc_col[np.isfinite(acc_col)]
    check(len(evals) == epochs, "an accuracy per epoch")
    check(math.isclose(evals[-1], acc, rel_tol=0, abs_tol=1e-12),
          "last evaluation is the summary's accuracy")
    host = t["host_time_s"][:]
    check(np.all(np.diff(host) >= 0), "host time never goes back")

    # Per-epoch table.
    e = f["traces/epochs"]
    for key in ("epoch", "train_loss", "test_accuracy", "test_loss",
                "host_time_s"):
        check(key in e and e[key].shape == (epochs,),
              "traces/epochs/%s shape" % key)

    # pandas, when installed, reads a trace in one line.
    try:
        import pandas as pd
        df = pd.DataFrame({k: t[k][:] for k in t})
        check(len(df) == n, "pandas frame of traces/steps")
    except ImportError:
        pass

    # The CSV and JSON twins agree with the file.
    stem = path[:-3] if path.endswith(".h5") else path
    with open(stem + ".json") as jf:
        j = json.load(jf)
    check(j["units"].get("energy_j") is None, "json: no energy_j")
    check(j["units"]["test_accuracy"] == "1", "json units")
    run = j["runs"][0]
    check(run["test_accuracy"] == acc, "json test_accuracy")
    check(run["workload"] == "fmnist-mlp", "json workload")
    with open(stem + ".csv") as cf:
        rows = list(csv.reader(cf))
    check(len(rows) == 2, "csv: header and one row")
    header = rows[0]
    check("host_time_s [s]" in header, "csv header with units")
    check(float(rows[1][header.index("test_accuracy")]) == acc,
          "csv test_accuracy")
    f.close()


if __name__ == "__main__":
    if len(sys.argv) != 2 or not os.path.exists(sys.argv[1]):
        sys.exit(__doc__)
    main(sys.argv[1])
    for msg in failures:
        print("FAIL: h5py_check: %s" % msg, file=sys.stderr)
    if not failures:
        print("h5py_check: %s ok" % sys.argv[1])
    sys.exit(1 if failures else 0)
