"""PyTorch's side of the comparisons, shared by the pytest suites and the
benchmarks in bench/ (which put this folder on sys.path): the lecture CNN and
safetensors files read and written by hand (the safetensors package is not
installed).  It lives with the tests because the tests are what checks it
against the engine; a benchmark then times the very model the tests compare."""
import json
import os
import struct

import numpy as np
import torch
import torch.nn as nn


# Under valgrind (conftest.py sets CNNLENS_UNDER_VALGRIND) memcheck runs the
# engine's arithmetic 50-100 times slower: the suites that push ImageNet-sized
# inputs through the zoo use SIDE = 64 there instead of 224 -- the same code
# paths and tolerances on a twelfth of the work (release and ASan keep 224).
UNDER_VALGRIND = bool(os.environ.get("CNNLENS_UNDER_VALGRIND"))
SIDE = 64 if UNDER_VALGRIND else 224


class Lecture(nn.Module):
    """The lecture CNN with the state_dict keys and layer names of the zoo's
    'fashion' (the convs stay linear, as on the slides).  Pooling, flattening
    and the ReLU are modules, so hooks and module swaps can reach them."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 25, 3)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(25, 50, 3)
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.dense1 = nn.Linear(1250, 100)
        self.relu = nn.ReLU()
        self.output = nn.Linear(100, 10)

    def forward(self, x):
        x = self.pool2(self.conv2(self.pool1(self.conv1(x))))
        return self.output(self.relu(self.dense1(self.flatten(x))))


def save_safetensors(state, path):
    """safetensors by hand: u64 LE header length, JSON header (padded to 8
    bytes), raw data; every tensor as F32 (integer buffers such as
    num_batches_tracked too)."""
    header, blobs, off = {}, [], 0
    for k, v in state.items():
        b = v.detach().cpu().float().contiguous().numpy().astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load_safetensors(path):
    """name -> tensor of an all-F32 safetensors file (the engine writes F32)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for k, e in header.items():
        if k == "__metadata__":
            continue
        assert e["dtype"] == "F32", (k, e["dtype"])
        a, b = e["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(raw[8 + n + a : 8 + n + b], "<f4").reshape(e["shape"]).copy())
    return out
