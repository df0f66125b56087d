#!/usr/bin/python3
"""Writes the seed corpora of fuzz/corpus/<target>/: small real files made with
numpy, cv2 and torch, wire frames signed with the fuzz key, and lens cells
taken from the notebooks and the tests.  Run with Debian's python3 (it has
torch, cv2 and numpy):  /usr/bin/python3 fuzz/make_corpus.py
The output is committed; rerunning rewrites it (file names are stable)."""
import collections
import gzip
import hashlib
import hmac
import io
import json
import os
import re
import struct
import sys

import cv2
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KEY = b"cnnlens-fuzz-key"  # fuzz_wire.c's FZ_KEY
SEP = b"\x1e"
rng = np.random.default_rng(7)


def out(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def images():
    grey = rng.integers(0, 256, (7, 5), dtype=np.uint8)
    rgb = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (4, 4, 4), dtype=np.uint8)
    g16 = rng.integers(0, 65536, (3, 5), dtype=np.uint16)
    for name, img in [("grey", grey), ("rgb", rgb), ("rgba", rgba), ("grey16", g16)]:
        ok, buf = cv2.imencode(".png", img)
        out("png", name + ".png", buf.tobytes())
    # palette and 1-bit grey, as PIL-free hand-made chunks
    out("png", "palette.png", png_chunks(2, 2, 8, 3, b"\x00\x00\x01\x00\x01\x00",
                                         plte=b"\xff\x00\x00\x00\xff\x00"))
    out("png", "grey1bit.png", png_chunks(8, 2, 1, 0, b"\x00\xa5\x00\x5a"))
    for name, img in [("grey", grey), ("rgb", rgb)]:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
        out("jpeg", name + ".jpg", buf.tobytes())
    ok, buf = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    out("jpeg", "progressive.jpg", buf.tobytes())
    with open(os.path.join(ROOT, "tests", "data", "photo.jpg"), "rb") as f:
        out("jpeg", "photo.jpg", f.read())


def png_chunks(w, h, depth, ctype, raw, plte=None):
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    s = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
    if plte:
        s += chunk(b"PLTE", plte)
    return s + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def npys():
    arrays = {
        "f32_chw": rng.standard_normal((3, 4, 5)).astype(np.float32),
        "f64": rng.standard_normal((2, 3)),
        "f16": rng.standard_normal((5,)).astype(np.float16),
        "u8": rng.integers(0, 256, (2, 2, 2), dtype=np.uint8),
        "i64_be": rng.integers(-9, 9, (3,)).astype(">i8"),
        "bool": np.array([True, False, True]),
        "scalar": np.float32(2.5),
        "fortran": np.asfortranarray(rng.standard_normal((2, 3)).astype(np.float32)),
    }
    for name, a in arrays.items():
        b = io.BytesIO()
        np.save(b, a)
        out("npy", name + ".npy", b.getvalue())


def idxs():
    imgs = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    labels = np.array([1, 7, 3], dtype=np.uint8)
    for name, a in [("images", imgs), ("labels", labels)]:
        data = b"\0\0\x08" + bytes([a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape)
        data += a.tobytes()
        out("idx", name + ".idx", data)
        out("idx", name + ".idx.gz", gzip.compress(data, mtime=0))


def state_dict():
    sd = collections.OrderedDict()
    torch.manual_seed(0)
    sd["conv.weight"] = torch.randn(2, 1, 3, 3)
    sd["conv.bias"] = torch.randn(2)
    sd["bn.num_batches_tracked"] = torch.tensor(3)
    sd["half"] = torch.randn(2, 2).half()
    sd["strided"] = torch.randn(3, 4).t()  # non-contiguous
    sd["view"] = torch.randn(10)[2:6]  # storage offset
    return sd


def weights():
    sd = state_dict()
    b = io.BytesIO()
    torch.save(sd, b)
    out("pth", "zip.pth", b.getvalue())
    b = io.BytesIO()
    torch.save({"state_dict": sd}, b, _use_new_zipfile_serialization=False)
    out("pth", "legacy_wrapped.pth", b.getvalue())
    b = io.BytesIO()
    torch.save(sd, b, _use_new_zipfile_serialization=False)
    legacy = b.getvalue()
    out("pth", "legacy.pth", legacy)
    param = collections.OrderedDict(w=torch.nn.Parameter(torch.randn(2, 2)))
    b = io.BytesIO()
    torch.save(param, b)
    out("pth", "parameter.pth", b.getvalue())
    for name in ["tiny.pth", "tiny_deflated.pth", "tiny_legacy.pth"]:
        with open(os.path.join(ROOT, "tests", "data", name), "rb") as f:
            out("pth", "tests_" + name, f.read())
    # the pickle target gets the raw pickles: the zip's data.pkl and the
    # legacy stream (several pickles in a row)
    import zipfile

    with zipfile.ZipFile(io.BytesIO(open(os.path.join(HERE, "corpus", "pth", "zip.pth"), "rb").read())) as z:
        pkl = [n for n in z.namelist() if n.endswith("data.pkl")][0]
        out("pickle", "data.pkl", z.read(pkl))
    out("pickle", "legacy_stream.pkl", legacy[: legacy.rfind(b"\x80\x02")])
    out("pickle", "os_system.pkl", b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.")
    # safetensors, written by hand (the format is tiny; no extra package)
    tensors = [("a", "F32", np.float32, (2, 3)), ("b", "F16", np.float16, (4,)),
               ("c", "BF16", None, (2,)), ("d", "I64", np.int64, (1, 2)), ("e", "U8", np.uint8, (3,))]
    header, blob = {"__metadata__": {"format": "pt"}}, b""
    for name, dt, npt, shape in tensors:
        if npt is None:
            raw = (np.arange(2, dtype=np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        else:
            raw = rng.standard_normal(shape).astype(npt).tobytes() if npt in (np.float32, np.float16) \
                else np.arange(int(np.prod(shape)), dtype=npt).tobytes()
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    out("safetensors", "mixed.safetensors", struct.pack("<Q", len(h)) + h + blob)
    h = b"{}"
    out("safetensors", "empty.safetensors", struct.pack("<Q", len(h)) + h)
    with open(os.path.join(ROOT, "models", "fashion.safetensors"), "rb") as f:
        data = f.read()
    if len(data) < 64 << 10:
        out("safetensors", "fashion.safetensors", data)


def message(msg_type, content, parent=None, buffers=()):
    header = {"msg_id": hashlib.md5(json.dumps([msg_type, content]).encode()).hexdigest(),
              "session": "s1", "username": "student", "date": "2026-11-27T21:05:00.123456Z",
              "msg_type": msg_type, "version": "5.3"}
    parts = [json.dumps(x, separators=(",", ":")).encode() for x in (header, parent or {}, {}, content)]
    sig = hmac.new(KEY, b"".join(parts), hashlib.sha256).hexdigest().encode()
    return header, parts, sig, list(buffers)


def wire_and_msg():
    reqs = [
        ("execute_request", {"code": "x = [1 2; 3 4]\nprint x", "silent": False, "store_history": True,
                             "user_expressions": {"a": "x"}, "allow_stdin": False, "stop_on_error": True}),
        ("kernel_info_request", {}),
        ("complete_request", {"code": "show gradcam x la", "cursor_pos": 17}),
        ("complete_request", {"code": "image \"no", "cursor_pos": 9}),
        ("inspect_request", {"code": "gradcam", "cursor_pos": 3, "detail_level": 0}),
        ("is_complete_request", {"code": "m = [1 2\n"}),
        ("history_request", {"hist_access_type": "tail", "n": 2, "output": True, "raw": True}),
        ("history_request", {"hist_access_type": "search", "pattern": "x*", "unique": True, "n": 5}),
        ("history_request", {"hist_access_type": "range", "session": 0, "start": 1, "stop": 3}),
        ("comm_open", {"comm_id": "c1", "target_name": "t", "data": {}}),
        ("shutdown_request", {"restart": True}),
        ("interrupt_request", {}),
    ]
    for i, (t, c) in enumerate(reqs):
        header, parts, sig, bufs = message(t, c, buffers=[b"\x00\x01buffer"] if i == 0 else [])
        for mode in (1, 2):
            frames = [b"client-id", b"<IDS|MSG>", sig] + parts + bufs
            out("wire", "%s_%d_mode%d" % (t, i, mode), bytes([mode]) + SEP.join(frames))
        out("msg", "%s_%d" % (t, i), parts[0] + SEP + parts[3])
    _, parts, sig, _ = message("execute_request", {"code": "1"})
    out("wire", "unsigned_mode0", b"\x00" + SEP.join([b"<IDS|MSG>", b""] + parts))
    out("wire", "bad_sig_mode1", b"\x01" + SEP.join([b"<IDS|MSG>", b"0" * 64] + parts))
    conn = {"shell_port": 5001, "iopub_port": 5002, "stdin_port": 5003, "control_port": 5004,
            "hb_port": 5005, "ip": "127.0.0.1", "key": "a0436f6c-1916-498b-8eb9-e81ab9368e84",
            "transport": "tcp", "signature_scheme": "hmac-sha256", "kernel_name": "cnnlens"}
    out("msg", "connection_file", json.dumps(conn).encode())


def cells():
    seen = set()

    def add(src):
        src = src.strip()
        if not src or src in seen or "save" in src or len(src) > 4000:
            return
        seen.add(src)
        out("lens", "cell_%03d.lens" % len(seen), src.encode())

    nbdir = os.path.join(ROOT, "notebooks")
    for name in sorted(os.listdir(nbdir)):
        if name.endswith(".ipynb"):
            nb = json.load(open(os.path.join(nbdir, name)))
            for c in nb["cells"]:
                if c["cell_type"] == "code":
                    add("".join(c["source"]))
    # cells that need a model and an image get them (the session is cleared
    # between inputs), and each notebook also becomes one long cell
    setup = "m = model fashion\nx = sample fashion test 17\n"
    for verb in ["gradcam x", "show gradcam x over x", "guided x", "guidedcam x", "saliency x",
                 "smoothgrad x samples 3", "intgrad x steps 4", "occlusion x window 14 stride 7",
                 "weights conv1", "activations x conv1 channel 0..3", "predict x top 3",
                 "maximize conv2 filter 0..1 steps 3", "fool class 3 steps 3", "layers m",
                 "compare x m m", "gradients x layer conv2", "evaluate m on fashion test limit 64",
                 "train m on fashion epochs 1 limit 64 batch 32"]:
        add(setup + verb)
    for name in sorted(os.listdir(nbdir)):
        if name.endswith(".ipynb"):
            nb = json.load(open(os.path.join(nbdir, name)))
            lines = [l for c in nb["cells"] if c["cell_type"] == "code"
                     for l in "".join(c["source"]).splitlines() if "save" not in l]
            whole = "\n".join(lines)[:4000]
            add(whole[: whole.rfind("\n")] if len(whole) == 4000 else whole)
    # string literals of cells in the lens unit tests
    for name in ["test_lang_eval.c", "test_lang_lex.c", "test_lang_interp.c"]:
        text = open(os.path.join(ROOT, "tests", "unit", name)).read()
        for m in re.finditer(r'(?:exec_ok|run|eval_ok|ok|fails|err|lex)\w*\(\s*"((?:[^"\\]|\\.)*)"', text):
            try:
                add(bytes(m.group(1), "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8"))
            except (UnicodeDecodeError, UnicodeEncodeError):
                pass


if __name__ == "__main__":
    images()
    npys()
    idxs()
    weights()
    wire_and_msg()
    cells()
    print("corpus written to", os.path.join(HERE, "corpus"), file=sys.stderr)
