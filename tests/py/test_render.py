"""Rendering against pytorch-grad-cam's and OpenCV's own arithmetic
(scale_cam_image, show_cam_on_image, deprocess_image, cv2.applyColorMap,
cv2.resize), through the hidden `cnnlens vis-probe` renderers."""
import os
import subprocess

import cv2
import numpy as np
import pytest

SOURCE = os.environ.get("CNNLENS_SOURCE", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
CAT = os.path.join(SOURCE, "notebooks", "images", "chelsea.jpg")


def run(bin_, *args):
    r = subprocess.run([bin_, "vis-probe", *map(str, args)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return dict((k, v) for k, _, v in (line.partition(" ") for line in r.stdout.splitlines()))


def save(tmp_path, name, a):
    p = str(tmp_path / name)
    np.save(p, np.ascontiguousarray(a, dtype=np.float32))
    return p


def read_rgb(path):
    im = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    assert im is not None, path
    return im[:, :, ::-1] if im.ndim == 3 else im


# pytorch-grad-cam (utils/image.py and base_cam.py), as published.
def scale_cam_image(cam, target_size=None):
    result = []
    for img in cam:
        img = img - np.min(img)
        img = img / (1e-7 + np.max(img))
        if target_size is not None:
            img = cv2.resize(img, target_size)
        result.append(img)
    return np.float32(result)


def show_cam_on_image(img, mask, use_rgb=False, colormap=cv2.COLORMAP_JET, image_weight=0.5):
    heatmap = cv2.applyColorMap(np.uint8(255 * mask), colormap)
    if use_rgb:
        heatmap = cv2.cvtColor(heatmap, cv2.COLOR_BGR2RGB)
    heatmap = np.float32(heatmap) / 255
    cam = (1 - image_weight) * heatmap + image_weight * img
    cam = cam / np.max(cam)
    return np.uint8(255 * cam)


def deprocess_image(img):
    img = img - np.mean(img)
    img = img / (np.std(img) + 1e-5)
    img = img * 0.1
    img = img + 0.5
    img = np.clip(img, 0, 1)
    return np.uint8(img * 255)


def cat224():
    """The course photo as the lecture feeds it: resize 224, centre crop, [0,1]."""
    bgr = cv2.imread(CAT)
    h, w = bgr.shape[:2]
    s = 224 / min(h, w)
    bgr = cv2.resize(bgr, (round(w * s), round(h * s)), interpolation=cv2.INTER_LINEAR)
    y, x = (bgr.shape[0] - 224) // 2, (bgr.shape[1] - 224) // 2
    return np.float32(bgr[y : y + 224, x : x + 224, ::-1]) / 255  # RGB, HWC


@pytest.mark.parametrize("src,size", [((7, 7), (420, 420)), ((12, 12), (420, 420)), ((13, 13), (224, 224)),
                                      ((11, 11), (28, 28)), ((7, 9), (300, 200))])
def test_cam_resize_is_pytorch_grad_cams_map(cnnlens_bin, tmp_path, src, size):
    rng = np.random.default_rng(sum(src))
    cam = np.maximum(rng.normal(size=src), 0).astype(np.float32)
    want = scale_cam_image(scale_cam_image(cam[None], (size[1], size[0])))[0]
    run(cnnlens_bin, "cam-resize", "--cam", save(tmp_path, "c.npy", cam), "--size", f"{size[0]}x{size[1]}",
        "--out", tmp_path / "up.npy")
    got = np.load(tmp_path / "up.npy")
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-3
    assert got.min() == 0 and abs(got.max() - 1) < 1e-6


@pytest.mark.parametrize("size", [420, 224])
def test_overlay_within_one_grey_level_of_show_cam_on_image(cnnlens_bin, tmp_path, size):
    """The slide's pipeline: a 12x12 map over the 224 cat, shown at 420."""
    rng = np.random.default_rng(size)
    cam = np.maximum(rng.normal(size=(12, 12)), 0).astype(np.float32)
    img = cat224()
    mask = scale_cam_image(scale_cam_image(cam[None], (size, size)))[0]
    big = np.clip(cv2.resize(img, (size, size)), 0, 1)
    want = show_cam_on_image(big, mask, use_rgb=True)
    out = tmp_path / "o.png"
    info = run(cnnlens_bin, "overlay", "--cam", save(tmp_path, "c.npy", cam),
               "--image", save(tmp_path, "i.npy", img.transpose(2, 0, 1)), "--size", size, "--out", out)
    got = read_rgb(str(out))
    assert got.shape == want.shape
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1, diff.max()
    assert (diff > 0).mean() < 0.01
    assert int(info["png_bytes"]) == os.path.getsize(out)
    if size == 420:
        assert os.path.getsize(out) < 400_000


def test_overlay_png_of_a_noisy_photo_stays_small(cnnlens_bin, tmp_path):
    """Worst case for the encoder: a 224 image of pure noise shown at 420."""
    rng = np.random.default_rng(0)
    img = rng.random((3, 224, 224), dtype=np.float32)
    cam = rng.random((7, 7), dtype=np.float32)
    out = tmp_path / "o.png"
    run(cnnlens_bin, "overlay", "--cam", save(tmp_path, "c.npy", cam), "--image", save(tmp_path, "i.npy", img),
        "--size", 420, "--out", out)
    assert os.path.getsize(out) < 400_000


def test_guided_display_is_deprocess_image(cnnlens_bin, tmp_path):
    rng = np.random.default_rng(3)
    g = (rng.normal(size=(3, 224, 224)) * 1e-3).astype(np.float32)
    out = tmp_path / "g.png"
    run(cnnlens_bin, "guided-display", "--input", save(tmp_path, "g.npy", g), "--out", out)
    want = deprocess_image(g.transpose(1, 2, 0))
    diff = np.abs(read_rgb(str(out)).astype(int) - want.astype(int))
    assert diff.max() <= 1


def test_jet_colour_map_is_opencvs(cnnlens_bin, tmp_path):
    m = np.linspace(0, 1, 256 * 4, dtype=np.float32).reshape(32, 32)
    out = tmp_path / "j.png"
    run(cnnlens_bin, "colorize", "--input", save(tmp_path, "m.npy", m), "--cmap", "jet", "--out", out)
    want = cv2.applyColorMap(np.uint8(255 * m), cv2.COLORMAP_JET)[:, :, ::-1]
    assert np.array_equal(read_rgb(str(out)), want)


def test_grey_and_diverging_maps(cnnlens_bin, tmp_path):
    m = np.array([[0.0, 0.25, 1.0]], np.float32)
    run(cnnlens_bin, "colorize", "--input", save(tmp_path, "m.npy", m), "--cmap", "grey", "--out", tmp_path / "g.png")
    assert read_rgb(str(tmp_path / "g.png")).tolist() == [[0, 63, 255]]
    d = np.array([[-2.0, 0.0, 2.0]], np.float32)
    run(cnnlens_bin, "colorize", "--input", save(tmp_path, "d.npy", d), "--cmap", "diverging", "--out", tmp_path / "d.png")
    assert read_rgb(str(tmp_path / "d.png")).tolist() == [[[0, 0, 255], [255, 255, 255], [255, 0, 0]]]


def test_first_layer_filters_as_colour_grid_with_html(cnnlens_bin, tmp_path):
    rng = np.random.default_rng(5)
    w = rng.normal(size=(64, 3, 11, 11)).astype(np.float32)  # AlexNet's conv1
    out = tmp_path / "w.png"
    info = run(cnnlens_bin, "weights", "--input", save(tmp_path, "w.npy", w), "--out", out)
    assert info["tiles"] == "64"
    grid = read_rgb(str(out))
    assert grid.ndim == 3 and grid.shape[2] == 3
    # Tile 0 is filter 0 min-max scaled on its own, enlarged 6x (11 -> 66 >= 64).
    f = w[0].transpose(1, 2, 0)
    want = np.clip((f - f.min()) * (255 / (f.max() - f.min())), 0, 255).astype(np.uint8)
    tile = grid[4 : 4 + 66 : 6, 4 : 4 + 66 : 6]
    assert np.abs(tile.astype(int) - want.astype(int)).max() <= 1
    html = open(str(out) + ".html").read()
    assert html.count("data:image/png;base64,") == 64
    assert ">f63<" in html


def test_fourteen_feature_maps_grid_is_small(cnnlens_bin, tmp_path):
    rng = np.random.default_rng(6)
    a = rng.normal(size=(1, 50, 11, 11)).astype(np.float32)  # the slide's 11x11 maps
    out = tmp_path / "a.png"
    info = run(cnnlens_bin, "activations", "--input", save(tmp_path, "a.npy", a), "--units", "0..13",
               "--shared", 1, "--out", out)
    assert info["tiles"] == "14"
    assert os.path.getsize(out) < 1_000_000
    html = open(str(out) + ".html").read()
    assert html.count("<figure") == 14 and "ch 13" in html


def test_fourteen_imagenet_sized_tiles_stay_under_a_megabyte(cnnlens_bin, tmp_path):
    """14 images of 224x224 (photo plus noise, as a maximisation gives) shrink
    to 160 px tiles: a grid for the notebook, not a poster."""
    img = cat224().transpose(2, 0, 1)
    rng = np.random.default_rng(0)
    tiles = np.stack([np.roll(img, 16 * i, axis=2) + rng.normal(0, 0.1, img.shape) for i in range(14)])
    out = tmp_path / "t.png"
    info = run(cnnlens_bin, "tiles", "--input", save(tmp_path, "t.npy", tiles), "--out", out)
    assert os.path.getsize(out) < 1_000_000
    assert int(info["width"]) == 4 * (160 + 4) + 4
