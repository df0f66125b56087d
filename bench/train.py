#!/usr/bin/python3
"""One epoch of Fashion-MNIST for the lecture CNN, cnnlens and PyTorch side by
side: same model, same batch size, same optimiser (Adam, lr 1e-3), 2 threads
each.  Prints both times and the ratio cnnlens / PyTorch (the goal is <= 1.0).

    /usr/bin/python3 bench/train.py [--bin build/cnnlens] [--batch 64] [--limit N] [--threads 2]

The data are decoded before the clock starts on both sides: cnnlens reports
the training loop's own time (`trained ... in X s`)."""
import argparse
import gzip
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION = "/usr/share/datasets/fashion-mnist"

sys.path.insert(0, os.path.join(ROOT, "tests", "py"))
from torch_ref import Lecture  # noqa: E402  (the model tests/py/test_train_parity.py checks)


def load(n):
    with gzip.open(os.path.join(FASHION, "train-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16)[: n * 784]
    with gzip.open(os.path.join(FASHION, "train-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    return torch.from_numpy(x.reshape(-1, 1, 28, 28).astype(np.float32) / 255), torch.from_numpy(y.astype(np.int64))


def torch_epoch(n, batch, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    x, y = load(n)
    m = Lecture()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    perm = torch.randperm(len(x))
    t0 = time.perf_counter()
    for b in range(0, len(x), batch):
        i = perm[b : b + batch]
        opt.zero_grad()
        F.cross_entropy(m(x[i]), y[i]).backward()
        opt.step()
    return time.perf_counter() - t0


def cnnlens_epoch(binary, n, batch, threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), CNNLENS_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([binary, "train-builtin", "--out", os.path.join(tmp, "w.safetensors"), "--epochs", "1",
                            "--batch", str(batch), "--limit", str(n), "--lr", "0.001", "--schedule", "constant", "--no-eval", "--quiet"],
                           env=env, capture_output=True, text=True, check=True)
    return float(re.search(r"in ([0-9.]+) s", r.stdout).group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "cnnlens"))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--limit", type=int, default=60000)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    c = cnnlens_epoch(a.bin, a.limit, a.batch, a.threads)
    t = torch_epoch(a.limit, a.batch, a.threads)
    print(f"images {a.limit}  batch {a.batch}  threads {a.threads}")
    print(f"cnnlens  {c:8.2f} s  {a.limit / c:8.0f} images/s")
    print(f"pytorch  {t:8.2f} s  {a.limit / t:8.0f} images/s  (torch {torch.__version__})")
    print(f"ratio cnnlens/pytorch {c / t:.2f}  (goal <= 1.00)")


if __name__ == "__main__":
    main()
