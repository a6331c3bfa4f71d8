#!/usr/bin/python3
"""PyTorch side of the training benchmark: fmnist-mlp and fmnist-cnn trained
exactly as `ondev run` trains them, so that samples/s and test accuracy can be
set side by side.

Same models (layer for layer), PyTorch's default initialisation, the same
Debian gzip IDX files read with gzip + numpy (pixels / 255), shuffled batches
of 64 with the last partial batch kept, plain SGD (no momentum) unless
--momentum and --schedule say otherwise, test accuracy after every epoch.
Only the training loop is timed (shuffle, batch gather, forward, loss,
backward, step); loading and evaluation are not.

PyTorch's best configuration: a knowledgeable user would try oneDNN
(torch.backends.mkldnn) on and off, channels_last for the CNN, and the
OpenBLAS kernel set (the linear layers, and the convolutions when oneDNN is
off, go through OpenBLAS, which picks its kernels from OPENBLAS_CORETYPE when
it is loaded). Each variant runs in its own process (thread counts and
OPENBLAS_CORETYPE are fixed at start-up) for a short timing run; the fastest
then trains for the requested epochs.

Same start: --init FILE loads the initial parameters from a checkpoint that
`ondev run --set epochs=0 --set checkpoint=FILE` wrote, --no-shuffle visits
the training images in stored order (as ondev's shuffle=false), and
--no-tune trains in the default configuration without timing variants.
Then the two tools run the same computation, and what differs is rounding
alone. With --init the initial model is also evaluated (init_test_loss,
init_test_accuracy), and the first step's batch loss is kept
(first_step_loss), to be set beside ondev's.

Run with Debian's interpreter (/usr/bin/python3), which has python3-torch:
    /usr/bin/python3 bench/torch_fmnist.py --model fmnist-cnn --threads 2 \
        --epochs 1 --json out.json
"""

import argparse
import ctypes
import gzip
import itertools
import json
import math
import os
import struct
import subprocess
import sys
import time
import zlib

import numpy as np

DATA_DIR = os.environ.get("ONDEV_FMNIST_DIR",
                          "/usr/share/datasets/fashion-mnist")
MODELS = ("fmnist-mlp", "fmnist-cnn")
from openblas_cores import coretypes

CORETYPES = coretypes()  # "" = as installed (OpenBLAS detects the CPU)


def fail(msg):
    print(f"torch_fmnist: {msg}", file=sys.stderr)
    sys.exit(1)


def load_idx(path):
    """Read a gzip IDX file of unsigned bytes into a numpy array."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        fail(f"cannot read {path}: {e}; install the Debian package "
             "dataset-fashion-mnist or set ONDEV_FMNIST_DIR")
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        fail(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big")
            for i in range(ndim)]
    header = 4 + 4 * ndim
    if len(data) - header != int(np.prod(dims)):
        fail(f"{path}: size does not match its header {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def load_split(split, limit):
    """Images (N, 1, 28, 28) as float32 in [0, 1] and labels (N,) as int64."""
    prefix = "train" if split == "train" else "t10k"
    x = load_idx(os.path.join(DATA_DIR, f"{prefix}-images-idx3-ubyte.gz"))
    y = load_idx(os.path.join(DATA_DIR, f"{prefix}-labels-idx1-ubyte.gz"))
    if limit:
        x, y = x[:limit], y[:limit]
    x = x.astype(np.float32).reshape(-1, 1, 28, 28) / 255.0
    return x, y.astype(np.int64)


def openblas_lib():
    """The OpenBLAS that torch already loaded (same soname, same instance)."""
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib
    except OSError:
        return None


def build_model(nn, name):
    if name == "fmnist-mlp":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 256), nn.ReLU(),
            nn.Linear(256, 256), nn.ReLU(),
            nn.Linear(256, 10))
    return nn.Sequential(
        nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(1024, 128), nn.ReLU(),
        nn.Linear(128, 10))


# Where each of ondev's parameterised layers sits in build_model's
# nn.Sequential. ondev stores a linear weight as (out, in) and a convolution
# weight as (C_out, C_in, KH, KW), biases as (out,): the layouts of
# nn.Linear and nn.Conv2d, so values are copied without transposing.
# ondev flattens (N, C, H, W) in that order, as nn.Flatten does.
ONDEV_LAYERS = {
    "fmnist-mlp": {"fc1": 1, "fc2": 3, "fc3": 5},
    "fmnist-cnn": {"conv1": 0, "conv2": 3, "fc1": 7, "fc2": 9},
}


def read_checkpoint(path):
    """The parameters of an ondev checkpoint (format version 1, written by
    engine/checkpoint.c; docs/engine.md) as [(name, float32 array)] in file
    order. The optimiser state after them is not read. The whole file is
    checked first: magic, version, byte order, length and CRC-32."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        fail(f"cannot read checkpoint {path}: {e}")
    if len(data) < 40 or data[:8] != b"ODCKPT\r\n":
        fail(f"{path} is not an ondev checkpoint")
    # The marker 0x01020304 is written in the writer's byte order.
    if struct.unpack_from("<I", data, 12)[0] == 0x01020304:
        order = "<"
    elif struct.unpack_from(">I", data, 12)[0] == 0x01020304:
        order = ">"
    else:
        fail(f"checkpoint {path} has a corrupt byte-order marker")
    version, _, file_bytes, step, count = struct.unpack_from(
        order + "IIQQI", data, 8)
    if version != 1:
        fail(f"checkpoint {path} has format version {version}; this script "
             "reads version 1")
    if file_bytes != len(data):
        fail(f"checkpoint {path} is {len(data)} bytes but its header says "
             f"{file_bytes}")
    stored_crc = struct.unpack_from(order + "I", data, len(data) - 4)[0]
    if zlib.crc32(data[:-4]) & 0xFFFFFFFF != stored_crc:
        fail(f"checkpoint {path} is corrupt: CRC-32 mismatch")

    params, off = [], 36
    for _ in range(count):
        (name_len,) = struct.unpack_from(order + "I", data, off)
        name = data[off + 4:off + 4 + name_len].decode()
        off += 4 + name_len
        (ndim,) = struct.unpack_from(order + "I", data, off)
        dims = struct.unpack_from(order + f"{ndim}I", data, off + 4)
        off += 4 + 4 * ndim + 4            # dims, then the trainable flag
        size = int(np.prod(dims))
        if off + 4 * size > len(data) - 4:
            fail(f"checkpoint {path} is malformed: parameter {name} runs "
                 "past the end of the data")
        values = np.frombuffer(data, dtype=np.dtype(np.float32).newbyteorder(
            order), count=size, offset=off).astype(np.float32)
        off += 4 * size
        params.append((name, values.reshape(dims)))
    return params, step


def load_init(torch, model, name, path):
    """Copy an ondev checkpoint's parameters into the model built by
    build_model(name). Every tensor on both sides must be matched, name and
    shape, or the run stops: a silent partial load would make the
    comparison meaningless."""
    params, step = read_checkpoint(path)
    layers = ONDEV_LAYERS[name]
    expect = {f"{layer}.{kind}": (index, kind)
              for layer, index in layers.items()
              for kind in ("weight", "bias")}
    got = {n for n, _ in params}
    if got != set(expect):
        fail(f"checkpoint {path} holds parameters {sorted(got)}; model "
             f"{name} needs {sorted(expect)} (saved from another workload?)")
    with torch.no_grad():
        for pname, values in params:
            index, kind = expect[pname]
            target = getattr(model[index], kind)
            if tuple(target.shape) != values.shape:
                fail(f"checkpoint {path}: {pname} has shape {values.shape} "
                     f"but PyTorch's layer {index} needs "
                     f"{tuple(target.shape)}")
            target.copy_(torch.from_numpy(values))
    if step != 0:
        print(f"torch_fmnist: note: {path} was saved at step {step}, not "
              "at initialisation", file=sys.stderr)
    return len(params)


def worker(args):
    """Train one configuration in this process and print its JSON."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    # Threads first: inter-op threads can only be set before any parallel work.
    torch.set_num_interop_threads(1)
    torch.set_num_threads(args.threads)
    blas = openblas_lib()
    if blas is not None:
        blas.openblas_set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = bool(args.mkldnn)

    x_train, y_train = load_split("train", args.train_limit)
    x_test, y_test = load_split("test", args.test_limit)
    x_train = torch.from_numpy(x_train)
    y_train = torch.from_numpy(y_train)
    x_test = torch.from_numpy(x_test)
    y_test = torch.from_numpy(y_test)

    torch.manual_seed(args.seed)
    model = build_model(nn, args.model)
    if args.init:
        load_init(torch, model, args.model, args.init)
    layout = torch.contiguous_format
    if args.channels_last:
        layout = torch.channels_last
        model = model.to(memory_format=layout)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr,
                          momentum=args.momentum)
    shuffle = torch.Generator()
    shuffle.manual_seed(args.seed)
    n = x_train.shape[0]
    bs = args.batch_size
    # ondev's cosine schedule, per step: step t of T trains at
    # lr (1 + cos(pi t / T)) / 2, T = every step of every epoch.
    total_steps = args.epochs * ((n + bs - 1) // bs)
    sched = None
    if args.schedule == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda t: (1.0 + math.cos(math.pi * min(t, total_steps)
                                           / total_steps)) / 2.0)

    def step(idx):
        xb = x_train[idx].contiguous(memory_format=layout)
        yb = y_train[idx]
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        return loss.item()

    def evaluate():
        """(accuracy, mean cross-entropy) over the test set."""
        model.eval()
        correct, loss_sum = 0, 0.0
        with torch.no_grad():
            for s in range(0, x_test.shape[0], 1000):
                xb = x_test[s:s + 1000].contiguous(memory_format=layout)
                yb = y_test[s:s + 1000]
                logits = model(xb)
                loss_sum += float(F.cross_entropy(logits, yb,
                                                  reduction="sum"))
                correct += int((logits.argmax(dim=1) == yb).sum())
        model.train()
        return correct / x_test.shape[0], loss_sum / x_test.shape[0]

    def order(epoch_n):
        """This epoch's sample order: shuffled, or stored order."""
        if args.no_shuffle:
            return torch.arange(epoch_n)
        return torch.randperm(epoch_n, generator=shuffle)

    out = {
        "tool": "torch_fmnist", "model": args.model, "threads": args.threads,
        "batch_size": bs, "lr": args.lr, "momentum": args.momentum,
        "schedule": args.schedule, "seed": args.seed,
        "mkldnn": bool(args.mkldnn), "channels_last": bool(args.channels_last),
        "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE", ""),
        "openblas_core": (blas.openblas_get_corename().decode()
                          if blas is not None else None),
        "torch_version": torch.__version__,
        "train_samples": n, "test_samples": int(x_test.shape[0]),
        "param_count": sum(p.numel() for p in model.parameters()),
        "shuffle": not args.no_shuffle, "init": args.init or None,
    }
    model.train()
    if args.init and not args.steps:
        out["init_test_accuracy"], out["init_test_loss"] = evaluate()

    if args.steps:
        # Short timing run: warm-up steps are not timed.
        perm = order(n)
        nsteps = args.warmup + args.steps
        starts = [(i * bs) % max(n - bs + 1, 1) for i in range(nsteps)]
        for s in starts[:args.warmup]:
            step(perm[s:s + bs])
        t0 = time.perf_counter()
        for s in starts[args.warmup:]:
            step(perm[s:s + bs])
        elapsed_s = time.perf_counter() - t0
        out.update(steps=args.steps, timed_s=elapsed_s,
                   samples_per_s=args.steps * bs / elapsed_s)
        print(json.dumps(out))
        return

    train_s = 0.0
    first_step_loss = None
    epoch_sps, epoch_loss, epoch_acc, epoch_test_loss = [], [], [], []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        perm = order(n)
        loss_sum = 0.0
        for s in range(0, n, bs):
            idx = perm[s:s + bs]
            loss = step(idx)
            if first_step_loss is None:
                first_step_loss = loss
            loss_sum += loss * idx.shape[0]
        elapsed_s = time.perf_counter() - t0
        train_s += elapsed_s
        epoch_sps.append(n / elapsed_s)
        epoch_loss.append(loss_sum / n)
        acc, test_loss = evaluate()
        epoch_acc.append(acc)
        epoch_test_loss.append(test_loss)
    out.update(epochs=args.epochs, train_time_s=train_s,
               samples_per_s=n * args.epochs / train_s,
               epoch_samples_per_s=epoch_sps, epoch_train_loss=epoch_loss,
               train_loss=epoch_loss[-1], epoch_test_accuracy=epoch_acc,
               test_accuracy=epoch_acc[-1], epoch_test_loss=epoch_test_loss,
               test_loss=epoch_test_loss[-1],
               first_step_loss=first_step_loss)
    print(json.dumps(out))


def variants(model):
    """Every configuration worth trying: (name, env, flags)."""
    layouts = (0, 1) if model == "fmnist-cnn" else (0,)
    for coretype, mkldnn, cl in itertools.product(CORETYPES, (1, 0), layouts):
        name = "openblas={},mkldnn={},layout={}".format(
            coretype or "installed", "on" if mkldnn else "off",
            "channels_last" if cl else "nchw")
        yield name, coretype, ["--mkldnn", str(mkldnn),
                               "--channels-last", str(cl)]


def run_worker(args, coretype, flags, extra):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    n = str(args.threads)
    env.update(OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker",
           "--model", args.model, "--threads", n,
           "--batch-size", str(args.batch_size), "--lr", str(args.lr),
           "--momentum", str(args.momentum), "--schedule", args.schedule,
           "--seed", str(args.seed), "--train-limit", str(args.train_limit),
           "--test-limit", str(args.test_limit)] + flags + extra
    if args.init:
        cmd += ["--init", os.path.abspath(args.init)]
    if args.no_shuffle:
        cmd.append("--no-shuffle")
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        fail(f"worker failed ({' '.join(cmd)})")
    return json.loads(p.stdout.strip().splitlines()[-1])


def driver(args):
    """Time every variant briefly, then train the fastest for --epochs.
    With --no-tune, train the first variant (oneDNN on, NCHW, OpenBLAS as
    installed) at once, untimed."""
    tried = []
    for name, coretype, flags in variants(args.model):
        if args.no_tune:
            tried.append({"variant": name + " (not tuned)",
                          "openblas_coretype_env": coretype,
                          "samples_per_s": None, "flags": flags})
            break
        r = run_worker(args, coretype, flags,
                       ["--steps", str(args.timing_steps),
                        "--warmup", str(args.warmup)])
        tried.append({"variant": name, "openblas_coretype_env": coretype,
                      "openblas_core": r["openblas_core"],
                      "samples_per_s": r["samples_per_s"], "flags": flags})
        print(f"torch_fmnist: {args.model} threads={args.threads} {name}: "
              f"{r['samples_per_s']:.0f} samples/s", file=sys.stderr)
    best = max(tried, key=lambda v: v["samples_per_s"] or 0)
    result = run_worker(args, best["openblas_coretype_env"], best["flags"],
                        ["--epochs", str(args.epochs)])
    result["best_variant"] = best["variant"]
    result["variants"] = [{k: v for k, v in t.items() if k != "flags"}
                          for t in tried]
    result["timing_steps"] = 0 if args.no_tune else args.timing_steps
    print(f"torch_fmnist: {args.model} threads={args.threads} "
          f"{'' if args.no_tune else 'best '}{best['variant']}: "
          f"{result['samples_per_s']:.0f} samples/s over "
          f"{args.epochs} epoch(s), test accuracy "
          f"{result['test_accuracy']:.4f}", file=sys.stderr)
    text = json.dumps(result, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=MODELS, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.0)
    ap.add_argument("--schedule", choices=("constant", "cosine"),
                    default="constant",
                    help="cosine: the learning rate falls from --lr to 0 "
                         "over all steps, as ondev's schedule=cosine")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true",
                    help="small subsets and short timing runs (smoke test)")
    ap.add_argument("--train-limit", type=int, default=0,
                    help="use only the first N training images (0: all)")
    ap.add_argument("--test-limit", type=int, default=0,
                    help="use only the first N test images (0: all)")
    ap.add_argument("--timing-steps", type=int, default=0,
                    help="steps per variant in the timing run "
                         "(default 150 for the MLP, 60 for the CNN)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--init", metavar="FILE",
                    help="start from the parameters of this ondev checkpoint"
                         " (`ondev run --set epochs=0 --set checkpoint=FILE`)")
    ap.add_argument("--no-shuffle", action="store_true",
                    help="visit the training images in stored order")
    ap.add_argument("--no-tune", action="store_true",
                    help="train the default configuration without timing "
                         "the variants first")
    ap.add_argument("--json", help="write the result here (default: stdout)")
    # Worker-only options.
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--mkldnn", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--channels-last", type=int, default=0,
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads < 1 or args.epochs < 1 or args.batch_size < 1:
        fail("--threads, --epochs and --batch-size must be at least 1")

    if args.worker:
        worker(args)
        return
    if args.quick:
        args.train_limit = args.train_limit or 2048
        args.test_limit = args.test_limit or 1000
        args.timing_steps = args.timing_steps or 10
        args.warmup = min(args.warmup, 3)
    if not args.timing_steps:
        args.timing_steps = 150 if args.model == "fmnist-mlp" else 60
    driver(args)


if __name__ == "__main__":
    main()
