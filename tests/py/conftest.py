"""Shared fixtures: the built binary and a kernelspec installed into a private
Jupyter data folder, so tests never depend on (or change) the machine's setup."""
import os
import subprocess
import tempfile

import pytest

SOURCE = os.environ.get("CNNLENS_SOURCE", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("CNNLENS_BUILD", os.path.join(SOURCE, "build"))
BIN = os.environ.get("CNNLENS_BIN", os.path.join(BUILD, "cnnlens"))


@pytest.fixture(scope="session")
def cnnlens_bin():
    assert os.path.exists(BIN), f"build cnnlens first: {BIN} is missing"
    return BIN


@pytest.fixture(scope="session")
def jupyter_path(cnnlens_bin):
    """A prefix holding share/jupyter/kernels/cnnlens, put on JUPYTER_PATH."""
    prefix = tempfile.mkdtemp(prefix="cnnlens-jupyter-")
    subprocess.run([cnnlens_bin, "install", "--prefix", prefix], check=True, capture_output=True)
    data = os.path.join(prefix, "share", "jupyter")
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = data + (os.pathsep + old if old else "")
    yield data
    if old is None:
        os.environ.pop("JUPYTER_PATH", None)
    else:
        os.environ["JUPYTER_PATH"] = old
