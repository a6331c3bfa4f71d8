#!/usr/bin/python3
"""PyTorch side of the GEMM benchmark: GFLOP/s of torch.mm and F.linear
(single precision, CPU) at the shapes bench_gemm measures, so that ondev's
GEMM can be set beside what a PyTorch user gets. The backward-weight form
accumulates into the gradient (beta = 1, `addmm_`) as bench_gemm does;
F.linear always writes a fresh output.

Shapes (C (m, n) = op(A) (m, k) * op(B) (k, n)):
  square     m = n = k = 64, 128, 256, 512, 1024
  training   batch B = 64 and 256 through the layers 784->256, 256->256,
             1024->128, 256->10 of fmnist-mlp and fmnist-cnn, in three forms:
               forward          Y (B, out) = X (B, in) W^T   m=B,   n=out, k=in
               backward-data    dX (B, in) = dY (B, out) W   m=B,   n=in,  k=out
               backward-weight  dW (out, in) = dY^T X        m=out, n=in,  k=B

PyTorch runs single-precision matrix products on the CPU through OpenBLAS,
which picks its kernels from OPENBLAS_CORETYPE when it is loaded; so each
kernel set runs in its own process. Every (shape, op, threads) figure is the
best of several repeats, each long enough to swamp the clock's resolution.
"PyTorch best" is the best over ops and kernel sets.

Run with Debian's interpreter (/usr/bin/python3):
    /usr/bin/python3 bench/torch_gemm.py --threads 1,2 --json out.json
"""

import argparse
import ctypes
import json
import os
import subprocess
import sys
import time

from openblas_cores import coretypes

CORETYPES = coretypes()  # "" = as installed (OpenBLAS detects the CPU)
SQUARE = (64, 128, 256, 512, 1024)
BATCHES = (64, 256)
LAYERS = ((784, 256), (256, 256), (1024, 128), (256, 10))


def shapes(quick=False):
    """Every shape as a dict: name, form, m, n, k, trans_a, trans_b. Quick
    runs keep the squares up to 256 and batch 64, as bench_gemm does."""
    out = []
    for s in SQUARE:
        if quick and s > 256:
            continue
        out.append(dict(name=f"square{s}", form="square", m=s, n=s, k=s,
                        trans_a=0, trans_b=0))
    for b in BATCHES:
        if quick and b > 64:
            continue
        for fin, fout in LAYERS:
            layer = f"{fin}x{fout}/b{b}"
            out.append(dict(name=f"{layer}/forward", form="forward",
                            m=b, n=fout, k=fin, trans_a=0, trans_b=1))
            out.append(dict(name=f"{layer}/backward-data",
                            form="backward-data",
                            m=b, n=fin, k=fout, trans_a=0, trans_b=0))
            out.append(dict(name=f"{layer}/backward-weight",
                            form="backward-weight",
                            m=fout, n=fin, k=b, trans_a=1, trans_b=0))
    return out


def fail(msg):
    print(f"torch_gemm: {msg}", file=sys.stderr)
    sys.exit(1)


def best_time_s(fn, min_repeat_s, repeats):
    """Best per-call time over `repeats` runs of enough calls to fill
    min_repeat_s each."""
    fn()
    calls = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_repeat_s:
            break
        calls *= 2 if dt <= 0 else max(2, min(16, int(min_repeat_s / dt) + 1))
    best = dt / calls
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def worker(args):
    """Measure every shape at every thread count in this process."""
    import torch
    import torch.nn.functional as F

    torch.set_num_interop_threads(1)
    blas = None
    try:
        blas = ctypes.CDLL("libopenblas.so.0")
        blas.openblas_get_corename.restype = ctypes.c_char_p
    except OSError:
        pass
    torch.manual_seed(1)
    min_repeat_s = 0.005 if args.quick else 0.03
    repeats = 3 if args.quick else 5
    sel = shapes(args.quick)

    results = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        if blas is not None:
            blas.openblas_set_num_threads(threads)
        for s in sel:
            m, n, k = s["m"], s["n"], s["k"]
            # Stored operands: A is (k, m) when transposed, B is (n, k).
            a = torch.rand((k, m) if s["trans_a"] else (m, k)) - 0.5
            b = torch.rand((n, k) if s["trans_b"] else (k, n)) - 0.5
            op_a = a.t() if s["trans_a"] else a       # (m, k) view
            op_b = b.t() if s["trans_b"] else b       # (k, n) view
            # F.linear(x, w) = x w^T, so w is op(B)^T: (n, k) view.
            w = op_b.t()
            c = torch.zeros(m, n)
            ref = op_a.double() @ op_b.double()
            if s["form"] == "backward-weight":
                # A weight gradient accumulates (beta = 1), as in bench_gemm.
                ops = (("addmm_", lambda: c.addmm_(op_a, op_b)),
                       ("linear", lambda: F.linear(op_a, w)))
            else:
                ops = (("mm", lambda: torch.mm(op_a, op_b, out=c)),
                       ("linear", lambda: F.linear(op_a, w)))
            for op, fn in ops:
                c.zero_()
                got = fn().double()
                # Judged by the largest error relative to the largest entry;
                # float32 sums of up to 1024 products stay far below 1e-4.
                resid = float((got - ref).abs().max() / ref.abs().max())
                if resid > 1e-4:
                    fail(f"{op} at {s['name']}: relative residual {resid:.2e}"
                         " against float64 exceeds 1e-4")
                t_s = best_time_s(fn, min_repeat_s, repeats)
                gflops = 2.0 * m * n * k / t_s / 1e9
                results.append(dict(s, op=op, threads=threads,
                                    time_s=t_s, gflops=gflops))
                kernels = os.environ.get("OPENBLAS_CORETYPE") or "installed"
                print(f"torch_gemm: {kernels} t={threads} {s['name']:<28} "
                      f"{op:<6} {gflops:7.1f} GFLOP/s", file=sys.stderr)
    print(json.dumps(dict(
        openblas_coretype_env=os.environ.get("OPENBLAS_CORETYPE", ""),
        openblas_core=(blas.openblas_get_corename().decode()
                       if blas is not None else None),
        torch_version=torch.__version__, results=results)))


def driver(args):
    runs = []
    for coretype in args.coretypes:
        env = dict(os.environ)
        env.pop("OPENBLAS_CORETYPE", None)
        if coretype:
            env["OPENBLAS_CORETYPE"] = coretype
        cmd = [sys.executable, os.path.abspath(__file__), "--worker",
               "--threads", ",".join(map(str, args.threads))]
        if args.quick:
            cmd.append("--quick")
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
        if p.returncode != 0:
            fail(f"worker failed ({' '.join(cmd)})")
        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))

    # PyTorch best: the fastest op and kernel set per (shape, threads).
    best = {}
    for r in runs:
        for x in r["results"]:
            key = (x["name"], x["threads"])
            if key not in best or x["gflops"] > best[key]["gflops"]:
                best[key] = dict(
                    x, openblas_coretype_env=r["openblas_coretype_env"],
                    openblas_core=r["openblas_core"])
    out = dict(tool="torch_gemm", torch_version=runs[0]["torch_version"],
               runs=runs, best=list(best.values()))
    text = json.dumps(out, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,2",
                    help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--coretypes", default=",".join(c or "installed"
                                                     for c in CORETYPES),
                    help="OpenBLAS kernel sets to try; 'installed' leaves "
                         "OPENBLAS_CORETYPE unset (default installed, and SkylakeX "
                         "where the CPU has AVX-512)")
    ap.add_argument("--quick", action="store_true",
                    help="small shapes and short repeats (smoke test)")
    ap.add_argument("--json", help="write the result here (default: stdout)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    try:
        args.threads = [int(t) for t in args.threads.split(",") if t]
    except ValueError:
        fail(f"--threads: expected numbers like 1,2, got '{args.threads}'")
    if not args.threads or min(args.threads) < 1:
        fail("--threads: each thread count must be at least 1")
    args.coretypes = ["" if c == "installed" else c
                      for c in args.coretypes.split(",") if c]
    if args.worker:
        worker(args)
    else:
        driver(args)


if __name__ == "__main__":
    main()
