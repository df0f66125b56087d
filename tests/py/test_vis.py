"""The visualisation methods against PyTorch references written here the way
pytorch-grad-cam and Captum compute them (CONVENTIONS.md): forward hooks on
the target layer, backward() on the raw logit, NumPy float32 arithmetic.

The C side runs through the hidden `cnnlens vis-probe`, on torchvision models
at random init (weights saved as safetensors into a temp folder) and on the
lecture CNN (arch "fashion")."""
import os
import subprocess

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision

from conftest import SLOW
from test_render import scale_cam_image
from torch_ref import SIDE, UNDER_VALGRIND, Lecture, save_safetensors

torch.set_num_threads(2)

LAYER_MODULE = {  # the lecture's layers, and the lecture CNN's
    ("resnet18", "layer4"): lambda m: m.layer4,
    ("alexnet", "features_11"): lambda m: m.features[11],
    ("vgg16", "features_30"): lambda m: m.features[30],
    ("fashion", "conv2"): lambda m: m.conv2,
    ("fashion", "pool1"): lambda m: m.pool1,
}


def make_model(arch, seed=0):
    torch.manual_seed(seed)
    if arch == "fashion":
        m = Lecture()
    else:
        m = getattr(torchvision.models, arch)()
        # Random running statistics, so that folding batch norm is really tested.
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.data.uniform_(0.5, 1.5)
                mod.bias.data.uniform_(-0.2, 0.2)
    return m.eval()


def input_for(arch, n=1, seed=1):
    g = torch.Generator().manual_seed(seed)
    if arch == "fashion":
        return torch.rand(n, 1, 28, 28, generator=g)
    return torch.randn(n, 3, SIDE, SIDE, generator=g)  # 64x64 under valgrind


@pytest.fixture(scope="module")
def models():
    """arch -> (torch model, weights path), built once per module; the weight
    files (VGG16's is 553 MB) are deleted afterwards."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cnnlens-vis-") as root:
        cache = {}

        def get(arch):
            if arch not in cache:
                m = make_model(arch)
                p = os.path.join(root, f"{arch}.safetensors")
                save_safetensors(m.state_dict(), p)
                cache[arch] = (m, p)
            return cache[arch]

        yield get


def probe(bin_, method, tmp_path, arch=None, weights=None, x=None, **opts):
    """Runs `cnnlens vis-probe`; returns (stdout as {key: [values]}, out prefix)."""
    out = str(tmp_path / method.replace("+", "p"))
    cmd = [bin_, "vis-probe", method, "--out", out]
    if arch:
        cmd += ["--arch", arch]
    if weights:
        cmd += ["--weights", weights]
    if x is not None:
        xp = out + "_in.npy"
        np.save(xp, np.ascontiguousarray(x, dtype=np.float32))
        cmd += ["--input", xp]
    for k, v in opts.items():
        cmd += ["--" + k.replace("_", "-") if k == "blur_every" else "--" + k, str(v)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600 * SLOW)
    assert r.returncode == 0, r.stderr
    info = {}
    for line in r.stdout.splitlines():
        k, *v = line.split()
        info[k] = v
    return info, out


def rel_err(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    span = want.max() - want.min()
    return np.abs(got - want).max() / (span if span > 0 else 1.0)


def assert_close_but_for_flips(got, want):
    """Input gradients of deep ReLU nets at random init: a ReLU input or a
    max-pool near-tie within float rounding may go either way (folded batch
    norm and another summation order change the last bits), which sends the
    gradient another way inside that unit's receptive field.  On ResNet18 this
    happens for about one input in three, over a few percent of the pixels.
    So: 95% of the values within 1e-4 of the range, and the whole map within
    5% in L2; a wrong rule or a wrong layer is off everywhere.  (The lecture
    CNN and the CAM tests are held to 1e-4 everywhere.)"""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    err = np.abs(got - want) / (want.max() - want.min())
    l2 = np.linalg.norm(got - want) / np.linalg.norm(want)
    assert np.quantile(err, 0.95) < 1e-4 and l2 < 0.05, (np.quantile(err, 0.95), l2)


# ---- references (pytorch-grad-cam's arithmetic) -------------------------------


def layer_pass(model, module, x, cls=None, need_grad=True):
    """Activations and gradients at `module` for the raw logit, with hooks."""
    store = {}

    def hook(mod, inp, out):
        store["a"] = out
        if need_grad:
            out.register_hook(lambda g: store.__setitem__("g", g))

    h = module.register_forward_hook(hook)
    try:
        out = model(x)
    finally:
        h.remove()
    cls = out.argmax(1).tolist() if cls is None else [cls] * x.shape[0]
    if need_grad:
        model.zero_grad()
        sum(out[i, c] for i, c in enumerate(cls)).backward()
        return store["a"].detach().numpy(), store["g"].numpy(), cls
    return store["a"].detach().numpy(), None, cls


def ref_cam(model, module, x, kind, cls=None):
    """pytorch-grad-cam's BaseCAM.forward for one target layer: the raw cam and
    the map it returns at the input size."""
    if kind == "scorecam":
        with torch.no_grad():
            acts, _, cls = layer_pass(model, module, x, cls, need_grad=False)
            up = torch.nn.UpsamplingBilinear2d(size=x.shape[-2:])(torch.from_numpy(acts))
            flat = up.view(up.size(0), up.size(1), -1)
            maxs, mins = flat.max(dim=-1)[0][:, :, None, None], flat.min(dim=-1)[0][:, :, None, None]
            up = (up - mins) / (maxs - mins + 1e-8)
            inputs = x[:, None, :, :] * up[:, :, None, :, :]
            scores = []
            for c, t in zip(cls, inputs):
                for i in range(0, t.size(0), 16):
                    scores.extend(model(t[i : i + 16])[:, c].tolist())
            scores = torch.Tensor(scores).view(acts.shape[0], acts.shape[1])
            weights = torch.nn.Softmax(dim=-1)(scores).numpy()
        cam = (weights[:, :, None, None] * acts).sum(axis=1)
    else:
        acts, grads, cls = layer_pass(model, module, x, cls)
        if kind == "gradcam":
            weights = np.mean(grads, axis=(2, 3))
            cam = (weights[:, :, None, None] * acts).sum(axis=1)
        elif kind == "gradcam++":
            g2 = grads**2
            g3 = g2 * grads
            sum_a = np.sum(acts, axis=(2, 3))
            aij = g2 / (2 * g2 + sum_a[:, :, None, None] * g3 + 0.000001)
            aij = np.where(grads != 0, aij, 0)
            weights = np.sum(np.maximum(grads, 0) * aij, axis=(2, 3))
            cam = (weights[:, :, None, None] * acts).sum(axis=1)
        elif kind == "layercam":
            cam = (np.maximum(grads, 0) * acts).sum(axis=1)
        else:  # hirescam
            cam = (grads * acts).sum(axis=1)
    cam = np.maximum(cam, 0)
    up = scale_cam_image(scale_cam_image(cam, (x.shape[-1], x.shape[-2])))
    return cam, up, cls


CASES = [
    ("resnet18", "layer4", "gradcam"),
    ("resnet18", "layer4", "gradcam++"),
    ("resnet18", "layer4", "layercam"),
    ("resnet18", "layer4", "hirescam"),
    ("alexnet", "features_11", "gradcam"),
    ("vgg16", "features_30", "gradcam"),
    ("alexnet", "features_11", "gradcam++"),
    ("fashion", "conv2", "gradcam"),
    ("fashion", "pool1", "gradcam++"),
    ("fashion", "conv2", "scorecam"),
    ("fashion", "conv2", "layercam"),
    ("fashion", "pool1", "hirescam"),
]


@pytest.mark.parametrize("arch,layer,kind", CASES)
def test_cam_matches_pytorch_grad_cam(cnnlens_bin, models, tmp_path, arch, layer, kind):
    model, wpath = models(arch)
    # The lecture CNN's convs are linear, so a map can be all zero after the
    # final ReLU: take the first input whose reference map is not.
    for seed in range(1, 30):
        x = input_for(arch, seed=seed)
        cam, up, cls = ref_cam(model, LAYER_MODULE[(arch, layer)](model), x, kind)
        if cam.max() > 0:
            break
    assert cam.max() > 0
    info, out = probe(cnnlens_bin, kind, tmp_path, arch, wpath, x.numpy(), layer=layer)
    assert [int(c) for c in info["class"]] == cls
    got = np.load(out + ".npy")
    assert got.shape == cam.shape
    assert rel_err(got, cam) < 1e-4
    assert rel_err(np.load(out + "_up.npy"), up[0]) < 1e-3


def test_scorecam_on_a_cnn_layer_with_a_chosen_class(cnnlens_bin, models, tmp_path):
    model, wpath = models("alexnet")
    x = input_for("alexnet", seed=3)
    # features.2 has 64 maps of 27x27: 4 batches of 16 masked copies.
    cam, _, _ = ref_cam(model, model.features[2], x, "scorecam", cls=281)
    assert cam.max() > 0
    info, out = probe(cnnlens_bin, "scorecam", tmp_path, "alexnet", wpath, x.numpy(),
                      layer="features.2", **{"class": 281})
    assert info["class"] == ["281"]
    assert rel_err(np.load(out + ".npy"), cam) < 1e-4


def test_gradcam_batch_uses_each_images_prediction(cnnlens_bin, models, tmp_path):
    model, wpath = models("fashion")
    x = input_for("fashion", n=4, seed=5)
    cam, _, cls = ref_cam(model, model.conv2, x, "gradcam")
    info, out = probe(cnnlens_bin, "gradcam", tmp_path, "fashion", wpath, x.numpy(), layer="conv2")
    assert [int(c) for c in info["class"]] == cls
    got = np.load(out + ".npy")
    for i in range(4):
        assert rel_err(got[i], cam[i]) < 1e-4


# ---- input gradients -------------------------------------------------------------


class _GuidedReLU(torch.autograd.Function):
    """pytorch-grad-cam's GuidedBackpropReLU, and the deconvnet rule."""

    @staticmethod
    def forward(ctx, x, deconv):
        ctx.save_for_backward(x)
        ctx.deconv = deconv
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        if ctx.deconv:
            return g * (g > 0), None
        return g * (x > 0) * (g > 0), None


class _RuleReLU(nn.Module):
    def __init__(self, deconv):
        super().__init__()
        self.deconv = deconv

    def forward(self, x):
        return _GuidedReLU.apply(x, self.deconv)


def with_rule(model, deconv):
    """A copy of the model whose ReLU modules follow the rule (as
    GuidedBackpropReLUModel replaces them)."""
    import copy

    m = copy.deepcopy(model)

    def swap(mod):
        for name, child in mod.named_children():
            if isinstance(child, nn.ReLU):
                setattr(mod, name, _RuleReLU(deconv))
            else:
                swap(child)

    swap(m)
    return m


def input_grad(model, x, cls=None):
    x = x.clone().requires_grad_(True)
    out = model(x)
    cls = int(out.argmax(1)[0]) if cls is None else cls
    out[0, cls].backward()
    return x.grad.numpy(), cls


RULE_CASES = [(a, r) for a in ("resnet18", "fashion") for r in ("guided", "deconv", "grad")]
RULE_CASES += [("vgg16", "guided"), ("alexnet", "guided")]


@pytest.mark.parametrize("arch,rule", RULE_CASES)
def test_input_gradients_follow_the_relu_rule(cnnlens_bin, models, tmp_path, arch, rule):
    model, wpath = models(arch)
    x = input_for(arch, seed=1)
    ref_model = model if rule == "grad" else with_rule(model, rule == "deconv")
    want, cls = input_grad(ref_model, x)
    info, out = probe(cnnlens_bin, rule, tmp_path, arch, wpath, x.numpy())
    assert int(info["class"][0]) == cls
    if arch == "fashion":
        assert rel_err(np.load(out + ".npy"), want) < 1e-4
    else:
        assert_close_but_for_flips(np.load(out + ".npy"), want)


def test_guided_gradcam_is_cam_times_guided(cnnlens_bin, models, tmp_path):
    model, wpath = models("resnet18")
    for seed in range(9, 30):  # an input whose map for class 243 is not all zero
        x = input_for("resnet18", seed=seed)
        cam, up, cls = ref_cam(model, model.layer4, x, "gradcam", cls=243)
        if cam.max() > 0:
            break
    guided, _ = input_grad(with_rule(model, False), x, cls=243)
    want = up[0][None] * guided[0]  # cv2.merge([cam]*3) * gb, channels first
    info, out = probe(cnnlens_bin, "guidedcam", tmp_path, "resnet18", wpath, x.numpy(),
                      layer="layer4", **{"class": 243})
    assert_close_but_for_flips(np.load(out + ".npy"), want)


def test_saliency_is_max_abs_gradient(cnnlens_bin, models, tmp_path):
    model, wpath = models("alexnet")
    x = input_for("alexnet", seed=11)
    g, cls = input_grad(model, x, cls=5)
    info, out = probe(cnnlens_bin, "saliency", tmp_path, "alexnet", wpath, x.numpy(), **{"class": 5})
    assert rel_err(np.load(out + ".npy")[0], np.abs(g[0]).max(axis=0)) < 1e-4


class Xoshiro:
    """xoshiro256** seeded by splitmix64, normals by Box-Muller: the C generator."""

    M = (1 << 64) - 1

    def __init__(self, seed):
        self.s = []
        for _ in range(4):
            seed = (seed + 0x9E3779B97F4A7C15) & self.M
            z = seed
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.M
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.M
            self.s.append(z ^ (z >> 31))
        self.spare = None

    def next(self):
        s, M = self.s, self.M
        rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & M
        out = (rotl((s[1] * 5) & M, 7) * 9) & M
        t = (s[1] << 17) & M
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return out

    def normal(self):
        import math

        if self.spare is not None:
            v, self.spare = self.spare, None
            return v
        u1 = 1.0 - (self.next() >> 11) * 2.0**-53
        u2 = (self.next() >> 11) * 2.0**-53
        r, th = math.sqrt(-2.0 * math.log(u1)), 2.0 * math.pi * u2
        self.spare = np.float32(r * math.sin(th))
        return np.float32(r * math.cos(th))


def test_smoothgrad_with_the_same_noise_as_captum_noise_tunnel(cnnlens_bin, models, tmp_path):
    model, wpath = models("fashion")
    x = input_for("fashion", seed=13)
    samples, noise, seed = 6, 0.2, 42
    rng = Xoshiro(seed)
    sigma = np.float32(noise) * (x.max() - x.min()).item()
    flat = x.numpy().reshape(-1)
    acc = np.zeros_like(flat)
    cls = int(model(x).argmax(1)[0])
    for _ in range(samples):
        xn = torch.from_numpy(
            np.array([v + np.float32(sigma) * rng.normal() for v in flat], np.float32).reshape(x.shape))
        g, _ = input_grad(model, xn, cls)
        acc += np.abs(g.reshape(-1)) / samples
    want = acc.reshape(x.shape[1:]).max(axis=0)
    info, out = probe(cnnlens_bin, "smoothgrad", tmp_path, "fashion", wpath, x.numpy(),
                      samples=samples, noise=noise, seed=seed)
    assert int(info["class"][0]) == cls
    assert rel_err(np.load(out + ".npy")[0], want) < 1e-4


@pytest.mark.parametrize("arch,steps", [("fashion", 20), ("resnet18", 8)])
def test_integrated_gradients_as_captum_gauss_legendre(cnnlens_bin, models, tmp_path, arch, steps):
    model, wpath = models(arch)
    x = input_for(arch, seed=1)
    # A noise baseline as strong as the image: near a flat or faint one, the
    # early maps are almost constant, so max pooling meets near-ties that two
    # correct implementations break differently (their sums round
    # differently) and the gradient takes another route.
    base = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    alphas, sizes = 0.5 * (1 + nodes), 0.5 * weights
    cls = int(model(x).argmax(1)[0])
    total = np.zeros(x.shape, np.float64)
    for a, w in zip(alphas, sizes):
        g, _ = input_grad(model, base + float(a) * (x - base), cls)
        total += w * g
    want = total * (x - base).numpy()
    bpath = str(tmp_path / "base.npy")
    np.save(bpath, base.numpy())
    info, out = probe(cnnlens_bin, "ig", tmp_path, arch, wpath, x.numpy(), steps=steps, baseline=bpath)
    assert int(info["class"][0]) == cls
    if arch == "fashion":
        assert rel_err(np.load(out + ".npy"), want) < 1e-4
    else:
        assert_close_but_for_flips(np.load(out + ".npy"), want)


# ---- occlusion -------------------------------------------------------------------


def ref_occlusion(model, x, cls, window, stride, baseline=0.0):
    """Captum's Occlusion, written out: windows at k*stride, ceil((D-w)/s)+1 per
    axis, the last cropped; all channels; mean over the covering windows."""
    _, _, H, W = x.shape
    ny, nx = -(-(H - window) // stride) + 1, -(-(W - window) // stride) + 1
    total, count = torch.zeros(H, W), torch.zeros(H, W)
    with torch.no_grad():
        base = model(x)[0, cls]
        for iy in range(ny):
            for ix in range(nx):
                y0, x0 = iy * stride, ix * stride
                occ = x.clone()
                occ[:, :, y0 : y0 + window, x0 : x0 + window] = baseline
                total[y0 : y0 + window, x0 : x0 + window] += base - model(occ)[0, cls]
                count[y0 : y0 + window, x0 : x0 + window] += 1
    return (total / count).numpy()


# resnet18: a 4x4 grid of windows on 224x224, a 3x3 grid on valgrind's 64x64
OCCLUDE_RESNET = ("resnet18", 32, 16) if UNDER_VALGRIND else ("resnet18", 64, 48)


@pytest.mark.parametrize("arch,window,stride", [("fashion", 5, 3), ("fashion", 4, 4), OCCLUDE_RESNET])
def test_occlusion_matches_captum(cnnlens_bin, models, tmp_path, arch, window, stride):
    model, wpath = models(arch)
    x = input_for(arch, seed=19)
    cls = int(model(x).argmax(1)[0])
    want = ref_occlusion(model, x, cls, window, stride)
    info, out = probe(cnnlens_bin, "occlusion", tmp_path, arch, wpath, x.numpy(), window=window,
                      stride=stride, batch=5)
    assert int(info["class"][0]) == cls
    assert rel_err(np.load(out + ".npy")[0], want) < 1e-4
