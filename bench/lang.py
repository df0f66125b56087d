#!/usr/bin/env python3
"""Interpreter time of an ordinary lens cell (ten commands, no heavy engine
work), measured inside cnnlens with `cnnlens run --time` over many copies of
the cell in one notebook, so that process start-up is not counted.

    /usr/bin/python3 bench/lang.py [path/to/cnnlens] [--cells N]

Prints the median, the 90th percentile and the best time per cell; the target
is under 1 ms."""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

CELL = """\
img = [1 0 0 0 0 1; 0 1 0 0 1 0; 0 0 1 1 0 0; 1 0 0 0 1 0; 0 1 0 0 1 0; 0 0 1 0 1 0]
f = [-1 1 -1; -1 1 -1; -1 1 -1]
m = conv img f
s = sum m
p = pool m size 2
r = relu m
expect s == -12
x = m[0..1, 2..3] * 2 + 1
print "sum" s (max m)
conv img f stride 2 pad 1"""


def main():
    args = sys.argv[1:]
    cells = 500
    if "--cells" in args:
        i = args.index("--cells")
        cells = int(args[i + 1])
        del args[i:i + 2]
    here = os.path.dirname(os.path.abspath(__file__))
    binary = args[0] if args else os.path.join(here, "..", "build", "cnnlens")
    nb = {
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "outputs": [],
                   "execution_count": None, "source": CELL} for i in range(cells)],
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.ipynb")
        with open(path, "w") as f:
            json.dump(nb, f)
        r = subprocess.run([binary, "run", path, "--time"], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"cnnlens run failed:\n{r.stderr}")
    ms = [float(x) for x in re.findall(r"cell \d+: ([0-9.]+) ms", r.stderr)]
    assert len(ms) == cells, r.stderr[:500]
    ms.sort()
    print(f"lens cell of {CELL.count(chr(10)) + 1} commands, {cells} runs: "
          f"median {statistics.median(ms):.3f} ms, p90 {ms[int(0.9 * len(ms))]:.3f} ms, "
          f"best {ms[0]:.3f} ms (target < 1 ms)")


if __name__ == "__main__":
    main()
