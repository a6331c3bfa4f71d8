#!/usr/bin/python3
"""Summary of a bench/run output folder: ondev beside OpenBLAS and PyTorch.

Reads the JSON files bench/run writes (machine.json, gemm_ondev_<core>.json
from bench_gemm, gemm_torch.json, train_ondev_<model>_t<N>.json,
train_torch_<model>_t<N>.json, seeds_<tool>_<model>_s<seed>.json,
same_ondev_<model>_t<N>[_init|_step0].json, same_torch_<model>_t<N>.json)
and prints these tables:

  GEMM       ondev GFLOP/s beside the best OpenBLAS kernel set and PyTorch's
             best, with ratios and bench_gemm's percent of peak
  training   samples/s of ondev and of PyTorch's best configuration, ratio
  accuracy   test accuracy after each epoch, side by side (random start)
  seeds      one epoch's test accuracy over several random starts of each
             tool: mean, spread, and the difference of the means with its
             standard error
  same start both tools from ondev's initial parameters without shuffling:
             the loss at step 0, then test accuracy and training loss after
             each epoch, side by side
  recipe     test accuracy after each epoch of both tools trained with
             momentum and a cosine schedule (recipe_<tool>_<model>_t2.json)

Parts that did not run are left out with a note. Usage:
    /usr/bin/python3 bench/compare.py bench/out [--json summary.json]
"""

import argparse
import glob
import json
import math
import os
import re
import statistics
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
                     f" between its repeats of each product (ISA {isa});"
                     f" at the start of the run: " + ", ".join(
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


def train_summary(out_dir, prefix="train"):
    """Speed and per-epoch accuracy of the PREFIX_<tool>_<model>_t<N> runs."""
    speed_rows, acc_rows, records = [], [], []
    pattern = os.path.join(out_dir, prefix + "_*_t*.json")
    runs = {}
    for path in glob.glob(pattern):
        m = re.match(prefix + r"_(ondev|torch)_(.+)_t(\d+)\.json$",
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


# ---- Random starts ----------------------------------------------------------

def seeds_summary(out_dir):
    """One epoch's test accuracy of each tool over seeds 1..N, in percent."""
    acc = {}
    for path in glob.glob(os.path.join(out_dir, "seeds_*_s*.json")):
        m = re.match(r"seeds_(ondev|torch)_(.+)_s(\d+)\.json$",
                     os.path.basename(path))
        doc = load(path) if m else None
        if doc and doc.get("test_accuracy") is not None:
            acc.setdefault(m.group(2), {}).setdefault(m.group(1), {})[
                int(m.group(3))] = 100.0 * doc["test_accuracy"]
    rows, records = [], []
    for model in sorted(acc):
        od = acc[model].get("ondev", {})
        tc = acc[model].get("torch", {})
        if len(od) < 2 or len(tc) < 2:
            continue
        m_od, sd_od = statistics.mean(od.values()), statistics.stdev(
            od.values())
        m_tc, sd_tc = statistics.mean(tc.values()), statistics.stdev(
            tc.values())
        diff = m_od - m_tc
        se = math.sqrt(sd_od ** 2 / len(od) + sd_tc ** 2 / len(tc))
        records.append(dict(model=model, ondev=od, torch=tc,
                            ondev_mean=m_od, ondev_sd=sd_od, torch_mean=m_tc,
                            torch_sd=sd_tc, diff=diff, diff_se=se))
        rows.append([model, f"{len(od)}/{len(tc)}", f"{m_od:.2f}",
                     f"{sd_od:.2f}", f"{min(od.values()):.2f}-"
                     f"{max(od.values()):.2f}", f"{m_tc:.2f}", f"{sd_tc:.2f}",
                     f"{min(tc.values()):.2f}-{max(tc.values()):.2f}",
                     f"{diff:+.2f}", f"{se:.2f}"])
    text = table(["model", "seeds", "ondev %", "sd", "range", "PyTorch %",
                  "sd", "range", "diff", "se"], rows) if rows else ""
    return text, records


# ---- Same start -------------------------------------------------------------

STEP0_TOLERANCE = 1e-5   # |ondev - PyTorch| of a loss at step 0


def same_summary(out_dir):
    """Step-0 agreement and per-epoch figures of the same-start runs."""
    runs = {}
    for path in glob.glob(os.path.join(out_dir, "same_*_t*.json")):
        m = re.match(r"same_(ondev|torch)_(.+)_t(\d+)(_init|_step0)?\.json$",
                     os.path.basename(path))
        if m:
            key = (m.group(2), int(m.group(3)))
            runs.setdefault(key, {})[m.group(1) + (m.group(4) or "")] = path
    step0_rows, epoch_rows, records = [], [], []
    worst = 0.0
    for (model, threads) in sorted(runs):
        docs = {k: load(p) or {} for k, p in runs[(model, threads)].items()}
        od, tc = docs.get("ondev", {}), docs.get("torch", {})
        od_init, od_step0 = docs.get("ondev_init", {}), docs.get(
            "ondev_step0", {})
        # Step 0: the initial model over the test set (ondev's epochs=0 run
        # evaluates it), and the first training batch (ondev's one-batch
        # run trains on it once: its training loss is that batch's).
        first_od = od_step0.get("train_loss")
        first_tc = tc.get("first_step_loss")
        init_od = od_init.get("test_loss")
        init_tc = tc.get("init_test_loss")
        d_first = None if first_od is None or first_tc is None \
            else abs(first_od - first_tc)
        d_init = None if init_od is None or init_tc is None \
            else abs(init_od - init_tc)
        for d in (d_first, d_init):
            if d is not None:
                worst = max(worst, d)
        acc_od = od.get("epoch_test_accuracy") or []
        acc_tc = tc.get("epoch_test_accuracy") or []
        loss_od = od.get("epoch_train_loss") or []
        loss_tc = tc.get("epoch_train_loss") or []
        records.append(dict(
            model=model, threads=threads,
            ondev_first_step_loss=first_od, torch_first_step_loss=first_tc,
            ondev_init_test_loss=init_od, torch_init_test_loss=init_tc,
            ondev_init_test_accuracy=od_init.get("test_accuracy"),
            torch_init_test_accuracy=tc.get("init_test_accuracy"),
            ondev_epoch_test_accuracy=acc_od, torch_epoch_test_accuracy=acc_tc,
            ondev_epoch_train_loss=loss_od, torch_epoch_train_loss=loss_tc,
            ondev_host_time_s=od.get("host_time_s"),
            torch_train_time_s=tc.get("train_time_s")))
        step0_rows.append([model, threads,
                           fmt(first_od, ".7f", 10), fmt(first_tc, ".7f", 10),
                           fmt(d_first, ".1e", 7),
                           fmt(init_od, ".7f", 10), fmt(init_tc, ".7f", 10),
                           fmt(d_init, ".1e", 7)])
        for e in range(max(len(acc_od), len(acc_tc), len(loss_od),
                           len(loss_tc))):
            def at(xs):
                return xs[e] if e < len(xs) else None
            a, b = at(acc_od), at(acc_tc)
            la, lb = at(loss_od), at(loss_tc)
            epoch_rows.append([
                model, threads, e + 1,
                fmt(None if a is None else 100 * a, ".2f"),
                fmt(None if b is None else 100 * b, ".2f"),
                fmt(None if a is None or b is None else 100 * (a - b),
                    "+.2f", 6),
                fmt(la, ".4f"), fmt(lb, ".4f"),
                fmt(None if la is None or lb is None else la - lb,
                    "+.4f")])
    if not records:
        return "", records
    text = ("Loss at step 0, from the same initial parameters: the first "
            "training batch, and the\ninitial model over the test set\n")
    text += table(["model", "thr", "batch ondev", "PyTorch", "|diff|",
                   "test ondev", "PyTorch", "|diff|"], step0_rows)
    text += (f"\nlargest step-0 difference {worst:.1e}: "
             + ("within" if worst <= STEP0_TOLERANCE else "OUTSIDE")
             + f" {STEP0_TOLERANCE:g}"
             + ("" if worst <= STEP0_TOLERANCE else
                " (the models or the parameter mapping differ)"))
    if epoch_rows:
        text += ("\n\nAfter each epoch: test accuracy (%) and mean training "
                 "loss over the epoch\n")
        text += table(["model", "thr", "epoch", "ondev %", "PyTorch %",
                       "diff", "loss ondev", "PyTorch", "diff"], epoch_rows)
    return text, records


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
    seeds_text, seeds_records = seeds_summary(args.out_dir)
    same_text, same_records = same_summary(args.out_dir)
    _, recipe_text, recipe_records = train_summary(args.out_dir, "recipe")

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
    print("Test accuracy after each epoch (random start: each tool's own "
          "initialisation and shuffles)")
    print(acc_text or "  (no training results)")
    print()
    if seeds_text:
        print("One epoch over several random starts (batch 64, SGD lr 0.05, "
              "1 thread): test accuracy,\nmean and sd over the seeds; diff = "
              "ondev mean - PyTorch mean, se its standard error")
        print(seeds_text)
        print()
    print("Same start: ondev's initial parameters in both tools, training "
          "images in stored order\n(batch 64, SGD lr 0.05; diff = ondev - "
          "PyTorch)")
    print(same_text or "  (no same-start results)")
    if recipe_text:
        print()
        print("Recipe: SGD momentum 0.9, lr 0.02 on a per-step cosine to 0, "
              "batch 64; test accuracy\nafter each epoch (each tool's own "
              "initialisation and shuffles)")
        print(recipe_text)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=machine, gemm=gemm_records,
                           training=train_records, seeds=seeds_records,
                           same_start=same_records,
                           recipe=recipe_records),
                      f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
