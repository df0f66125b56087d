#!/usr/bin/env python3
"""Builds notebooks/*.ipynb from notebooks/src/*.md.

A source is Markdown; every ```lens fenced block becomes a code cell, the text
between them Markdown cells.  The .ipynb files are what students open; the .md
sources keep the lecture text reviewable in a diff.  Uses only the standard
library: `python3 notebooks/tools/build.py` (or --check to fail when an .ipynb
is out of date).
"""
import hashlib
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
NB_DIR = os.path.dirname(HERE)
SRC_DIR = os.path.join(NB_DIR, "src")

FENCE = re.compile(r"^```lens[ \t]*\n(.*?)^```[ \t]*$\n?", re.S | re.M)


def cell_id(name, i):
    return hashlib.sha1(f"{name}:{i}".encode()).hexdigest()[:12]


def lines(text):
    out = text.splitlines(keepends=True)
    if out and out[-1].endswith("\n"):
        out[-1] = out[-1][:-1]
    return out


def build(src_path):
    name = os.path.splitext(os.path.basename(src_path))[0]
    text = open(src_path, encoding="utf-8").read()
    cells, pos = [], 0
    for m in FENCE.finditer(text):
        md = text[pos:m.start()].strip("\n")
        if md.strip():
            cells.append({"cell_type": "markdown", "metadata": {}, "source": lines(md)})
        cells.append({"cell_type": "code", "execution_count": None, "metadata": {},
                      "outputs": [], "source": lines(m.group(1).rstrip("\n"))})
        pos = m.end()
    md = text[pos:].strip("\n")
    if md.strip():
        cells.append({"cell_type": "markdown", "metadata": {}, "source": lines(md)})
    for i, c in enumerate(cells):
        c["id"] = cell_id(name, i)
    nb = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "CNN Lens", "language": "lens", "name": "cnnlens"},
            "language_info": {"name": "lens", "file_extension": ".lens",
                              "mimetype": "text/x-lens", "codemirror_mode": "shell"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return name, json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main():
    check = "--check" in sys.argv
    stale = []
    for fn in sorted(os.listdir(SRC_DIR)):
        if not fn.endswith(".md"):
            continue
        name, out = build(os.path.join(SRC_DIR, fn))
        dst = os.path.join(NB_DIR, name + ".ipynb")
        old = open(dst, encoding="utf-8").read() if os.path.exists(dst) else None
        if old == out:
            continue
        if check:
            stale.append(dst)
        else:
            with open(dst, "w", encoding="utf-8") as f:
                f.write(out)
            print("wrote", dst)
    if stale:
        print("out of date (run notebooks/tools/build.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
