"""Real Jupyter front ends drive `cnnlens kernel`: nbclient executes a
notebook (what nbconvert --execute and the lecture runner do), and jupyter
console runs cells typed on its standard input."""
import base64
import os
import subprocess

import nbformat
from nbclient import NotebookClient


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


def test_jupyter_console_runs_cells(jupyter_path):
    cells = 'print "hello, world"\nx = 3\nx * 14\n'
    r = subprocess.run(["/usr/bin/jupyter", "console", "--kernel", "cnnlens", "--simple-prompt"],
                       input=cells, capture_output=True, text=True, timeout=60, env=os.environ)
    assert "hello, world" in r.stdout
    assert "Out[3]: 42" in r.stdout
    assert "cnnlens" in r.stdout  # the banner from kernel_info_reply
    assert "Shutting down kernel" in r.stdout
