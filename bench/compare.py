#!/usr/bin/python3
"""Summary of a bench/run output folder: ondev beside OpenBLAS and PyTorch.

Reads the JSON files bench/run writes (machine.json, gemm_ondev_<core>.json
from bench_gemm, gemm_torch.json, train_ondev_<model>_t<N>.json,
train_torch_<model>_t<N>.json) and prints three tables:

  GEMM       ondev GFLOP/s beside the best OpenBLAS kernel set and PyTorch's
             best, with ratios and bench_gemm's percent of peak
  training   samples/s of ondev and of PyTorch's best configuration, ratio
  accuracy   test accuracy after each epoch, side by side

Parts that did not run are left out with a note. Usage:
    /usr/bin/python3 bench/compare.py bench/out [--json summary.json]
"""

import argparse
import glob
import json
import math
import os
import re
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"compare: skipping {path}: {e}", file=sys.stderr)
        return None


def fmt(x, spec=".1f", width=8):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-".rjust(width)
    return format(x, spec).rjust(width)


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return a / b


def table(header, rows):
    """Plain text table; the first column left-aligned, the rest right."""
    cols = [header] + rows
    widths = [max(len(str(r[i])) for r in cols) for i in range(len(header))]
    lines = []
    for j, r in enumerate(cols):
        cells = [str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i])
                 for i, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---- GEMM -------------------------------------------------------------------

def first(d, *names):
    """The first of the keys present in d (None when none is)."""
    for n in names:
        if n in d and d[n] is not None:
            return d[n]
    return None


def gemm_rows(doc):
    """bench_gemm's records, whatever the container's key."""
    if isinstance(doc, list):
        return doc
    for key in ("results", "rows", "shapes", "records"):
        if isinstance(doc.get(key), list):
            return doc[key]
    return []


def shape_key(r):
    return (int(r["m"]), int(r["n"]), int(r["k"]),
            int(first(r, "trans_a", "ta") or 0),
            int(first(r, "trans_b", "tb") or 0),
            int(first(r, "threads", "nthreads") or 1))


def gemm_summary(out_dir):
    """Join bench_gemm (each OpenBLAS kernel set) and PyTorch per shape."""
    ondev, blas, peak, names, cores = {}, {}, {}, {}, {}
    fma_peak, isa = {}, None
    for path in sorted(glob.glob(os.path.join(out_dir, "gemm_ondev_*.json"))):
        coretype = re.sub(r"^gemm_ondev_|\.json$", "", os.path.basename(path))
        doc = load(path)
        if doc is None:
            continue
        core = first(doc, "openblas_core", "openblas_corename") \
            if isinstance(doc, dict) else None
        cores[coretype] = core
        if isinstance(doc, dict):
            isa = doc.get("isa", isa)
            for t, g in (doc.get("peak_gflops") or {}).items():
                fma_peak[int(t)] = max(fma_peak.get(int(t), 0.0), g)
        for r in gemm_rows(doc):
            key = shape_key(r)
            names.setdefault(key, first(r, "name", "shape") or "")
            g_ondev = first(r, "ondev_gflops", "gflops_ondev")
            g_blas = first(r, "openblas_gflops", "gflops_openblas")
            pct = first(r, "ondev_peak_pct", "peak_pct", "percent_of_peak",
                        "ondev_pct_peak")
            # ondev does not depend on OPENBLAS_CORETYPE: keep its best.
            if g_ondev is not None and g_ondev > ondev.get(key, -1):
                ondev[key] = g_ondev
                peak[key] = pct
            if g_blas is not None and g_blas > blas.get(key, (-1, ""))[0]:
                blas[key] = (g_blas, f"{coretype}:{core}")

    torch_doc = load(os.path.join(out_dir, "gemm_torch.json")) \
        if os.path.exists(os.path.join(out_dir, "gemm_torch.json")) else None
    torch_best = {}
    if torch_doc:
        for r in torch_doc.get("best", []):
            key = shape_key(r)
            names.setdefault(key, r.get("name", ""))
            torch_best[key] = (r["gflops"], r["op"])

    rows, records = [], []
    # Thread count first, then the order the shapes were first listed in.
    order = {key: i for i, key in enumerate(names)}
    for key in sorted(names, key=lambda k: (k[5], order[k])):
        m, n, k, ta, tb, threads = key
        g_ondev = ondev.get(key)
        g_blas, blas_cfg = blas.get(key, (None, ""))
        g_torch, torch_op = torch_best.get(key, (None, ""))
        rec = dict(name=names[key], m=m, n=n, k=k, trans_a=ta, trans_b=tb,
                   threads=threads, ondev_gflops=g_ondev,
                   openblas_best_gflops=g_blas, openblas_best_config=blas_cfg,
                   torch_best_gflops=g_torch, torch_best_op=torch_op,
                   ondev_over_openblas=ratio(g_ondev, g_blas),
                   ondev_over_torch=ratio(g_ondev, g_torch),
                   ondev_peak_pct=peak.get(key))
        records.append(rec)
        rows.append([names[key] or f"{m}x{n}x{k}", threads,
                     fmt(g_ondev), fmt(g_blas),
                     fmt(rec["ondev_over_openblas"], ".2f", 5),
                     fmt(g_torch), fmt(rec["ondev_over_torch"], ".2f", 5),
                     fmt(rec["ondev_peak_pct"], ".0f", 4)])
    text = ""
    if rows:
        text = table(["shape (m x n x k)", "thr", "ondev", "OpenBLAS",
                      "ratio", "PyTorch", "ratio", "%peak"], rows)
        vals = [r["ondev_over_openblas"] for r in records
                if r["ondev_over_openblas"]]
        if vals:
            gm = math.exp(sum(math.log(v) for v in vals) / len(vals))
            text += (f"\ngeometric mean ondev/OpenBLAS-best: {gm:.2f} "
                     f"over {len(vals)} shapes")
        if fma_peak:
            text += (f"\n%peak: ondev against the FMA peak bench_gemm measured"
                     f" (ISA {isa}): " + ", ".join(
                         f"{g:.1f} GFLOP/s on {t} thread(s)"
                         for t, g in sorted(fma_peak.items())))
        if cores:
            text += "\nOpenBLAS kernel sets: " + ", ".join(
                f"OPENBLAS_CORETYPE {'unset' if ct == 'installed' else ct}"
                f" -> {c}" for ct, c in cores.items())
    return text, records


# ---- Training ---------------------------------------------------------------

def samples_per_s(doc):
    sps = doc.get("samples_per_s")
    if sps is None and doc.get("host_time_s"):
        sps = doc.get("samples", 0) / doc["host_time_s"]
    return sps


def train_summary(out_dir):
    speed_rows, acc_rows, records = [], [], []
    pattern = os.path.join(out_dir, "train_*_t*.json")
    runs = {}
    for path in glob.glob(pattern):
        m = re.match(r"train_(ondev|torch)_(.+)_t(\d+)\.json$",
                     os.path.basename(path))
        if m:
            key = (m.group(2), int(m.group(3)))
            runs.setdefault(key, {})[m.group(1)] = path
    for (model, threads) in sorted(runs):
        paths = runs[(model, threads)]
        od = load(paths["ondev"]) if "ondev" in paths else None
        tc = load(paths["torch"]) if "torch" in paths else None
        s_od = samples_per_s(od) if od else None
        s_tc = samples_per_s(tc) if tc else None
        acc_od = (od or {}).get("epoch_test_accuracy") or []
        acc_tc = (tc or {}).get("epoch_test_accuracy") or []
        rec = dict(model=model, threads=threads, ondev_samples_per_s=s_od,
                   torch_samples_per_s=s_tc,
                   torch_variant=(tc or {}).get("best_variant"),
                   ondev_over_torch=ratio(s_od, s_tc),
                   ondev_epoch_test_accuracy=acc_od,
                   torch_epoch_test_accuracy=acc_tc,
                   ondev_test_accuracy=(od or {}).get("test_accuracy"),
                   torch_test_accuracy=(tc or {}).get("test_accuracy"))
        records.append(rec)
        p_od, p_tc = (od or {}).get("param_count"), (tc or {}).get("param_count")
        if p_od and p_tc and p_od != p_tc:
            print(f"compare: WARNING: {model}: ondev has {p_od} parameters, "
                  f"PyTorch {p_tc}; the models differ", file=sys.stderr)
        speed_rows.append([model, threads, fmt(s_od, ".0f"), fmt(s_tc, ".0f"),
                           fmt(rec["ondev_over_torch"], ".2f", 5),
                           rec["torch_variant"] or "-"])
        for e in range(max(len(acc_od), len(acc_tc))):
            a = acc_od[e] if e < len(acc_od) else None
            b = acc_tc[e] if e < len(acc_tc) else None
            diff = None if a is None or b is None else 100 * (a - b)
            acc_rows.append([model, threads, e + 1,
                             fmt(None if a is None else 100 * a, ".2f"),
                             fmt(None if b is None else 100 * b, ".2f"),
                             fmt(diff, "+.2f")])
    speed = table(["model", "thr", "ondev", "PyTorch", "ratio",
                   "PyTorch best configuration"], speed_rows) \
        if speed_rows else ""
    acc = table(["model", "thr", "epoch", "ondev %", "PyTorch %", "diff"],
                acc_rows) if acc_rows else ""
    return speed, acc, records


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", nargs="?", default="bench/out")
    ap.add_argument("--json", help="also write the summary as JSON here")
    args = ap.parse_args()
    if not os.path.isdir(args.out_dir):
        print(f"compare: no folder {args.out_dir}; run bench/run first",
              file=sys.stderr)
        return 1

    machine = {}
    if os.path.exists(os.path.join(args.out_dir, "machine.json")):
        machine = load(os.path.join(args.out_dir, "machine.json")) or {}
    gemm_text, gemm_records = gemm_summary(args.out_dir)
    speed_text, acc_text, train_records = train_summary(args.out_dir)

    if machine:
        print(f"machine: {machine.get('cpu')}, {machine.get('cores')} cores, "
              f"load {machine.get('load_average', 0):.2f} at start; "
              f"PyTorch {machine.get('torch_version')}; "
              f"ondev {machine.get('ondev_git')}"
              + ("; QUICK run (subsets, not for quoting)"
                 if machine.get("quick") else ""))
        print()
    print("GEMM, GFLOP/s (single precision; best of repeats; ratio = ondev / "
          "other)")
    print(gemm_text or "  (no GEMM results)")
    print()
    print("Training, samples/s over the training loop (batch 64, SGD lr 0.05;"
          " ratio = ondev / PyTorch best)")
    print(speed_text or "  (no training results)")
    print()
    print("Test accuracy after each epoch")
    print(acc_text or "  (no training results)")

    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=machine, gemm=gemm_records,
                           training=train_records), f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
