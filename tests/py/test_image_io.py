"""Image decoding, resizing, cropping and normalisation in cnnlens, compared
with OpenCV (cv2.imread, cv2.resize INTER_LINEAR on float32) and torchvision
transforms, on photo-like images of odd sizes.  Driven through the hidden
`cnnlens io-probe image IN OUT.npy [STEP]...`."""
import subprocess

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms


def probe(bin_, *args, check=True):
    r = subprocess.run([bin_, "io-probe", *map(str, args)], capture_output=True, text=True)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def photo(h, w, channels=3, seed=0):
    """Smooth gradients and blobs plus sensor-like noise, uint8 HxWxC (BGR for cv2)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for c in range(channels):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (0.3 * max(h, w)) ** 2))
        ramp = (x * rng.uniform(-1, 1) / w + y * rng.uniform(-1, 1) / h)
        planes.append(128 + 90 * blob + 60 * ramp + rng.normal(0, 12, (h, w)))
    img = np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8)
    return img[:, :, 0] if channels == 1 else img


def load(bin_, path, tmp_path, *steps):
    out = tmp_path / "out.npy"
    probe(bin_, "image", path, out, *steps)
    return np.load(out)


def cv2_rgb01(path):
    """cv2.imread as (C,H,W) float in [0,1], RGB."""
    im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    scale = 65535.0 if im.dtype == np.uint16 else 255.0
    if im.ndim == 2:
        return (im[None] / scale).astype(np.float32)
    im = im[:, :, :3][:, :, ::-1]
    return (im.transpose(2, 0, 1) / scale).astype(np.float32)


@pytest.fixture(scope="module")
def pics(tmp_path_factory):
    d = tmp_path_factory.mktemp("pics")
    p = {}
    p["rgb"] = d / "rgb.png"
    cv2.imwrite(str(p["rgb"]), photo(301, 457, seed=1))
    p["tall"] = d / "tall.png"
    cv2.imwrite(str(p["tall"]), photo(517, 389, seed=2))
    p["grey"] = d / "grey.png"
    cv2.imwrite(str(p["grey"]), photo(123, 211, 1, seed=3))
    rgba = np.dstack([photo(99, 77, seed=4), photo(99, 77, 1, seed=5)])
    p["rgba"] = d / "rgba.png"
    cv2.imwrite(str(p["rgba"]), rgba)
    p["rgb16"] = d / "rgb16.png"
    cv2.imwrite(str(p["rgb16"]), photo(45, 67, seed=6).astype(np.uint16) * 257 + 3)
    p["grey16"] = d / "grey16.png"
    cv2.imwrite(str(p["grey16"]), photo(31, 29, 1, seed=7).astype(np.uint16) * 200)
    p["palette"] = d / "palette.png"
    Image.fromarray(photo(64, 81, seed=8)[:, :, ::-1]).convert("P", palette=Image.ADAPTIVE,
                                                               colors=50).save(p["palette"])
    p["grey1bit"] = d / "bits.png"
    Image.fromarray(photo(40, 50, 1, seed=9) > 128).save(p["grey1bit"])
    p["interlaced"] = d / "interlaced.png"
    Image.fromarray(photo(57, 63, seed=10)).save(p["interlaced"], interlace=1)
    p["jpg"] = d / "photo.jpg"
    cv2.imwrite(str(p["jpg"]), photo(333, 499, seed=11), [cv2.IMWRITE_JPEG_QUALITY, 90])
    p["jpg_grey"] = d / "grey.jpg"
    cv2.imwrite(str(p["jpg_grey"]), photo(101, 103, 1, seed=12))
    p["jpg_prog"] = d / "progressive.jpg"
    Image.fromarray(photo(121, 161, seed=13)).save(p["jpg_prog"], progressive=True, quality=80)
    return p


@pytest.mark.parametrize("name", ["rgb", "tall", "grey", "rgba", "rgb16", "grey16", "interlaced"])
def test_png_decode_matches_cv2(cnnlens_bin, tmp_path, pics, name):
    got = load(cnnlens_bin, pics[name], tmp_path)
    want = cv2_rgb01(pics[name])
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-7


def test_png_palette_and_1bit_match_pil(cnnlens_bin, tmp_path, pics):
    got = load(cnnlens_bin, pics["palette"], tmp_path)
    want = np.asarray(Image.open(pics["palette"]).convert("RGB")).transpose(2, 0, 1) / 255.0
    assert got.shape == want.shape and np.abs(got - want).max() <= 1e-7
    got = load(cnnlens_bin, pics["grey1bit"], tmp_path)
    want = np.asarray(Image.open(pics["grey1bit"]).convert("L"))[None] / 255.0
    assert got.shape == want.shape and np.abs(got - want).max() <= 1e-7


@pytest.mark.parametrize("name", ["jpg", "jpg_grey", "jpg_prog"])
def test_jpeg_decode_within_one_grey_level_of_cv2(cnnlens_bin, tmp_path, pics, name):
    got = load(cnnlens_bin, pics[name], tmp_path)
    want = cv2_rgb01(pics[name])
    assert got.shape == want.shape
    diff = np.abs(got - want).max() * 255
    print(f"{name}: max |cnnlens - cv2| = {diff:.3f} grey levels")
    assert diff <= 1.0 + 1e-4


@pytest.mark.parametrize("size", [(224, 224), (150, 97), (600, 913), (301, 228), (1, 1),
                                  (300, 457), (301, 456)])
def test_resize_matches_cv2_inter_linear_float32(cnnlens_bin, tmp_path, pics, size):
    h, w = size
    got = load(cnnlens_bin, pics["rgb"], tmp_path, "resize", h, w)
    src = np.ascontiguousarray(cv2_rgb01(pics["rgb"]).transpose(1, 2, 0))
    want = cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, 3)
    want = want.transpose(2, 0, 1)
    err = np.abs(got - want).max()
    print(f"resize 301x457 -> {h}x{w}: max |cnnlens - cv2| = {err:.2e}")
    assert got.shape == want.shape and err <= 1e-6


def test_resize_halving_matches_cv2(cnnlens_bin, tmp_path, pics):
    """cv2 switches to INTER_AREA for an exact 2x reduction; same values."""
    got = load(cnnlens_bin, pics["tall"], tmp_path, "crop", 516, 388, "resize", 258, 194)
    src = cv2_rgb01(pics["tall"])[:, :516, :388]
    src = np.ascontiguousarray(src.transpose(1, 2, 0))
    want = cv2.resize(src, (194, 258), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
    assert np.abs(got - want).max() <= 1e-6


def tv_tensor(path):
    return transforms.ToTensor()(Image.open(path).convert("RGB"))


@pytest.mark.parametrize("name", ["rgb", "tall", "jpg"])
@pytest.mark.parametrize("size", [256, 224, 100])
def test_resize_short_matches_torchvision(cnnlens_bin, tmp_path, pics, name, size):
    got = load(cnnlens_bin, pics[name], tmp_path, "resize-short", size)
    want = transforms.Resize(size, antialias=False)(tv_tensor(pics[name])).numpy()
    assert got.shape == want.shape
    # PyTorch computes the source position in float32, OpenCV (and cnnlens) in
    # double: the taps differ in the last bits.
    err = np.abs(got - want).max()
    print(f"resize-short {size} of {name}: max |cnnlens - torchvision| = {err:.2e}")
    assert err <= 2e-5


@pytest.mark.parametrize("crop", [(224, 224), (100, 301), (300, 456), (1, 1), (400, 500),
                                  (301, 460), (2, 3)])
def test_center_crop_matches_torchvision(cnnlens_bin, tmp_path, pics, crop):
    got = load(cnnlens_bin, pics["rgb"], tmp_path, "crop", *crop)
    want = transforms.CenterCrop(crop)(tv_tensor(pics["rgb"])).numpy()
    assert got.shape == want.shape
    assert np.array_equal(got, want)


def test_crop_rounds_half_to_even_like_python(cnnlens_bin, tmp_path, pics):
    # (301 - 298) / 2 = 1.5 -> 2 and (457 - 452) / 2 = 2.5 -> 2 in Python.
    got = load(cnnlens_bin, pics["rgb"], tmp_path, "crop", 298, 452)
    full = cv2_rgb01(pics["rgb"])
    assert np.array_equal(got, full[:, 2:300, 2:454])


@pytest.mark.parametrize("name", ["rgb", "tall", "jpg", "grey"])
def test_imagenet_preset_matches_torchvision(cnnlens_bin, tmp_path, pics, name):
    got = load(cnnlens_bin, pics[name], tmp_path, "preprocess", "imagenet")
    tf = transforms.Compose([
        transforms.Resize(256, antialias=False), transforms.CenterCrop(224),
        transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    want = tf(tv_tensor(pics[name])).numpy()
    assert got.shape == (3, 224, 224)
    err = np.abs(got - want).max()
    print(f"imagenet preset of {name}: max |cnnlens - torchvision| = {err:.2e}")
    assert err <= 1e-4


@pytest.mark.parametrize("name", ["rgb", "tall"])
def test_half_preset_matches_the_course_notebook(cnnlens_bin, tmp_path, pics, name):
    got = load(cnnlens_bin, pics[name], tmp_path, "preprocess", "half")
    tf = transforms.Compose([
        transforms.Resize(224, antialias=False), transforms.CenterCrop(224),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    want = tf(tv_tensor(pics[name])).numpy()
    assert got.shape == (3, 224, 224)
    err = np.abs(got - want).max()
    print(f"half preset of {name}: max |cnnlens - torchvision| = {err:.2e}")
    assert err <= 1e-4


def test_normalize_steps(cnnlens_bin, tmp_path, pics):
    base = load(cnnlens_bin, pics["rgb"], tmp_path)
    got = load(cnnlens_bin, pics["rgb"], tmp_path, "normalize", "imagenet")
    want = transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))(
        torch.from_numpy(base)).numpy()
    assert np.abs(got - want).max() <= 1e-6
    got = load(cnnlens_bin, pics["grey"], tmp_path, "normalize", "half")
    assert np.abs(got - (cv2_rgb01(pics["grey"]) - 0.5) / 0.5).max() <= 1e-6
    r = probe(cnnlens_bin, "image", pics["grey"], tmp_path / "x.npy", "normalize", "imagenet",
              check=False)
    assert r.returncode == 1 and "3 channels" in r.stderr


def test_bad_images_are_refused(cnnlens_bin, tmp_path, pics):
    cases = {}
    png = pics["rgb"].read_bytes()
    jpg = pics["jpg"].read_bytes()
    cases["cut.png"] = (png[: len(png) // 2], "PNG")
    cases["cut.jpg"] = (jpg[: len(jpg) // 2], "truncated")
    cases["noise.png"] = (png[:8] + bytes(range(256)) * 4, "PNG")
    cases["text.png"] = (b"this is not an image at all", "not a PNG or JPEG")
    cases["empty.jpg"] = (b"", "not a PNG or JPEG")
    for name, (data, needle) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        r = probe(cnnlens_bin, "image", path, tmp_path / "o.npy", check=False)
        assert r.returncode == 1, name
        assert needle in r.stderr, (name, r.stderr)
