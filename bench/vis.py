#!/usr/bin/python3
"""The visualisation methods, cnnlens and PyTorch side by side, 2 threads each,
224x224 inputs, torchvision models at random init (the timings do not depend
on the weights).  PyTorch runs them the way pytorch-grad-cam and Captum do:
hooks on the target layer, backward() with the parameters requiring grad,
Captum's Occlusion one perturbation per forward pass.  cnnlens is timed inside
`cnnlens vis-probe --repeat R` (no process start, no model load).

Prints the best time of each (the minimum over repeats, over two interleaved
rounds, which is the figure least disturbed by other processes on a shared
machine) and the ratio cnnlens / PyTorch, with the goal:
Grad-CAM <= 0.25, guided backprop <= 0.7, occlusion <= 0.5, and 14 filters of
the lecture CNN maximised for 200 steps in under 1 s.  Run on a quiet machine
(`uptime`).

    /usr/bin/python3 bench/vis.py [--bin build/cnnlens] [--repeat 5] [--only gradcam,guided,...]
"""
import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
import torch
import torch.nn as nn
import torchvision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOALS = {"gradcam": 0.25, "guided": 0.7, "occlusion": 0.5}

sys.path.insert(0, os.path.join(ROOT, "tests", "py"))
from torch_ref import Lecture, save_safetensors  # noqa: E402  (the model and writer tests/py/test_vis.py uses)


def best_time(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return min(times)


def interleaved(torch_fn, cnnlens_fn, rounds=2):
    """Best of both over alternating rounds, so that a burst of load from
    elsewhere hits both sides alike."""
    t, c = float("inf"), float("inf")
    for _ in range(rounds):
        t = min(t, torch_fn())
        c = min(c, cnnlens_fn())
    return c, t


# ---- PyTorch, as pytorch-grad-cam and Captum run it -----------------------------


def torch_gradcam(model, layer, x):
    store = {}

    def hook(mod, inp, out):
        store["a"] = out
        out.register_hook(lambda g: store.__setitem__("g", g))

    h = layer.register_forward_hook(hook)

    def run():
        out = model(x)
        cls = int(out.argmax(1)[0])
        model.zero_grad()
        out[0, cls].backward()
        a, g = store["a"].detach().numpy(), store["g"].numpy()
        cam = np.maximum((g.mean(axis=(2, 3))[:, :, None, None] * a).sum(axis=1), 0)[0]
        cam = cam - cam.min()
        cam = cam / (1e-7 + cam.max())
        return cv2.resize(cam, (224, 224))

    return run, h


class GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0) * (g > 0)


class GuidedModule(nn.Module):
    def forward(self, x):
        return GuidedReLU.apply(x)


def torch_guided(model, x):
    m = copy.deepcopy(model)

    def swap(mod):
        for name, child in mod.named_children():
            if isinstance(child, nn.ReLU):
                setattr(mod, name, GuidedModule())
            else:
                swap(child)

    swap(m)

    def run():
        xi = x.clone().requires_grad_(True)
        out = m(xi)
        out[0, int(out.argmax(1)[0])].backward()
        return xi.grad

    return run


def torch_occlusion(model, x, window, stride):
    def run():
        _, _, H, W = x.shape
        n = (H - window + stride - 1) // stride + 1
        total, count = torch.zeros(H, W), torch.zeros(H, W)
        with torch.no_grad():
            out = model(x)
            cls = int(out.argmax(1)[0])
            base = out[0, cls]
            for iy in range(n):
                for ix in range(n):
                    y0, x0 = iy * stride, ix * stride
                    occ = x.clone()
                    occ[:, :, y0 : y0 + window, x0 : x0 + window] = 0
                    total[y0 : y0 + window, x0 : x0 + window] += base - model(occ)[0, cls]
                    count[y0 : y0 + window, x0 : x0 + window] += 1
        return total / count

    return run


def torch_maximize(model, filters, steps):
    def run():
        store = {}
        h = model.conv2.register_forward_hook(lambda mod, i, o: store.__setitem__("a", o))
        x = (0.1 * torch.randn(len(filters), 1, 28, 28)).requires_grad_(True)
        opt = torch.optim.Adam([x], lr=0.1)
        idx = torch.arange(len(filters))
        for _ in range(steps):
            opt.zero_grad()
            model(x)
            (-store["a"][idx, torch.tensor(filters)].sum()).backward()
            opt.step()
        h.remove()
        return x

    return run


# ---- cnnlens ---------------------------------------------------------------------


def cnnlens(bin_, tmp, method, arch, weights, x, repeat, **opts):
    xp = os.path.join(tmp, "x.npy")
    np.save(xp, x.numpy())
    cmd = [bin_, "vis-probe", method, "--arch", arch, "--weights", weights, "--input", xp,
           "--out", os.path.join(tmp, "out"), "--repeat", str(repeat + 1)]
    for k, v in opts.items():
        cmd += ["--" + k, str(v)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    info = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    return float(info["best_ms"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "cnnlens"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", default="gradcam,guided,occlusion,maximize")
    args = ap.parse_args()
    only = args.only.split(",")
    torch.set_num_threads(2)
    torch.manual_seed(0)
    print(f"load: {os.getloadavg()[0]:.2f} (run on a quiet machine)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = {}

        def model(arch):
            if arch not in models:
                m = getattr(torchvision.models, arch)().eval()
                p = os.path.join(tmp, arch + ".safetensors")
                save_safetensors(m.state_dict(), p)
                models[arch] = (m, p)
            return models[arch]

        x = torch.randn(1, 3, 224, 224)
        if "gradcam" in only:
            for arch, layer, mod in [("resnet18", "layer4", lambda m: m.layer4),
                                     ("alexnet", "features_11", lambda m: m.features[11]),
                                     ("vgg16", "features_30", lambda m: m.features[30])]:
                m, p = model(arch)
                run, h = torch_gradcam(m, mod(m), x)
                c, t = interleaved(lambda: best_time(run, args.repeat),
                                   lambda: cnnlens(args.bin, tmp, "gradcam", arch, p, x, args.repeat, layer=layer))
                h.remove()
                rows.append((f"gradcam {arch} {layer}", c, t, GOALS["gradcam"]))
        if "guided" in only:
            for arch in ["resnet18", "alexnet", "vgg16"]:
                m, p = model(arch)
                run = torch_guided(m, x)
                c, t = interleaved(lambda: best_time(run, args.repeat),
                                   lambda: cnnlens(args.bin, tmp, "guided", arch, p, x, args.repeat))
                rows.append((f"guided backprop {arch}", c, t, GOALS["guided"]))
        if "occlusion" in only:
            m, p = model("resnet18")
            t = best_time(torch_occlusion(m, x, 32, 16), 1)
            c = cnnlens(args.bin, tmp, "occlusion", "resnet18", p, x, 1, window=32, stride=16)
            rows.append(("occlusion resnet18 w32 s16", c, t, GOALS["occlusion"]))
        if "maximize" in only:
            lec = Lecture().eval()
            p = os.path.join(tmp, "fashion.safetensors")
            save_safetensors(lec.state_dict(), p)
            t = best_time(torch_maximize(lec, list(range(14)), 200), 1)
            r = subprocess.run([args.bin, "vis-probe", "maximize", "--arch", "fashion", "--weights", p,
                                "--layer", "conv2", "--units", "0..13", "--steps", "200", "--lr", "0.1",
                                "--out", os.path.join(tmp, "mx")], capture_output=True, text=True, check=True)
            c = float(dict(line.split(" ", 1) for line in r.stdout.splitlines())["time_ms"])
            rows.append(("maximize fashion conv2 0..13 x200 (goal < 1000 ms)", c, t, None))
    print(f"{'method':52s} {'cnnlens ms':>11s} {'pytorch ms':>11s} {'ratio':>7s} {'goal':>6s}")
    for name, c, t, goal in rows:
        ok = "" if goal is None else ("ok" if c / t <= goal else "MISSED")
        g = "" if goal is None else f"{goal:.2f}"
        print(f"{name:52s} {c:11.1f} {t:11.1f} {c / t:7.3f} {g:>6s} {ok}")


if __name__ == "__main__":
    main()
