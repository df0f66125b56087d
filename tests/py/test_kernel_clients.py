"""Real Jupyter front ends drive `cnnlens kernel`: nbclient executes a
notebook (what nbconvert --execute and the lecture runner do), and jupyter
console runs cells typed on its standard input."""
import base64
import json
import os
import queue
import shutil
import subprocess

import nbformat
import pytest
from jupyter_client import KernelManager
from nbclient import NotebookClient

import lens_client

from conftest import SLOW


def notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "cnnlens", "display_name": "CNN Lens", "language": "lens"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    return nb


def test_nbclient_executes_a_notebook(jupyter_path):
    nb = notebook('print "hello, world"', "x = (6 *\n  7)", "x", "show zeros 20 20",
                  "conv [1 2 3; 4 5 6; 7 8 9] [1 0; 0 1] step delay 0")
    NotebookClient(nb, timeout=30, kernel_name="cnnlens").execute()
    out = [c.outputs for c in nb.cells]
    assert out[0][0]["output_type"] == "stream" and out[0][0]["text"] == "hello, world\n"
    assert out[1] == []
    assert out[2][0]["output_type"] == "execute_result"
    assert out[2][0]["data"]["text/plain"] == "42" and out[2][0]["execution_count"] == 3
    png = base64.b64decode(out[3][0]["data"]["image/png"])
    assert png.startswith(b"\x89PNG") and out[3][0]["metadata"]["image/png"]["width"] > 0
    # the display updated in place is stored once, with its final content
    assert len(out[4]) == 1
    assert out[4][0]["data"]["text/plain"] == "conv: window 4 of 4, value 14"
    assert nb.metadata["language_info"]["name"] == "lens"


def test_nbclient_reports_an_error_cell(jupyter_path):
    import nbclient.exceptions
    nb = notebook("x = 1", "nosuch", 'print "not reached"')
    try:
        NotebookClient(nb, timeout=30, kernel_name="cnnlens").execute()
        raise AssertionError("the error cell did not stop the notebook")
    except nbclient.exceptions.CellExecutionError as e:
        assert "NameError" in str(e) and "nosuch" in str(e)
    assert nb.cells[1].outputs[0]["output_type"] == "error"
    assert nb.cells[2].outputs == []


def test_nbconvert_executes_a_notebook(jupyter_path, tmp_path):
    path = tmp_path / "nb.ipynb"
    nbformat.write(notebook('print "from nbconvert"', "2 + 3"), path)
    r = subprocess.run(["/usr/bin/jupyter", "nbconvert", "--to", "notebook", "--execute",
                        "--output", "done.ipynb", str(path)], capture_output=True, text=True,
                       timeout=60, env=os.environ)
    assert r.returncode == 0, r.stderr
    done = nbformat.read(tmp_path / "done.ipynb", as_version=4)
    assert done.cells[0].outputs[0]["text"] == "from nbconvert\n"
    assert done.cells[1].outputs[0]["data"]["text/plain"] == "5"


@pytest.fixture(scope="module")
def late_kernel(jupyter_path, tmp_path_factory):
    """A kernelspec "cnnlens-late" whose kernel starts a few ms late (a
    number of ms in the file `delay`), as a kernel does on a busy machine:
    the client's sockets then connect while it starts, each retrying on its
    own 100 ms clock, so its shell can connect before its IOPub does."""
    folder = tmp_path_factory.mktemp("late")
    spec = os.path.join(jupyter_path, "kernels", "cnnlens")
    late = os.path.join(jupyter_path, "kernels", "cnnlens-late")
    shutil.copytree(spec, late)
    with open(os.path.join(late, "kernel.json")) as f:
        kernel = json.load(f)
    wrapper = folder / "late.sh"
    wrapper.write_text(f'#!/bin/sh\nsleep "0.0$(cat {folder}/delay)"\nexec "$@"\n')
    wrapper.chmod(0o755)
    kernel["argv"] = [str(wrapper)] + kernel["argv"]
    with open(os.path.join(late, "kernel.json"), "w") as f:
        json.dump(kernel, f)
    yield folder / "delay"
    shutil.rmtree(late)


def test_a_first_cell_sent_at_once_is_seen_whole(late_kernel):
    """A front end that sends its first cell as soon as kernel_info is
    answered (jupyter console does) sees that cell's output and idle on IOPub,
    however late the kernel started: before the kernel held requests until a
    subscriber came, 19 of 40 such starts lost them."""
    lost = []
    for run in range(20 if SLOW == 1 else 4):
        late_kernel.write_text(str(run % 10))  # 0 to 90 ms
        km = KernelManager(kernel_name="cnnlens-late")
        km.start_kernel()
        kc = km.client()
        kc.start_channels()
        try:
            lens_client.shell_reply(kc, kc.kernel_info(), 10 * SLOW)
            msg_id = kc.execute('print "first"')
            seen = []

            def note(m):
                c = m["content"]
                seen.append((m["msg_type"], c.get("execution_state", c.get("text"))))
            try:
                lens_client.collect(kc, msg_id, 5 * SLOW, on_msg=note)
            except queue.Empty:
                lost.append((run, seen))
                continue
            assert seen == [("status", "busy"), ("execute_input", None), ("stream", "first\n"),
                            ("status", "idle")], seen
        finally:
            kc.stop_channels()
            km.shutdown_kernel()
    assert not lost, f"(run, what IOPub brought) of the runs that lost their first cell: {lost}"


@pytest.mark.parametrize("kernel", ["cnnlens", "cnnlens-late"])
def test_jupyter_console_runs_cells(jupyter_path, late_kernel, kernel):
    late_kernel.write_text("5")
    cells = 'print "hello, world"\nx = 3\nx * 14\n'
    r = subprocess.run(["/usr/bin/jupyter", "console", "--kernel", kernel, "--simple-prompt"],
                       input=cells, capture_output=True, text=True, timeout=60, env=os.environ)
    assert "hello, world" in r.stdout
    assert "Out[3]: 42" in r.stdout
    assert "cnnlens" in r.stdout  # the banner from kernel_info_reply
    assert "Shutting down kernel" in r.stdout
