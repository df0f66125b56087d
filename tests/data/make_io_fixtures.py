"""Regenerates the small fixtures of tests/unit/test_io_pth.c and test_image.c:
    /usr/bin/python3 tests/data/make_io_fixtures.py
tiny.pth (zip), tiny_legacy.pth, tiny_deflated.pth (the same entries
compressed, as a zip tool would rewrite it) and photo.jpg (40x30)."""
import collections
import os
import zipfile

import cv2
import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
sd = collections.OrderedDict()
sd["w"] = torch.arange(6, dtype=torch.float32).view(2, 3)
sd["t"] = torch.arange(12, dtype=torch.float32).view(3, 4).t()[1:, :]  # offset + strides
sd["h"] = torch.tensor([0.5, -2.0], dtype=torch.float16)
sd["n"] = torch.tensor(7, dtype=torch.int64)
torch.save(sd, os.path.join(here, "tiny.pth"))
torch.save(sd, os.path.join(here, "tiny_legacy.pth"), _use_new_zipfile_serialization=False)
with zipfile.ZipFile(os.path.join(here, "tiny.pth")) as src, \
        zipfile.ZipFile(os.path.join(here, "tiny_deflated.pth"), "w", zipfile.ZIP_DEFLATED) as dst:
    for info in src.infolist():
        dst.writestr(info.filename, src.read(info.filename))

rng = np.random.default_rng(0)
y, x = np.mgrid[0:30, 0:40]
img = np.stack([x * 6, y * 8, (x + y) * 3], -1) + rng.normal(0, 10, (30, 40, 3))
cv2.imwrite(os.path.join(here, "photo.jpg"), np.clip(img, 0, 255).astype(np.uint8))
