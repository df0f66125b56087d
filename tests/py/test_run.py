"""`cnnlens run` on .lens scripts and notebooks: text to stdout, pictures to
FILE-N.png, notebooks executed in-process and stored as nbclient stores them
(validated with nbformat and compared with nbclient driving the real kernel)."""
import copy
import json
import os
import subprocess

import cv2
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

SLIDE = ("img = [1 0 0 0 0 1; 0 1 0 0 1 0; 0 0 1 1 0 0; 1 0 0 0 1 0; 0 1 0 0 1 0; 0 0 1 0 1 0]\n"
         "f = [-1 1 -1; -1 1 -1; -1 1 -1]\n")
SLIDE_MAP = "-1 -1 -1 -1\n-1 -1 -2  1\n-1 -1 -2  1\n-1  0 -4  3"


def run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, **kw)


def test_script_prints_text_and_writes_each_picture(cnnlens_bin, tmp_path):
    script = tmp_path / "slide.lens"
    script.write_text(SLIDE + 'print "hello, world"\nconv img f step\nshow zeros 20 20\nm = conv img f\nm\n')
    r = run(cnnlens_bin, "run", str(script))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("hello, world\n")
    assert r.stdout.rstrip().endswith(SLIDE_MAP)
    first, second = tmp_path / "slide-1.png", tmp_path / "slide-2.png"
    assert f"[picture: {first}]" in r.stdout
    im = cv2.imread(str(first))
    assert im is not None and im.shape[0] > 100, "the step-through's last frame"
    assert cv2.imread(str(second)).shape[:2] == (221, 221), "20 cells of 11 pixels and a grid line"
    assert not (tmp_path / "slide-3.png").exists()


def test_script_figures_dir(cnnlens_bin, tmp_path):
    script = tmp_path / "s.lens"
    script.write_text("show ones 20 20\n")
    figs = tmp_path / "figs"
    r = run(cnnlens_bin, "run", str(script), "--figures", str(figs))
    assert r.returncode == 0, r.stderr
    assert (figs / "s-1.png").exists()


def test_script_error_quotes_the_line_and_fails(cnnlens_bin, tmp_path):
    script = tmp_path / "bad.lens"
    script.write_text('print "before"\nconv img nosuch\nprint "after"\n')
    r = run(cnnlens_bin, "run", str(script))
    assert r.returncode == 1
    assert r.stdout == "before\n"
    assert r.stderr.splitlines() == [
        "  line 2, column 6:",
        "    conv img nosuch",
        "         ^",
        "NameError: unknown name 'img': no variable or command is called that",
    ]


def test_script_help_goes_to_stdout(cnnlens_bin, tmp_path):
    script = tmp_path / "h.lens"
    script.write_text("help conv\n")
    r = run(cnnlens_bin, "run", str(script))
    assert r.returncode == 0
    assert r.stdout.startswith("conv IMAGE FILTER [stride N] [pad N] [step] [delay X]")


def lecture_notebook():
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "cnnlens", "display_name": "CNN Lens", "language": "lens"}
    nb.cells = [
        new_markdown_cell("# Convolution"),
        new_code_cell(SLIDE + 'print "the map:"\nconv img f'),
        new_code_cell("conv img f step delay 0"),
        new_code_cell('seed 7\nr = rand 2 2\nshow r\nprint "sum" (sum r)\nprint "again"\nhelp seed'),
        new_code_cell("m = conv img f\nexpect sum m == -12\nx = 3"),
        new_code_cell(""),
        new_code_cell("vars"),
    ]
    return nb


def outputs_of(nb):
    """Outputs with what a run may change (ids, timings) left out."""
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outs = copy.deepcopy(cell.outputs)
        for o in outs:
            o.pop("transient", None)
        out.append((cell.execution_count, outs))
    return out


def test_notebook_outputs_are_stored_like_jupyter(cnnlens_bin, tmp_path):
    src, dst = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(lecture_notebook(), str(src))
    figs = tmp_path / "figs"
    r = run(cnnlens_bin, "run", str(src), "-o", str(dst), "--figures", str(figs))
    assert r.returncode == 0, r.stderr
    nb = nbformat.read(str(dst), as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4 and nb.nbformat_minor >= 5
    assert all(c.get("id") for c in nb.cells)
    assert nb.metadata.language_info.name == "lens"
    cells = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in cells] == [1, 2, 3, 4, None, 5]
    c1 = cells[0].outputs
    assert [o.output_type for o in c1] == ["stream", "execute_result"]
    assert c1[0].text == "the map:\n"
    assert c1[1].data["text/plain"] == SLIDE_MAP
    assert "<table" in c1[1].data["text/html"]
    assert c1[1].execution_count == 1
    c2 = cells[1].outputs
    assert [o.output_type for o in c2] == ["display_data"], "updates replace the one display"
    assert c2[0].data["text/plain"].startswith("conv: window 16 of 16")
    c3 = cells[2].outputs
    assert [o.output_type for o in c3] == ["display_data", "stream"], "one stream output per run of writes"
    assert "image/png" not in c3[0].data and "text/html" in c3[0].data
    assert c3[1].text.startswith("sum ") and c3[1].text.endswith("\nagain\n")
    assert cells[3].outputs == []
    assert cells[4].outputs == []
    assert "text/html" in cells[5].outputs[0].data
    assert (figs / "cell3-1.png").exists(), "the step-through picture"
    assert not (src.with_suffix(".ipynb").read_text() == dst.read_text())


def test_notebook_in_place_and_failure(cnnlens_bin, tmp_path):
    nb = new_notebook()
    nb.cells = [new_code_cell("a = 1"), new_code_cell("a +\n"), new_code_cell("print 2"),
                new_code_cell("b = nosuch")]
    path = tmp_path / "hw.ipynb"
    nbformat.write(nb, str(path))
    r = run(cnnlens_bin, "run", str(path))
    assert r.returncode == 1
    assert "cell 2 failed: SyntaxError" in r.stderr
    out = nbformat.read(str(path), as_version=4)
    nbformat.validate(out)
    err = out.cells[1].outputs[0]
    assert err.output_type == "error" and err.ename == "SyntaxError"
    assert err.traceback[0] == "  line 1, column 4:"
    assert out.cells[2].outputs == [] and out.cells[2].execution_count is None, "later cells do not run"
    r = run(cnnlens_bin, "run", str(path), "--allow-errors")
    assert r.returncode == 1
    out = nbformat.read(str(path), as_version=4)
    assert out.cells[2].outputs[0].text == "2\n"
    assert out.cells[3].outputs[0].ename == "NameError"
    assert "cell 4 failed: NameError" in r.stderr


def test_notebook_expectation_failure_names_both_sides(cnnlens_bin, tmp_path):
    nb = new_notebook()
    nb.cells = [new_code_cell(SLIDE + "expect sum (conv img f) == 3")]
    path = tmp_path / "e.ipynb"
    nbformat.write(nb, str(path))
    r = run(cnnlens_bin, "run", str(path))
    assert r.returncode == 1
    e = nbformat.read(str(path), as_version=4).cells[0].outputs[0]
    assert e.ename == "ExpectationFailed"
    assert e.evalue == "expected sum (conv img f) == 3, but sum (conv img f) is -12"


def test_notebook_matches_nbclient(cnnlens_bin, jupyter_path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("CNNLENS_INTERP", "lens")
    nb = lecture_notebook()
    ref = copy.deepcopy(nb)
    NotebookClient(ref, kernel_name="cnnlens", timeout=60, record_timing=False).execute()
    ref = nbformat.reads(nbformat.writes(ref), as_version=4)
    src = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(src))
    r = run(cnnlens_bin, "run", str(src))
    assert r.returncode == 0, r.stderr
    ours = nbformat.read(str(src), as_version=4)
    assert outputs_of(ours) == outputs_of(ref), _debug_diff(outputs_of(ours), outputs_of(ref))


def _debug_diff(a, b):
    for (ca, oa), (cb, ob) in zip(a, b):
        if (ca, oa) != (cb, ob):
            return json.dumps([ca, oa], default=str)[:1500], json.dumps([cb, ob], default=str)[:1500]


def test_model_notebook_matches_nbclient(cnnlens_bin, jupyter_path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("CNNLENS_INTERP", "lens")
    nb = new_notebook()
    nb.cells = [new_code_cell("seed 1\nm = model fashion\nx = sample fashion test 3\npredict x top 3"),
                new_code_cell("show gradcam x over x size 112\nshow weights conv1 filter 0..3\ngradcam x class 2")]
    ref = copy.deepcopy(nb)
    NotebookClient(ref, kernel_name="cnnlens", timeout=60, record_timing=False).execute()
    ref = nbformat.reads(nbformat.writes(ref), as_version=4)
    src = tmp_path / "m.ipynb"
    nbformat.write(nb, str(src))
    r = run(cnnlens_bin, "run", str(src))
    assert r.returncode == 0, r.stderr
    ours = nbformat.read(str(src), as_version=4)
    assert [len(o) for _, o in outputs_of(ours)] == [1, 3]
    assert outputs_of(ours) == outputs_of(ref), _debug_diff(outputs_of(ours), outputs_of(ref))


def test_rehearsal_cuts_every_long_command_to_a_few_steps(cnnlens_bin, tmp_path):
    """`--rehearse` (a lecturer checking a notebook before class) and
    CNNLENS_REHEARSE=N: steps, epochs and samples, given or default, are cut;
    everything else runs as written."""
    script = tmp_path / "long.lens"
    script.write_text("m = model fashion\nn = 200\n"
                      "a = maximize conv2 filter 0..1 steps n\nprint a\n"
                      "b = maximize conv2 filter 0\nprint b\n"
                      "x = sample fashion test 0\ns = smoothgrad x samples 50\nprint s\n"
                      "print n\n")
    r = run(cnnlens_bin, "run", str(script), "--rehearse")
    assert r.returncode == 0, r.stderr
    assert "rehearsal: every steps, epochs and samples cut to 3" in r.stderr
    assert r.stdout.count("filter of conv2 (3 steps)") == 2, r.stdout
    assert "3 samples" in r.stdout
    assert r.stdout.rstrip().endswith("\n200"), "the variable behind `steps n` is not changed"
    r = run(cnnlens_bin, "run", str(script), env={**os.environ, "CNNLENS_REHEARSE": "5"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("(5 steps)") == 2 and "5 samples" in r.stdout
    # Without it, counts run as written (small ones: this also runs under memcheck).
    script.write_text("m = model fashion\na = maximize conv2 filter 0 steps 7\nprint a\n"
                      "x = sample fashion test 0\ns = smoothgrad x samples 4\nprint s\n")
    r = run(cnnlens_bin, "run", str(script))
    assert r.returncode == 0 and "rehearsal" not in r.stderr
    assert "(7 steps)" in r.stdout and "4 samples" in r.stdout
