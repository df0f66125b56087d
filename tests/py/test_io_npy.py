"""NumPy .npy files: arrays written by numpy.save are read by cnnlens and
written back (`cnnlens io-probe npy IN OUT`), and numpy.load must see the same
values as float32."""
import subprocess

import numpy as np
import pytest


def probe(bin_, *args):
    return subprocess.run([bin_, "io-probe", *map(str, args)], capture_output=True, text=True)


CASES = {
    "f4_4d": np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype(np.float32),
    "f4_6d": np.random.default_rng(1).standard_normal((2, 1, 3, 1, 2, 4)).astype(np.float32),
    "f4_scalar": np.float32(3.25),
    "f4_empty": np.zeros((0, 4), np.float32),
    "f8": np.random.default_rng(2).standard_normal((4, 9)) * 1e5,
    "f2": np.random.default_rng(3).standard_normal(11).astype(np.float16),
    "u1": np.arange(256, dtype=np.uint8).reshape(16, 16),
    "i8": np.arange(-50, 50, dtype=np.int64).reshape(10, 10) * 1000003,
    "i4": np.arange(-6, 6, dtype=np.int32),
    "bool": np.array([True, False, True]),
    "be_f4": np.arange(6, dtype=">f4").reshape(2, 3) / 7,
    "be_f8": np.arange(5, dtype=">f8") * -0.3,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_numpy_save_round_trips_through_cnnlens(cnnlens_bin, tmp_path, name):
    a = CASES[name]
    src, out = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(src, a)
    r = probe(cnnlens_bin, "npy", src, out)
    assert r.returncode == 0, r.stderr
    b = np.load(out)
    assert b.dtype == np.dtype("<f4")
    assert b.shape == np.shape(a)
    assert np.array_equal(b, np.asarray(a).astype(np.float32))
    header = out.stat().st_size - int(np.prod(np.shape(a), dtype=np.int64)) * 4
    assert header % 64 == 0, "the data starts 64-byte aligned, as numpy writes it"


def test_fortran_order_is_refused_clearly(cnnlens_bin, tmp_path):
    src = tmp_path / "f.npy"
    np.save(src, np.asfortranarray(np.ones((3, 4), np.float32)))
    r = probe(cnnlens_bin, "npy", src, tmp_path / "o.npy")
    assert r.returncode == 1
    assert "Fortran order" in r.stderr and "ascontiguousarray" in r.stderr


@pytest.mark.parametrize("make,needle", [
    (lambda: np.zeros(3, dtype=np.complex64), "not supported"),
    (lambda: np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]), "structured"),
    (lambda: np.zeros((1,) * 7, np.float32), "dimensions"),
])
def test_unsupported_arrays_are_refused(cnnlens_bin, tmp_path, make, needle):
    src = tmp_path / "bad.npy"
    np.save(src, make())
    r = probe(cnnlens_bin, "npy", src, tmp_path / "o.npy")
    assert r.returncode == 1 and needle in r.stderr, r.stderr


def test_truncated_npy_is_refused(cnnlens_bin, tmp_path):
    src = tmp_path / "t.npy"
    np.save(src, np.ones((10, 10), np.float32))
    data = src.read_bytes()
    for cut in (5, 60, 127, len(data) - 1):
        src.write_bytes(data[:cut])
        r = probe(cnnlens_bin, "npy", src, tmp_path / "o.npy")
        assert r.returncode == 1 and "error:" in r.stderr, (cut, r.stderr)
