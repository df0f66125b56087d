"""The lecture notebooks (6.1-6.5, with no ImageNet weights present), run
headless with `cnnlens run` as install/lecture.sh runs them: every cell
succeeds, the result is a valid nbformat 4.5 notebook, and the pictures the
lecture relies on are there."""
import base64
import os
import shutil
import subprocess

import nbformat
import pytest

from conftest import SLOW  # sanitizer/valgrind runs

pytestmark = pytest.mark.usefixtures("rehearse_under_valgrind")

SOURCE = os.environ.get("CNNLENS_SOURCE", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
NOTEBOOKS = os.path.join(SOURCE, "notebooks")
LECTURES = ["6.1-feature-maps.ipynb", "6.2-what-filters-learn.ipynb",
            "6.3-neurons-and-classes.ipynb", "6.4-gradcam-step-by-step.ipynb",
            "6.5-gradcam-imagenet.ipynb"]


@pytest.fixture
def workdir(tmp_path):
    for name in os.listdir(NOTEBOOKS):
        src = os.path.join(NOTEBOOKS, name)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("name", LECTURES)
def test_lecture_notebook_runs_clean(cnnlens_bin, workdir, name):
    path = workdir / name
    out = workdir / ("out-" + name)
    r = subprocess.run([cnnlens_bin, "run", str(path), "-o", str(out), "--figures", str(workdir / "figs")],
                       capture_output=True, text=True, timeout=300 * SLOW, cwd=workdir)
    assert r.returncode == 0, r.stderr
    nb = nbformat.read(str(out), as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code if c.source.strip())
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    pictures = [o.data["image/png"] for c in code for o in c.outputs
                if o.output_type in ("display_data", "execute_result") and "image/png" in o.data]
    assert pictures, "a lecture shows pictures"
    for p in pictures:
        assert base64.b64decode(p).startswith(b"\x89PNG\r\n\x1a\n")
    assert os.listdir(workdir / "figs")


def test_lecture_6_4_matches_nbclient(cnnlens_bin, jupyter_path, workdir, monkeypatch):
    """The same notebook through the real kernel (nbclient) and through
    `cnnlens run`: identical outputs, pictures included."""
    import copy

    from nbclient import NotebookClient

    monkeypatch.setenv("CNNLENS_INTERP", "lens")
    monkeypatch.chdir(workdir)
    name = "6.4-gradcam-step-by-step.ipynb"
    nb = nbformat.read(str(workdir / name), as_version=4)
    ref = copy.deepcopy(nb)
    NotebookClient(ref, kernel_name="cnnlens", timeout=int(120 * SLOW), record_timing=False,
                   resources={"metadata": {"path": str(workdir)}}).execute()
    ref = nbformat.reads(nbformat.writes(ref), as_version=4)
    r = subprocess.run([cnnlens_bin, "run", name, "-o", "ours.ipynb"], capture_output=True, text=True,
                       timeout=300 * SLOW, cwd=workdir)
    assert r.returncode == 0, r.stderr
    ours = nbformat.read(str(workdir / "ours.ipynb"), as_version=4)

    def outputs(book):
        return [(c.execution_count, c.outputs) for c in book.cells if c.cell_type == "code"]

    assert outputs(ours) == outputs(ref)
