"""Weights files written by the real torch.save (zip and legacy formats) and
read by cnnlens: every tensor must come back exactly, and loading must cost
about the file's size in memory.  Driven through the hidden `cnnlens io-probe`."""
import collections
import json
import os
import pathlib
import subprocess
import tempfile

import numpy as np
import pytest
import torch
import torchvision

# Memory is measured on the plain build only: ASan's shadow memory and valgrind's
# are part of the RSS a probe measures (CNNLENS_UNDER_VALGRIND: see conftest.py).
NATIVE = (os.environ.get("CNNLENS_SANITIZE", "0").upper() in ("0", "", "FALSE", "OFF")
          and not os.environ.get("CNNLENS_UNDER_VALGRIND"))


def probe(bin_, *args, check=True):
    r = subprocess.run([bin_, "io-probe", *map(str, args)], capture_output=True, text=True)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def read_safetensors(path):
    """An independent reader (the safetensors package is not installed)."""
    with open(path, "rb") as f:
        b = f.read()
    n = int.from_bytes(b[:8], "little")
    header = json.loads(b[8:8 + n])
    data = memoryview(b)[8 + n:]
    out = collections.OrderedDict()
    for k, v in header.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32"
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(data[s:e], dtype="<f4").reshape(v["shape"])
    return out


def expected(sd):
    return collections.OrderedDict(
        (k, v.detach().to(torch.float32).contiguous().numpy()) for k, v in sd.items())


def assert_same(got, want):
    assert list(got) == list(want), "names and order must match the state_dict"
    for k in want:
        assert got[k].shape == want[k].shape, k
        assert np.array_equal(got[k], want[k]), k


def roundtrip(bin_, path, tmp_path):
    out = tmp_path / (os.path.basename(path) + ".safetensors")
    probe(bin_, "weights", path, out)
    return read_safetensors(out)


@pytest.fixture(scope="module")
def resnet18_sd():
    torch.manual_seed(0)
    m = torchvision.models.resnet18()
    # Non-trivial BN statistics and counters, so every tensor is checked.
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-1, 1)
            mod.running_var.uniform_(0.5, 2)
            mod.num_batches_tracked.fill_(12345)
    return m.state_dict()


@pytest.mark.parametrize("zipfmt", [True, False], ids=["zip", "legacy"])
def test_resnet18_every_tensor_exact(cnnlens_bin, tmp_path, resnet18_sd, zipfmt):
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18_sd, path, _use_new_zipfile_serialization=zipfmt)
    got = roundtrip(cnnlens_bin, path, tmp_path)
    assert len(got) == 122
    assert_same(got, expected(resnet18_sd))
    assert got["bn1.num_batches_tracked"].shape == ()
    assert got["bn1.num_batches_tracked"] == 12345


@pytest.mark.parametrize("zipfmt", [True, False], ids=["zip", "legacy"])
def test_resnet18_memory_is_about_file_size(cnnlens_bin, tmp_path, resnet18_sd, zipfmt):
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18_sd, path, _use_new_zipfile_serialization=zipfmt)
    lines = probe(cnnlens_bin, "weights", path, "--mem").stdout.split("\n")
    before, after = map(int, lines[0].split()[1:])
    size = int(lines[1].split()[1])
    grown = (after - before) * 1024
    print(f"resnet18 {'zip' if zipfmt else 'legacy'}: file {size} B, peak RSS grew {grown} B "
          f"({grown / size:.3f}x)")
    if NATIVE:
        # The tensors are the file's size; the mapped file adds the 1 MiB being
        # converted (each converted MiB is unmapped).  Measured 1.066-1.068x in
        # 60 runs, and once 1.248x in a clean-clone run on Linux 6.18/ext4,
        # whose page cache may map a freshly written file in large folios
        # (fault-around then maps more than the MiB in hand).  Holding the file
        # and the tensors whole would be 2x.
        assert grown <= 1.30 * size


def small_net_sd():
    torch.manual_seed(1)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 4, 1), torch.nn.Flatten(), torch.nn.Linear(4 * 9, 10))
    sd = net.state_dict()
    big = torch.randn(40)
    sd["view.offset"] = big[7:19].view(3, 4)          # storage offset, shared storage
    sd["view.transposed"] = torch.randn(5, 7).t()     # non-contiguous strides
    sd["view.strided"] = torch.randn(6, 8)[::2, 1::3]  # offset and strides
    sd["dtype.f16"] = torch.randn(3, 5).half()
    sd["dtype.f64"] = torch.randn(4, dtype=torch.float64) * 1e3
    sd["dtype.i64"] = torch.arange(-3, 9, dtype=torch.int64).view(3, 4)
    sd["dtype.u8"] = torch.arange(0, 250, 25, dtype=torch.uint8)
    sd["scalar"] = torch.tensor(2.5)
    sd["param"] = torch.nn.Parameter(torch.randn(2, 3))  # _rebuild_parameter
    sd["empty"] = torch.zeros(0, 3)
    sd["six.dims"] = torch.randn(1, 2, 1, 3, 2, 2)
    return sd


@pytest.mark.parametrize("zipfmt", [True, False], ids=["zip", "legacy"])
def test_views_dtypes_and_parameters(cnnlens_bin, tmp_path, zipfmt):
    sd = small_net_sd()
    path = tmp_path / "small.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=zipfmt)
    assert_same(roundtrip(cnnlens_bin, path, tmp_path), expected(sd))


@pytest.mark.parametrize("wrapper", ["state_dict", "model"])
def test_training_checkpoint_wrappers(cnnlens_bin, tmp_path, wrapper):
    sd = small_net_sd()
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 7, wrapper: sd, "best_acc": 0.91, "arch": "small"}, path)
    assert_same(roundtrip(cnnlens_bin, path, tmp_path), expected(sd))


def test_plain_dict_and_list_output(cnnlens_bin, tmp_path):
    sd = {"a": torch.ones(2, 2), "b": torch.arange(3.0)}
    path = tmp_path / "plain.pth"
    torch.save(sd, path)
    out = probe(cnnlens_bin, "weights", path, "--list").stdout.splitlines()
    assert out == ["a\t[2, 2]\t4", "b\t[3]\t3"]


def test_safetensors_reads_back_its_own_output(cnnlens_bin, tmp_path, resnet18_sd):
    path = tmp_path / "r.pth"
    torch.save(resnet18_sd, path)
    first = tmp_path / "first.safetensors"
    second = tmp_path / "second.safetensors"
    probe(cnnlens_bin, "weights", path, first)
    probe(cnnlens_bin, "weights", first, second)
    assert first.read_bytes() == second.read_bytes()


@pytest.fixture
def big_tmp():
    """VGG-size files live in /dev/shm when it exists: no disk writes and fsyncs."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="cnnlens-io-", dir=base) as d:
        yield pathlib.Path(d)


def test_vgg16_legacy_format(cnnlens_bin, big_tmp, monkeypatch):
    """torchvision's VGG16 weights are a legacy-format file of 528 MiB."""
    # torchvision's initialisation takes seconds; random normals do as well here.
    for name in ("kaiming_normal_", "kaiming_uniform_", "normal_", "uniform_", "constant_"):
        monkeypatch.setattr(torch.nn.init, name, lambda t, *a, **k: t)
    m = torchvision.models.vgg16()
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(generator=gen)
    sd = m.state_dict()
    path = big_tmp / "vgg16.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=False)
    out = big_tmp / "vgg16.safetensors"
    lines = probe(cnnlens_bin, "weights", path, out, "--mem").stdout.split("\n")
    before, after = map(int, lines[0].split()[1:])
    size = int(lines[1].split()[1])
    print(f"vgg16 legacy: file {size} B, peak RSS grew {(after - before) * 1024} B")
    if NATIVE:
        assert (after - before) * 1024 <= 1.10 * size
    path.unlink()
    assert_same(read_safetensors(out), expected(sd))


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pickle_asking_for_os_system_is_refused(cnnlens_bin, tmp_path):
    for zipfmt in (True, False):
        path = tmp_path / f"evil{int(zipfmt)}.pth"
        torch.save({"w": torch.ones(2), "x": Evil()}, path, _use_new_zipfile_serialization=zipfmt)
        r = probe(cnnlens_bin, "weights", path, check=False, )
        assert r.returncode == 1
        assert "posix.system" in r.stderr or "os.system" in r.stderr, r.stderr
        assert "runs no code" in r.stderr
        assert not (tmp_path / "pwned").exists() and not os.path.exists("pwned")


def test_whole_model_pickle_is_refused_with_advice(cnnlens_bin, tmp_path):
    path = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 2), path)
    r = probe(cnnlens_bin, "weights", path, check=False)
    assert r.returncode == 1
    assert "torch.nn.modules.linear.Linear" in r.stderr and "state_dict" in r.stderr, r.stderr


def test_truncated_checkpoint_is_refused(cnnlens_bin, tmp_path):
    path = tmp_path / "t.pth"
    torch.save(small_net_sd(), path)
    data = path.read_bytes()
    for cut in (len(data) // 3, len(data) - 30, len(data) - 1):
        bad = tmp_path / "cut.pth"
        bad.write_bytes(data[:cut])
        r = probe(cnnlens_bin, "weights", bad, check=False)
        assert r.returncode == 1 and "error:" in r.stderr and "cut.pth" in r.stderr, r.stderr
