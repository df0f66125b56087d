"""The live display of maximize and fool in the real kernel, driven by
jupyter_client as a notebook drives it: while the engine runs, the display
that first shows a progress bar shows the image forming (small PNGs, at most
one every 0.3 s), the final figure replaces it under the same display_id, an
interrupt stops the run at once and leaves the last image; nbclient and
`cnnlens run` keep only the final figure in the saved notebook."""
import base64
import datetime
import os
import re
import subprocess
import time

import cv2
import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

import lens_client
from conftest import SLOW as SCALE
from conftest import NATIVE, VALGRIND

# Time limits scale with CNNLENS_TEST_SLOW (conftest.py: 100 under valgrind);
# the latency bounds below with SLOW.
TIMEOUT = 60 * SCALE
EVERY = 0.3            # CL_SNAPSHOT_EVERY: the least time between two live pictures
MAX_MSG = 100 * 1000   # each live picture stays under 100 kB, as base64 in its message
RUN_SECONDS = 2.5      # how long the finishing runs are made to last
MAX_STEPS = 100000     # the default limit on steps (CNNLENS_MAX_STEPS)
# Under a sanitizer or valgrind a step and a picture take many times longer.
SLOW = 5 if (os.environ.get("CNNLENS_TEST_BIN")
             or os.environ.get("CNNLENS_SANITIZE", "").upper() in ("1", "ON", "TRUE")) else 1


@pytest.fixture(scope="module")
def kernel(jupyter_path):
    with lens_client.lens_kernel(TIMEOUT, now=True) as (km, kc):
        reply, _ = execute(kc, "m = model fashion\nseed 1")
        assert reply["status"] == "ok", reply.get("evalue")
        yield km, kc


def collect(kc, msg_id, timeout=TIMEOUT, on_msg=None):
    """IOPub messages of a request up to idle, each with its arrival time."""

    def arrived(msg):
        msg["arrived"] = time.time()
        if on_msg:
            on_msg(msg)

    return lens_client.collect(kc, msg_id, timeout, arrived)


def reply_of(kc, msg_id):
    return lens_client.shell_reply(kc, msg_id, TIMEOUT)["content"]


def execute(kc, code, timeout=TIMEOUT):
    return lens_client.execute(kc, code, timeout)


def displays(msgs):
    return [m for m in msgs if m["msg_type"] in ("display_data", "update_display_data")]


def sent_at(msg):
    """When the kernel sent a message (its header date), in seconds."""
    d = msg["header"]["date"]
    if isinstance(d, str):
        d = datetime.datetime.fromisoformat(d.replace("Z", "+00:00"))
    return d.timestamp()


def png_of(content):
    raw = base64.b64decode(content["data"]["image/png"])
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None, "a live picture is not a PNG"
    return raw, img


def steps_for(kc, command, seconds):
    """Steps that make `command` (a fixed-step run) last about `seconds` on this
    machine now: a shared machine's speed varies too much for a fixed number.
    Under memcheck a step of a 14-filter maximize takes 1.5 s: the probe starts
    at 2 steps (not 100: 2.5 min a probe) and runs last 4x longer, so that a few
    steps still span several live pictures."""
    n = 2 if VALGRIND else 100
    if VALGRIND:
        seconds *= 4
    while True:
        t0 = time.time()
        reply, _ = execute(kc, f"_probe = {command} steps {n}")
        assert reply["status"] == "ok", reply.get("evalue")
        took = time.time() - t0
        if took > 0.3 or n >= MAX_STEPS:
            return min(MAX_STEPS, max(n, int(n * seconds / took)))
        n *= 4


def check_live_run(msgs, final_text):
    """The display sequence of a finished run: progress text, then live
    pictures, then the final figure, all under one display_id."""
    shown = displays(msgs)
    assert shown[0]["msg_type"] == "display_data", "the live display opens with display_data"
    assert sum(m["msg_type"] == "display_data" for m in shown) == 1, "one display, updated in place"
    display_id = shown[0]["content"]["transient"]["display_id"]
    assert all(m["content"]["transient"]["display_id"] == display_id for m in shown)
    final = shown[-1]["content"]
    assert final_text in final["data"]["text/plain"], final["data"]["text/plain"]
    live = [m for m in shown[:-1] if "image/png" in m["content"]["data"]]
    assert live, "no live picture before the final figure"
    for m in live:
        raw, img = png_of(m["content"])
        b64 = len(m["content"]["data"]["image/png"])
        assert b64 < MAX_MSG, f"a live picture of {len(raw)} bytes ({b64} as base64)"
        assert img.shape[0] >= 28 and img.shape[1] >= 28
    # Once a picture shows, no progress text replaces it until the figure does.
    first = shown.index(live[0])
    assert all("image/png" in m["content"]["data"] for m in shown[first:])
    # Rate: the kernel sends at most one picture every EVERY seconds.
    times = [sent_at(m) for m in live]
    gaps = np.diff(times)
    if len(gaps):
        assert gaps.min() >= EVERY - 0.02, f"two live pictures {gaps.min():.3f} s apart"
    start = sent_at(shown[0])
    span = sent_at(shown[-1]) - start
    assert len(live) <= span / EVERY + 1, f"{len(live)} pictures in {span:.2f} s"
    assert times[0] - start >= EVERY - 0.05, "the first picture waits one interval"
    rate = sum(len(m["content"]["data"]["image/png"]) for m in live) / max(span, EVERY)
    assert rate < 500_000, f"live pictures use {rate / 1e3:.0f} kB/s of IOPub"
    return live, final


def test_maximize_shows_the_image_forming_and_ends_as_the_figure(kernel):
    km, kc = kernel
    steps = steps_for(kc, "maximize conv2 filter 0..13", RUN_SECONDS)
    reply, msgs = execute(kc, f"show maximize conv2 filter 0..13 steps {steps}")
    assert reply["status"] == "ok", reply.get("evalue")
    live, final = check_live_run(msgs, "images that maximise filter of conv2")
    text = live[-1]["content"]["data"]["text/plain"]
    assert text.startswith("maximize conv2 filter 0..13: step ") and f" of {steps}" in text
    assert "values 0: " in text and "13: " in text, text
    done = [int(m["content"]["data"]["text/plain"].split("step ")[1].split(" ")[0]) for m in live]
    assert done == sorted(done) and 0 < done[0] and done[-1] < steps
    # The grid of the live picture is the final figure's, under a banner.
    _, live_img = png_of(live[-1]["content"])
    _, final_img = png_of(final)
    assert live_img.shape[1] == final_img.shape[1]
    assert live_img.shape[0] > final_img.shape[0]


def test_fool_shows_the_image_and_the_probability(kernel):
    km, kc = kernel
    # An unreachable confidence: the run lasts its steps.
    command = "fool class 3 confidence 0.9999999"
    steps = steps_for(kc, command, RUN_SECONDS)
    reply, msgs = execute(kc, f"show {command} steps {steps}")
    assert reply["status"] == "ok", reply.get("evalue")
    live, final = check_live_run(msgs, "fooling image for class 3")
    for m in live:
        text = m["content"]["data"]["text/plain"]
        assert text.startswith("fool class 3") and "probability 0." in text, text
        p = float(text.split("probability ")[1].split()[0])
        assert 0 <= p <= 1


def test_a_short_run_is_not_slowed_by_pictures(kernel):
    km, kc = kernel
    reply, msgs = execute(kc, "show maximize conv2 filter 0 steps 5")
    assert reply["status"] == "ok"
    shown = displays(msgs)
    live = [m for m in shown[:-1] if "image/png" in m["content"]["data"]]
    # No picture is drawn before one interval has passed ...
    start = sent_at(shown[0])
    assert all(sent_at(m) - start >= EVERY - 0.05 for m in live)
    if NATIVE:
        # ... so a run shorter than that has none.  (Under memcheck even one
        # step and the final figure take about 0.3 s.)
        assert sent_at(shown[-1]) - start < EVERY
        assert not live


def test_an_assigned_run_ends_as_text_not_as_a_stale_picture(kernel):
    km, kc = kernel
    steps = steps_for(kc, "maximize conv2 filter 0..3", 1.0)
    reply, msgs = execute(kc, f"z = maximize conv2 filter 0..3 steps {steps}\nprint \"next\"")
    assert reply["status"] == "ok", reply.get("evalue")
    shown = displays(msgs)
    assert any("image/png" in m["content"]["data"] for m in shown), "no live picture"
    last = shown[-1]["content"]["data"]
    assert last == {"text/plain": "maximize: done"}, last
    # ... and the text came before the next statement's output
    kinds = [m["msg_type"] for m in msgs]
    assert kinds.index("stream") > msgs.index(shown[-1])


@pytest.mark.parametrize("command", ["show maximize conv2 filter 0..13 steps 100000",
                                     "show fool class 3 confidence 0.9999999 steps 100000"])
def test_an_interrupt_stops_the_run_and_leaves_the_last_image(kernel, command):
    km, kc = kernel
    execute(kc, "kept = 7")
    msg_id = kc.execute(command)
    asked = {}

    def interrupt_after_two_pictures(msg):
        pictures = msg["msg_type"] == "update_display_data" and "image/png" in msg["content"]["data"]
        asked["n"] = asked.get("n", 0) + pictures
        if asked["n"] == 2 and "at" not in asked:
            asked["at"] = time.time()
            km.interrupt_kernel()

    msgs = collect(kc, msg_id, on_msg=interrupt_after_two_pictures)
    reply = reply_of(kc, msg_id)
    assert "at" in asked, "no live picture came"
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    stopped_after = msgs[-1]["arrived"] - asked["at"]
    assert stopped_after < 1.0 * SLOW, f"the run took {stopped_after:.2f} s to stop"
    shown = displays(msgs)
    last = shown[-1]["content"]["data"]
    assert "image/png" in last, "the display should keep the last picture"
    assert last["text/plain"].endswith("(stopped)"), last["text/plain"]
    png_of(shown[-1]["content"])
    assert len(last["image/png"]) < MAX_MSG
    errors = [m for m in msgs if m["msg_type"] == "error"]
    assert len(errors) == 1 and msgs.index(errors[0]) > msgs.index(shown[-1])
    # The session goes on.
    reply, msgs = execute(kc, "kept + 1")
    assert [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"] == ["8"]
    reply, msgs = execute(kc, "show maximize conv2 filter 0 steps 3")
    assert reply["status"] == "ok"


def notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "cnnlens", "display_name": "CNN Lens", "language": "lens"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    return nb


@pytest.fixture(scope="module")
def long_steps(kernel):
    """Steps that keep a 14-filter maximize and a fool running ~2 s."""
    km, kc = kernel
    return (steps_for(kc, "maximize conv2 filter 0..13", 2.0),
            steps_for(kc, "fool class 3 confidence 0.9999999", 2.0))


def lecture_cells(steps):
    max_steps, fool_steps = steps
    return ["m = model fashion", f"show maximize conv2 filter 0..13 steps {max_steps}",
            f"x = maximize conv2 filter 0..13 steps {max_steps}",
            f"show fool class 3 confidence 0.9999999 steps {fool_steps}"]


def check_saved(nb):
    """Only the final figures are in the notebook: no live picture, no progress text."""
    out = [c.outputs for c in nb.cells]
    assert len(out[1]) == 1 and out[1][0]["output_type"] == "display_data", out[1]
    assert out[1][0]["data"]["text/plain"].startswith("images that maximise filter of conv2")
    assert "image/png" in out[1][0]["data"] and "text/html" in out[1][0]["data"]
    assert len(out[2]) == 1 and out[2][0]["data"] == {"text/plain": "maximize: done"}, out[2]
    figs = [o for o in out[3] if o["output_type"] == "display_data"]
    assert len(figs) == 1 and "fooling image for class 3" in figs[0]["data"]["text/plain"], out[3]
    assert "image/png" in figs[0]["data"]
    # The figure sits where the live display opened, before the run's summary line.
    assert [o["output_type"] for o in out[3]] == ["display_data", "stream"]
    text = nbformat.writes(nb)
    assert not re.search(r"step \d+ of \d+|maximize \[|fool \[", text), "live text was stored"


def test_nbclient_keeps_only_the_final_figures(kernel, long_steps):
    nb = notebook(*lecture_cells(long_steps))
    seen = []

    class Watching(NotebookClient):
        def process_message(self, msg, cell, cell_index):
            if msg["msg_type"] == "update_display_data" and "image/png" in msg["content"]["data"]:
                seen.append(cell_index)
            return super().process_message(msg, cell, cell_index)

    Watching(nb, timeout=int(120 * SCALE), kernel_name="cnnlens").execute()
    assert set(seen) >= {1, 2, 3}, f"live pictures went by in cells {sorted(set(seen))}"
    check_saved(nb)


def test_cnnlens_run_keeps_only_the_final_figures(cnnlens_bin, long_steps, tmp_path):
    path = tmp_path / "live.ipynb"
    nbformat.write(notebook(*lecture_cells(long_steps)), path)
    figs = tmp_path / "figs"
    r = subprocess.run([cnnlens_bin, "run", str(path), "-o", str(tmp_path / "out.ipynb"),
                        "--figures", str(figs)], capture_output=True, text=True, timeout=300 * SCALE)
    assert r.returncode == 0, r.stderr
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    check_saved(out)
    # One file per figure, holding the final figure (the assigned run has none).
    assert sorted(p.name for p in figs.iterdir()) == ["cell2-1.png", "cell4-1.png"]
    final = base64.b64decode(out.cells[1].outputs[0]["data"]["image/png"])
    assert (figs / "cell2-1.png").read_bytes() == final


def occlusion_setup(tmp_path):
    """The model and image of the occlusion test, and its (window, stride) runs:
    the first list from the quickest, the last one long enough to interrupt.
    ResNet18 on a 224x224 photo, as in the lecture; under memcheck, where one
    ResNet18 pass takes seconds, the lecture CNN on a 28x28 test image (the
    same occlusion loop and live display, about 400x less work a window)."""
    if VALGRIND:
        return ("xi = sample fashion test 17", [(6, 4), (6, 2), (6, 1)], (4, 1))
    y, x = np.mgrid[0:256, 0:256]
    photo = np.stack([(x % 64) * 4, (y % 32) * 8, ((x + y) % 128) * 2], -1).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "pattern.png"), photo)
    return (f'r = model resnet18\nxi = image "{tmp_path / "pattern.png"}" preprocess imagenet',
            [(32, 32), (32, 16), (32, 8)], (16, 4))


def test_occlusion_shows_the_rows_done_so_far(kernel, tmp_path):
    km, kc = kernel
    setup, runs, (window, stride) = occlusion_setup(tmp_path)
    reply, _ = execute(kc, setup)
    assert reply["status"] == "ok", reply.get("evalue")
    try:
        for w, s in runs:  # the first run that lasts long enough to be watched
            reply, msgs = execute(kc, f"show occlusion xi window {w} stride {s}", timeout=600 * SCALE)
            assert reply["status"] == "ok", reply.get("evalue")
            if any("image/png" in m["content"]["data"] for m in displays(msgs)[:-1]):
                break
        live, final = check_live_run(msgs, "occlusion of class")
        first = live[0]["content"]["data"]
        assert first["text/plain"].startswith("occlusion of the predicted class: ")
        done = [int(m["content"]["data"]["text/plain"].split(": ")[1].split()[0]) for m in live]
        assert done == sorted(done) and done[0] > 0
        # The rows still to come are grey; the final map has none.
        _, img = png_of(live[0]["content"])
        grey = np.all(img[..., :3] == 224, axis=-1)
        assert grey[-10:].mean() > 0.9, "the last rows should be waiting (grey)"
        _, fin = png_of(final)
        assert not np.all(fin[..., :3] == 224, axis=-1).any()
        # An interrupt leaves the last rows shown.
        msg_id = kc.execute(f"show occlusion xi window {window} stride {stride}")
        asked = {}

        def interrupt_at_first_picture(msg):
            if msg["msg_type"] == "update_display_data" and "image/png" in msg["content"]["data"] \
                    and "at" not in asked:
                asked["at"] = time.time()
                km.interrupt_kernel()

        msgs = collect(kc, msg_id, timeout=600 * SCALE, on_msg=interrupt_at_first_picture)
        reply = reply_of(kc, msg_id)
        assert "at" in asked and reply["ename"] == "KeyboardInterrupt"
        assert msgs[-1]["arrived"] - asked["at"] < 2.0 * SLOW
        assert "image/png" in displays(msgs)[-1]["content"]["data"]
    finally:
        execute(kc, "m = model fashion")
