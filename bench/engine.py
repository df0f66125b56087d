#!/usr/bin/python3
"""Engine speed and memory, side by side with PyTorch (2 threads, batch 1,
224x224), through `cnnlens probe bench`.

    /usr/bin/python3 bench/engine.py [--bin build/cnnlens] [--models resnet18,vgg16]

Prints, per model: PyTorch's and our forward time (the best median of a few
rounds that alternate the two, so both meet the same load), their ratio (target
<= 1.0), our forward+backward to the lecture layer (input-side gradients only)
over our forward (target <= 1.3), our peak RSS (target for resnet18 < 200 MiB),
and the fraction of this machine's sgemm peak each forward reaches.  Run it
when the machine is quiet (see `uptime`): the two cores are shared."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torchvision

ENV = dict(os.environ)
LAYERS = {"resnet18": "layer4", "alexnet": "features.11", "vgg16": "features.30",
          "vgg19": "features.35"}
ITERS = {"resnet18": 20, "alexnet": 10, "vgg16": 5, "vgg19": 4}


def module(model, name):
    m = model
    for part in name.split("."):
        m = m[int(part)] if part.isdigit() else getattr(m, part)
    return m


def flops(model, x):
    """Multiply-adds x2 of every conv and linear layer for input x."""
    total = [0]

    def conv_hook(mod, inp, out):
        total[0] += 2 * out.numel() * mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]

    def lin_hook(mod, inp, out):
        total[0] += 2 * mod.in_features * mod.out_features * out.shape[0]

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(lin_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return total[0]


def median_ms(fn, iters):
    fn()
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    ts.sort()
    return ts[len(ts) // 2], ts[0]


def torch_times(arch, x, iters):
    model = getattr(torchvision.models, arch)(weights=None).eval()
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    for p in model.parameters():
        p.requires_grad_(False)

    def fwd():
        with torch.no_grad():
            model(x)

    store = {}
    hook = module(model, LAYERS[arch]).register_forward_hook(lambda m, i, o: store.update(a=o))

    def fwd_bwd():
        xi = x.clone().requires_grad_(True)  # so the graph exists; grad taken only to the layer
        logits = model(xi)
        torch.autograd.grad(logits[0, 0], store["a"])

    f, fmin = median_ms(fwd, iters)
    fb, _ = median_ms(fwd_bwd, iters)
    hook.remove()
    return f, fmin, fb, flops(model, x)


def ours(binary, arch, xpath, iters, layer=None):
    cmd = [binary, "probe", "bench", arch, "--input", xpath, "--iters", str(iters)]
    if layer:
        cmd += ["--grad-to", layer]
    p = subprocess.run(cmd, capture_output=True, text=True, check=True, env=ENV)
    return json.loads(p.stdout)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(here, "..", "build", "cnnlens"))
    ap.add_argument("--models", default="resnet18,alexnet,vgg16,vgg19")
    ap.add_argument("--threads", help="CNNLENS_THREADS for the engine's own loops")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per model")
    args = ap.parse_args()
    if args.threads:
        ENV["CNNLENS_THREADS"] = args.threads
    torch.set_num_threads(2)
    load = os.getloadavg()[0]
    print(f"load average {load:.2f}" + ("  (busy machine: numbers are noisy)" if load > 1.5 else ""))
    peak = json.loads(subprocess.run([args.bin, "probe", "sgemm", "2048"], capture_output=True,
                                     text=True, check=True).stdout)["gflops"]
    print(f"sgemm peak (OpenBLAS, 2048^3): {peak:.1f} GFLOP/s\n")
    hdr = (f"{'model':9s} {'torch fwd':>10s} {'ours fwd':>9s} {'ratio':>6s} {'min':>5s} {'torch f+b':>10s} "
           f"{'ours f+b':>9s} {'f+b/fwd':>8s} {'GFLOP':>6s} {'%peak':>6s} {'RSS MiB':>8s}")
    print(hdr)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as d:
        xpath = os.path.join(d, "x.npy")
        np.save(xpath, x.numpy())
        for arch in args.models.split(","):
            it = ITERS.get(arch, 5)
            # Rounds alternate PyTorch and the engine, so both meet the same
            # load from the neighbours; each keeps its best round.
            t_rounds, f_rounds, b_rounds = [], [], []
            for _ in range(args.rounds):
                t_rounds.append(torch_times(arch, x, it))
                f_rounds.append(ours(args.bin, arch, xpath, it))
                b_rounds.append(ours(args.bin, arch, xpath, it, LAYERS[arch]))
            tf = min(r[0] for r in t_rounds)
            tfmin = min(r[1] for r in t_rounds)
            tfb = min(r[2] for r in t_rounds)
            fl = t_rounds[0][3]
            f = min(r["forward_ms"] for r in f_rounds)
            fmin = min(r["forward_min_ms"] for r in f_rounds)
            best_b = min(b_rounds, key=lambda r: r["forward_backward_ms"])
            b = best_b["forward_backward_ms"]
            fb_ratio = b / best_b["forward_ms"]  # both from the same run
            frac = fl / (f * 1e-3) / (peak * 1e9)
            print(f"{arch:9s} {tf:8.1f}ms {f:7.1f}ms {f / tf:6.2f} {fmin / tfmin:5.2f} {tfb:8.1f}ms "
                  f"{b:7.1f}ms {fb_ratio:8.2f} {fl / 1e9:6.2f} {100 * frac:5.0f}% "
                  f"{best_b['peak_rss_mib']:8.1f}")
            sys.stdout.flush()
    print("\nratio: best median of the rounds; min: best single runs")
    print("targets: ratio <= 1.0, f+b/fwd <= 1.3 (to " +
          ", ".join(f"{a}:{l}" for a, l in LAYERS.items()) + "), resnet18 RSS < 200 MiB")


if __name__ == "__main__":
    main()
