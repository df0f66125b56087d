"""The engine against PyTorch: each zoo model is built with torchvision at a
seeded random init, its weights saved (safetensors written by hand, .pth zip,
.pth legacy), and `cnnlens probe run` must reproduce the logits, named
intermediate outputs and gradients (to the input and to a named layer)."""
import os
import subprocess
import tempfile

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision

from torch_ref import SIDE, Lecture, save_safetensors

torch.set_num_threads(2)


# ---- helpers (also imported by test_parity_vgg.py) ----

def save_weights(model, path, fmt):
    sd = model.state_dict()
    if fmt == "safetensors":
        save_safetensors({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, path)
    elif fmt == "legacy":
        torch.save(sd, path, _use_new_zipfile_serialization=False)
    else:
        torch.save(sd, path)


def randomize_bn(model, gen):
    """Non-trivial batch-norm statistics, so that folding is really tested."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.rand(c, generator=gen) + 0.5
            m.bias.data = torch.randn(c, generator=gen) * 0.1
            m.running_mean.data = torch.randn(c, generator=gen) * 0.1
            m.running_var.data = torch.rand(c, generator=gen) + 0.5


def no_inplace(model):
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False


def make_model(arch, seed):
    torch.manual_seed(seed)
    if arch == "fashion":
        model = Lecture()
    else:
        model = getattr(torchvision.models, arch)(weights=None)
    randomize_bn(model, torch.Generator().manual_seed(seed + 1))
    no_inplace(model)
    return model.eval()


def module(model, name):
    m = model
    for part in name.split("."):
        m = m[int(part)] if part.isdigit() else getattr(m, part)
    return m


class _MaskedReLUFn(torch.autograd.Function):
    """relu(x) forward; backward with a given mask (the engine's own ReLU
    decisions) under the plain, guided or deconvnet rule."""

    @staticmethod
    def forward(ctx, x, mask, rule):
        ctx.save_for_backward(mask)
        ctx.rule = rule
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        if ctx.rule == "deconv":
            return g.clamp(min=0), None, None
        g = g * mask
        return (g.clamp(min=0) if ctx.rule == "guided" else g), None, None


class MaskedReLU(nn.Module):
    """Stands in for an nn.ReLU called len(names) times per forward (a ResNet
    block calls its `relu` two or three times); counts where the engine's mask
    disagrees with PyTorch's own x > 0."""

    def __init__(self, names, masks, rule, stats):
        super().__init__()
        self.names, self.masks, self.rule, self.stats, self.calls = names, masks, rule, stats, 0

    def forward(self, x):
        mask = self.masks[self.names[self.calls % len(self.names)]]
        self.calls += 1
        self.stats["elems"] += mask.numel()
        self.stats["disagree"] += int(((x > 0).float() != mask).sum())
        return _MaskedReLUFn.apply(x, mask, self.rule)


class _RoutedMaxPoolFn(torch.autograd.Function):
    """Max pooling whose backward routes each gradient to the engine's winner."""

    @staticmethod
    def forward(ctx, x, idx, pool):
        ctx.save_for_backward(idx)
        ctx.shape = x.shape
        return nn.functional.max_pool2d(x, pool.kernel_size, pool.stride, pool.padding)

    @staticmethod
    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        n, c, h, w = ctx.shape
        gi = torch.zeros(n, c, h * w, dtype=g.dtype)
        gi.scatter_add_(2, idx.reshape(n, c, -1), g.reshape(n, c, -1))
        return gi.view(n, c, h, w), None, None


class RoutedMaxPool(nn.Module):
    """Stands in for an nn.MaxPool2d; counts where the engine's winner differs
    from PyTorch's own (a near-tie in a window)."""

    def __init__(self, pool, idx, stats):
        super().__init__()
        self.pool, self.idx, self.stats = pool, idx, stats

    def forward(self, x):
        p = self.pool
        _, own = nn.functional.max_pool2d(x, p.kernel_size, p.stride, p.padding, return_indices=True)
        self.stats["elems"] += own.numel()
        self.stats["disagree"] += int((own != self.idx).sum())
        return _RoutedMaxPoolFn.apply(x, self.idx, p)


def relu_call_names(model, name):
    """The engine's node names for the calls of the nn.ReLU `name`."""
    parent = module(model, name.rsplit(".", 1)[0]) if "." in name else model
    if isinstance(parent, torchvision.models.resnet.Bottleneck):
        p = name.rsplit(".", 1)[0]
        return [p + ".relu1", p + ".relu2", p]
    if isinstance(parent, torchvision.models.resnet.BasicBlock):
        p = name.rsplit(".", 1)[0]
        return [p + ".relu1", p]
    return [name]


def install_masks(model, masks, rule, stats):
    """Replaces every nn.ReLU by a MaskedReLU and every nn.MaxPool2d by a
    RoutedMaxPool (masks["arg." + name] holds its winners); returns a function
    that undoes it."""
    undo = []
    for name, m in list(model.named_modules()):
        parent_name, _, leaf = name.rpartition(".")
        parent = module(model, parent_name) if parent_name else model
        if isinstance(m, nn.ReLU):
            setattr(parent, leaf, MaskedReLU(relu_call_names(model, name), masks, rule, stats))
            undo.append((parent, leaf, m))
        elif isinstance(m, nn.MaxPool2d):
            setattr(parent, leaf, RoutedMaxPool(m, masks["arg." + name], stats))
            undo.append((parent, leaf, m))
    return lambda: [setattr(p, leaf, m) for p, leaf, m in undo]


def torch_run(model, x, nodes, grad_class=None, grad_nodes=(), rule="plain", masks=None):
    """Logits, outputs of `nodes`, and d(logit[grad_class]) w.r.t. the input and
    `grad_nodes`.  With `masks` (node name -> 0/1 tensor), every ReLU's backward
    uses the engine's decisions: a ReLU input within float rounding of zero may
    fall on different sides in two correct float32 engines, and one such tie in
    a deep layer moves every gradient below it by up to a few percent (PyTorch
    against itself in float64 shows the same), and so may a near-tie in a max
    pool window, so max pools route gradients to the engine's winners too.
    With shared decisions the gradients agree to ~1e-6.  The share of
    disagreeing decisions is returned in res["relu_disagree"] and checked to
    be tiny."""
    stats = {"elems": 0, "disagree": 0}
    assert masks is not None or rule == "plain", "the ReLU rules need the engine's masks"
    undo = install_masks(model, masks, rule, stats) if masks is not None else None
    outs, values, hooks = {}, {}, []
    for name in set(nodes) | set(grad_nodes):
        def hook(mod, inp, out, name=name):
            if name in grad_nodes:
                out.retain_grad()
            outs[name] = out
            values[name] = out.detach().clone()  # a ResNet adds into bn2's output in place
        hooks.append(module(model, name).register_forward_hook(hook))
    x = x.clone().requires_grad_(grad_class is not None)
    logits = model(x)
    res = {"logits": logits.detach().numpy()}
    for n in nodes:
        res["node." + n] = values[n].numpy()
    if grad_class is not None:
        logits[:, grad_class].sum().backward()
        res["grad_input"] = x.grad.numpy()
        for n in grad_nodes:
            res["grad." + n] = outs[n].grad.numpy()
    for h in hooks:
        h.remove()
    if undo:
        undo()
    if stats["elems"]:
        res["relu_disagree"] = stats["disagree"] / stats["elems"]
    return res


_NODES = {}


def nodes_of_type(binary, arch, kind):
    """The engine's node names of one type, from `cnnlens probe summary`."""
    if arch not in _NODES:
        out = subprocess.run([binary, "probe", "summary", arch], capture_output=True, text=True,
                             check=True).stdout
        _NODES[arch] = [r.split("\t")[:2] for r in out.splitlines()]
    return [n for n, t in _NODES[arch] if t == kind]


def run_both(binary, arch, model, x, d, fmt, nodes, grad_class, grad_nodes, rule="plain",
             train=False):
    """Saves the weights, runs the engine (keeping its ReLU outputs), then
    PyTorch with the engine's ReLU decisions; returns PyTorch's results."""
    w = os.path.join(d, "w." + ("safetensors" if fmt == "safetensors" else "pth"))
    save_weights(model, w, fmt)
    relus, pools = nodes_of_type(binary, arch, "relu"), nodes_of_type(binary, arch, "maxpool2d")
    probe(binary, arch, w, x, d, list(nodes) + relus, grad_class, grad_nodes,
          rule=None if rule == "plain" else rule, train=train, args=pools)
    masks = {n: torch.from_numpy((load(d, "node." + n) > 0).astype(np.float32)) for n in relus}
    masks.update({"arg." + n: torch.from_numpy(load(d, "arg." + n).astype(np.int64)) for n in pools})
    ref = torch_run(model, x, nodes, grad_class, grad_nodes, rule, masks)
    assert ref.pop("relu_disagree", 0.0) < 1e-5
    return ref


def probe(binary, arch, weights, x, out, nodes=(), grad_class=None, grad_nodes=(), grad_to=None,
          rule=None, train=False, check=True, args=()):
    np.save(os.path.join(out, "x.npy"), x.numpy().astype(np.float32))
    cmd = [binary, "probe", "run", arch, "--input", os.path.join(out, "x.npy"), "--out", out]
    if weights:
        cmd += ["--weights", weights]
    for n in nodes:
        cmd += ["--save", n]
    if grad_class is not None:
        cmd += ["--grad", str(grad_class)]
    for n in grad_nodes:
        cmd += ["--grad-node", n]
    for n in args:
        cmd += ["--save-arg", n]
    if grad_to:
        cmd += ["--grad-to", grad_to]
    if rule:
        cmd += ["--rule", rule]
    if train:
        cmd += ["--train"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def load(out, key):
    return np.load(os.path.join(out, key + ".npy"))


def rel_err(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def compare(out, ref, logits_abs=1e-3):
    got = load(out, "logits")
    want = ref["logits"]
    scale = max(1.0, np.abs(want).max())
    assert np.abs(got - want).max() < logits_abs * scale, np.abs(got - want).max()
    for g, w in zip(got, want):
        assert list(np.argsort(-g)[:5]) == list(np.argsort(-w)[:5])
    for k, v in ref.items():
        if k != "logits":
            assert rel_err(load(out, k), v) < 1e-3, (k, rel_err(load(out, k), v))


def check_model(binary, arch, seed, size, fmt, nodes, grad_nodes, batch=1, rule="plain",
                grad_class=3):
    model = make_model(arch, seed)
    chans = 1 if arch == "fashion" else 3
    x = torch.randn(batch, chans, size, size, generator=torch.Generator().manual_seed(seed + 7))
    with tempfile.TemporaryDirectory() as d:
        ref = run_both(binary, arch, model, x, d, fmt, nodes, grad_class, grad_nodes, rule)
        compare(d, ref)


# ---- tests ----

@pytest.mark.parametrize("seed", [0, 1])
def test_resnet18_imagenet_size(cnnlens_bin, seed):
    check_model(cnnlens_bin, "resnet18", seed, SIDE, "zip", ["layer4", "layer2.1.bn2", "maxpool"],
                ["layer4", "layer3.0.downsample.1"])


def test_resnet18_bn_name_is_conv_output(cnnlens_bin):
    """'layer1.0.bn1' resolves to the folded conv: it equals PyTorch's bn1 output."""
    check_model(cnnlens_bin, "resnet18", 5, 64, "safetensors", ["layer1.0.bn1", "layer4.1"], [])


def test_resnet18_batch(cnnlens_bin):
    check_model(cnnlens_bin, "resnet18", 2, 64, "zip", ["layer3"], ["layer3"], batch=3)


@pytest.mark.parametrize("arch", ["resnet34", "resnet50"])
def test_deeper_resnets(cnnlens_bin, arch):
    check_model(cnnlens_bin, arch, 3, 64, "zip", ["layer4", "layer2.0.bn2"], ["layer4"])


@pytest.mark.parametrize("seed", [0, 1])
def test_alexnet_imagenet_size(cnnlens_bin, seed):
    check_model(cnnlens_bin, "alexnet", seed, SIDE, "safetensors",
                ["features.11", "avgpool", "classifier.5"], ["features.11", "features.2"])


@pytest.mark.parametrize("rule", ["guided", "deconv"])
def test_alexnet_relu_rules(cnnlens_bin, rule):
    check_model(cnnlens_bin, "alexnet", 4, SIDE, "safetensors", [], ["features.11"], rule=rule)


@pytest.mark.parametrize("arch", ["vgg11", "vgg13_bn"])
def test_small_vggs(cnnlens_bin, arch):
    check_model(cnnlens_bin, arch, 6, 32, "zip", ["features.4", "avgpool"], ["features.4"])


def test_fashion_weight_gradients(cnnlens_bin):
    """The lecture CNN at its own size, a batch of 4, with weight gradients."""
    model = make_model("fashion", 9)
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    with tempfile.TemporaryDirectory() as d:
        ref = run_both(cnnlens_bin, "fashion", model, x, d, "zip", ["conv2", "pool2", "dense1"], 7,
                       ["conv2", "dense1"], train=True)
        compare(d, ref)
        for name, p in model.named_parameters():
            assert rel_err(load(d, "wgrad." + name), p.grad.numpy()) < 1e-3, name


def test_backward_stops_at_layer(cnnlens_bin):
    """--grad-to layer4 computes layer4's gradient and nothing below it."""
    model = make_model("resnet18", 0)
    x = torch.randn(1, 3, 64, 64)
    with tempfile.TemporaryDirectory() as d:
        w = os.path.join(d, "w.pth")
        save_weights(model, w, "zip")
        ref = torch_run(model, x, [], 1, ["layer4"])
        probe(cnnlens_bin, "resnet18", w, x, d, [], 1, ["layer4"], grad_to="layer4")
        assert rel_err(load(d, "grad.layer4"), ref["grad.layer4"]) < 1e-3
        assert not os.path.exists(os.path.join(d, "grad_input.npy"))
        p = probe(cnnlens_bin, "resnet18", w, x, d, [], 1, ["layer3"], grad_to="layer4",
                  check=False)
        assert p.returncode != 0 and "nothing computed for 'layer3'" in p.stderr


def test_weight_mismatch_is_named(cnnlens_bin):
    r18 = make_model("resnet18", 0).state_dict()
    with tempfile.TemporaryDirectory() as d:
        x = torch.zeros(1, 3, 32, 32)
        bad = dict(r18)
        bad["layer4.1.bn2.running_var"] = torch.ones(256)
        save_weights_dict(bad, os.path.join(d, "a.pth"))
        p = probe(cnnlens_bin, "resnet18", os.path.join(d, "a.pth"), x, d, check=False)
        assert "layer4.1.bn2.running_var: file has [256], model needs [512]" in p.stderr
        missing = {k: v for k, v in r18.items() if k != "fc.bias"}
        save_weights_dict(missing, os.path.join(d, "b.pth"))
        p = probe(cnnlens_bin, "resnet18", os.path.join(d, "b.pth"), x, d, check=False)
        assert "'fc.bias'" in p.stderr and p.returncode != 0
        extra = dict(r18)
        extra["fc2.weight"] = torch.ones(3)
        save_weights_dict(extra, os.path.join(d, "c.pth"))
        p = probe(cnnlens_bin, "resnet18", os.path.join(d, "c.pth"), x, d, check=False)
        assert "'fc2.weight'" in p.stderr and p.returncode != 0


def save_weights_dict(sd, path):
    torch.save(sd, path)


def test_unknown_layer_suggests(cnnlens_bin):
    p = subprocess.run([cnnlens_bin, "probe", "find", "resnet18", "layer5"], capture_output=True,
                       text=True)
    assert p.returncode != 0
    assert "unknown layer 'layer5' — did you mean 'layer4'?" in p.stderr
    p = subprocess.run([cnnlens_bin, "probe", "find", "alexnet", "features_11"],
                       capture_output=True, text=True)
    assert p.stdout.split() == ["11", "features.11"]


@pytest.mark.parametrize("arch", ["fashion", "alexnet", "vgg16", "vgg19_bn", "resnet18",
                                  "resnet50"])
def test_summary_matches_torchvision(cnnlens_bin, arch):
    model = make_model(arch, 0)
    p = subprocess.run([cnnlens_bin, "probe", "summary", arch], capture_output=True, text=True,
                       check=True)
    total = int(p.stdout.strip().splitlines()[-1].split("\t")[-1])
    assert total == sum(q.numel() for q in model.parameters())
    rows = {line.split("\t")[0]: line.split("\t") for line in p.stdout.splitlines()}
    if arch == "fashion":
        assert rows["conv2"][2] == "[1, 50, 11, 11]"
        assert rows["dense1"][2] == "[1, 100]" and rows["output"][2] == "[1, 10]"


def test_results_identical_run_to_run(cnnlens_bin):
    """Same input, same bits, run after run; with another thread count the
    sgemm blocks differ, so only the last bits may."""
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(11))
    results = []
    for threads in ["2", "2", "1"]:
        with tempfile.TemporaryDirectory() as d:
            np.save(os.path.join(d, "x.npy"), x.numpy())
            env = dict(os.environ, CNNLENS_THREADS=threads)
            subprocess.run([cnnlens_bin, "probe", "run", "resnet18", "--seed", "4", "--input",
                            os.path.join(d, "x.npy"), "--out", d, "--save", "layer2", "--grad", "7",
                            "--rule", "guided"], check=True, env=env)
            results.append([load(d, k) for k in ["logits", "node.layer2", "grad_input"]])
    for a, b in zip(results[0], results[1]):
        assert np.array_equal(a, b)
    for a, b in zip(results[0][:2], results[2][:2]):  # forward only: guided gradients have kinks
        assert rel_err(a, b) < 1e-5
