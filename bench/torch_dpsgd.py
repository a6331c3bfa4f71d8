#!/usr/bin/python3
"""PyTorch side of the DP-SGD benchmark: one DP-SGD step (per-example
gradients clipped to C, summed, Gaussian noise, divided by the batch size)
on fmnist-mlp and fmnist-cnn, done three ways a PyTorch user would:

  vmap    per-example gradients from functorch's vmap(grad(...)) (torch
          1.13; torch.func in later releases), clipped and summed;
  loop    a micro-batch loop: one backward per example;
  ghost   hand-written ghost clipping: per-example norms from hooks (linear
          layers: ||a||^2 ||g||^2 + ||g||^2; conv layers: each example's
          gradient from unfolded inputs), then a second backward of the
          clip-weighted loss;

and the non-private step for reference. Reports samples/s of each, best of
--repeats timings of --steps steps after a warm-up. Data are random images
of Fashion-MNIST's shape: the cost of a step does not depend on the pixels.

Run with Debian's interpreter (/usr/bin/python3), which has python3-torch:
    /usr/bin/python3 bench/torch_dpsgd.py --model fmnist-cnn --threads 1 \
        --batch 256 --json out.json
"""

import argparse
import json
import sys
import time


def build_model(nn, name):
    """The models of workloads/fmnist.c, layer for layer."""
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


def add_noise_and_step(torch, model, sums, clip, sigma, batch, lr):
    """Noise N(0, sigma^2 C^2), divide by the batch size, SGD update."""
    with torch.no_grad():
        for p, s in zip(model.parameters(), sums):
            g = (s + sigma * clip * torch.randn_like(s)) / batch
            p.add_(g, alpha=-lr)


def step_plain(torch, F, model, x, y, lr):
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(p.grad, alpha=-lr)


def make_vmap_step(torch, F, model):
    import functorch
    fmodel, _ = functorch.make_functional(model)

    def loss_one(params, xi, yi):
        out = fmodel(params, xi.unsqueeze(0))
        return F.cross_entropy(out, yi.unsqueeze(0))

    per_example = functorch.vmap(functorch.grad(loss_one),
                                 in_dims=(None, 0, 0))

    def step(x, y, clip, sigma, lr):
        params = tuple(p.detach() for p in model.parameters())
        grads = per_example(params, x, y)          # each (B, *shape)
        b = x.shape[0]
        sq = sum(g.reshape(b, -1).pow(2).sum(1) for g in grads)
        scale = (clip / (sq.sqrt() + 1e-12)).clamp(max=1.0)
        sums = [torch.einsum("b,b...->...", scale, g) for g in grads]
        add_noise_and_step(torch, model, sums, clip, sigma, b, lr)
    return step


def make_loop_step(torch, F, model):
    params = list(model.parameters())

    def step(x, y, clip, sigma, lr):
        sums = [torch.zeros_like(p) for p in params]
        for i in range(x.shape[0]):
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
            norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in params))
            s = min(1.0, clip / (float(norm) + 1e-12))
            for acc, p in zip(sums, params):
                acc.add_(p.grad, alpha=s)
        add_noise_and_step(torch, model, sums, clip, sigma, x.shape[0], lr)
    return step


def make_ghost_step(torch, F, model):
    """Norms from forward/backward hooks, then one re-weighted backward."""
    nn = torch.nn
    layers = [m for m in model.modules()
              if isinstance(m, (nn.Linear, nn.Conv2d))]
    acts, outgrads = {}, {}

    def fwd_hook(mod, inp, out):
        acts[mod] = inp[0].detach()

    def bwd_hook(mod, gin, gout):
        outgrads[mod] = gout[0].detach()

    for m in layers:
        m.register_forward_hook(fwd_hook)
        m.register_full_backward_hook(bwd_hook)

    def sqnorms(b):
        sq = torch.zeros(b)
        for m in layers:
            a, g = acts[m], outgrads[m]
            if isinstance(m, nn.Linear):
                # Rows of a (B, in) and g (B, out): the outer product's norm.
                sq += a.pow(2).sum(1) * g.pow(2).sum(1) + g.pow(2).sum(1)
            else:
                # Each example's weight gradient from the unfolded input.
                u = F.unfold(a, m.kernel_size, padding=m.padding,
                             stride=m.stride)           # (B, D, P)
                gg = g.reshape(b, g.shape[1], -1)        # (B, C_out, P)
                w = torch.einsum("bop,bdp->bod", gg, u)
                sq += w.reshape(b, -1).pow(2).sum(1) + gg.sum(2).pow(2).sum(1)
        return sq

    def step(x, y, clip, sigma, lr):
        b = x.shape[0]
        model.zero_grad(set_to_none=True)
        losses = F.cross_entropy(model(x), y, reduction="none")
        # Pass 1: output gradients only (autograd.grad keeps .grad empty).
        torch.autograd.grad(losses.sum(), list(model.parameters()),
                            retain_graph=True)
        scale = (clip / (sqnorms(b).sqrt() + 1e-12)).clamp(max=1.0)
        # Pass 2: the clipped sum in one backward.
        (losses * scale).sum().backward()
        sums = [p.grad for p in model.parameters()]
        add_noise_and_step(torch, model, sums, clip, sigma, b, lr)
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("fmnist-mlp", "fmnist-cnn"),
                    default="fmnist-mlp")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", default="plain,vmap,loop,ghost")
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()

    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = build_model(nn, args.model)
    x = torch.rand(args.batch, 1, 28, 28)
    y = torch.randint(0, 10, (args.batch,))
    clip, sigma, lr = 1.0, 1.0, 0.1

    results = {"model": args.model, "batch": args.batch,
               "threads": args.threads, "torch": torch.__version__}
    for name in args.methods.split(","):
        if name == "plain":
            def step(x, y, clip, sigma, lr):
                step_plain(torch, F, model, x, y, lr)
        elif name == "vmap":
            try:
                step = make_vmap_step(torch, F, model)
            except ImportError as e:
                print(f"torch_dpsgd: vmap unavailable: {e}", file=sys.stderr)
                continue
        elif name == "loop":
            step = make_loop_step(torch, F, model)
        elif name == "ghost":
            step = make_ghost_step(torch, F, model)
        else:
            sys.exit(f"torch_dpsgd: unknown method {name}")
        steps = max(1, args.steps // 4) if name == "loop" else args.steps
        step(x, y, clip, sigma, lr)  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for _ in range(steps):
                step(x, y, clip, sigma, lr)
            best = min(best, (time.perf_counter() - t0) / steps)
        results[name] = {"step_s": best, "samples_per_s": args.batch / best}
        print(f"{args.model} {name:5s}: {best * 1e3:8.1f} ms/step, "
              f"{args.batch / best:8.0f} samples/s", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
