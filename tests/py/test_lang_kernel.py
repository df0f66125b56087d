"""The lens language inside the real kernel, driven by jupyter_client as a
notebook drives it: completion, inspect, help paging, execute_result versus
display_data, live updates, error tracebacks, interrupts."""
import base64
import os
import time

import pytest

import lens_client

SLOW = float(os.environ.get("CNNLENS_TEST_SLOW", "1"))  # sanitizer/valgrind runs (conftest.py)
TIMEOUT = 20 * SLOW
SLIDE = ("img = [1 0 0 0 0 1; 0 1 0 0 1 0; 0 0 1 1 0 0; 1 0 0 0 1 0; 0 1 0 0 1 0; 0 0 1 0 1 0]\n"
         "f = [-1 1 -1; -1 1 -1; -1 1 -1]")


@pytest.fixture(scope="module")
def kernel(jupyter_path):
    with lens_client.lens_kernel(TIMEOUT) as (km, kc):
        yield km, kc


def execute(kc, code, timeout=TIMEOUT):
    return lens_client.execute(kc, code, timeout)


def of_type(msgs, t):
    return [m["content"] for m in msgs if m["msg_type"] == t]


def test_language_info(kernel):
    km, kc = kernel
    kc.kernel_info()
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    assert reply["content"]["language_info"]["name"] == "lens"


def test_bare_expression_is_the_result_show_is_a_display(kernel):
    km, kc = kernel
    reply, msgs = execute(kc, SLIDE + "\nshow [1 2; 3 4]\nconv img f")
    assert reply["status"] == "ok"
    shown = of_type(msgs, "display_data")
    assert len(shown) == 1 and shown[0]["data"]["text/plain"] == "1 2\n3 4"
    results = of_type(msgs, "execute_result")
    assert len(results) == 1
    assert results[0]["execution_count"] == reply["execution_count"]
    assert results[0]["data"]["text/plain"] == "-1 -1 -1 -1\n-1 -1 -2  1\n-1 -1 -2  1\n-1  0 -4  3"
    assert "<table" in results[0]["data"]["text/html"]


def test_print_streams_stdout(kernel):
    km, kc = kernel
    reply, msgs = execute(kc, 'print "hello, world"')
    assert "".join(s["text"] for s in of_type(msgs, "stream")) == "hello, world\n"
    assert of_type(msgs, "execute_result") == []


def test_step_updates_one_display_in_place(kernel):
    km, kc = kernel
    reply, msgs = execute(kc, SLIDE + "\nconv img f step delay 0.01")
    assert reply["status"] == "ok"
    first = of_type(msgs, "display_data")
    updates = of_type(msgs, "update_display_data")
    assert len(first) == 1 and len(updates) == 16
    display_id = first[0]["transient"]["display_id"]
    assert all(u["transient"]["display_id"] == display_id for u in updates)
    png = base64.b64decode(updates[-1]["data"]["image/png"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_error_is_one_message_with_a_caret(kernel):
    km, kc = kernel
    reply, msgs = execute(kc, "a = [1 2]\nconv a nosuch")
    assert reply["status"] == "error"
    errors = of_type(msgs, "error")
    assert len(errors) == 1
    assert errors[0]["ename"] == "NameError"
    assert errors[0]["traceback"][:3] == ["  line 2, column 8:", "    conv a nosuch", "           ^"]
    assert errors[0]["traceback"][3] == "NameError: unknown name 'nosuch': no variable or command is called that"
    assert reply["ename"] == "NameError"
    reply, msgs = execute(kc, "a")
    assert of_type(msgs, "execute_result")[0]["data"]["text/plain"] == "1 2", "variables survive errors"


def test_misspelt_option_names_the_nearest(kernel):
    km, kc = kernel
    reply, msgs = execute(kc, SLIDE + "\nconv img f strde 2")
    assert reply["evalue"] == "unknown option 'strde' \u2014 did you mean 'stride'?"
    assert of_type(msgs, "error")[0]["traceback"][0] == "  line 3, column 12:"


def test_help_pages_through_the_payload(kernel):
    km, kc = kernel
    reply, msgs = execute(kc, "help conv")
    assert reply["status"] == "ok"
    (page,) = reply["payload"]
    assert page["source"] == "page" and page["start"] == 0
    assert page["data"]["text/plain"].startswith("conv IMAGE FILTER [stride N] [pad N] [step] [delay X]")


def test_inspect_shows_the_same_help(kernel):
    km, kc = kernel
    msg_id = kc.inspect("m = conv img f", 6)
    reply = kc.get_shell_msg(timeout=TIMEOUT)["content"]
    assert reply["status"] == "ok" and reply["found"]
    reply_help, _ = execute(kc, "help conv")
    assert reply["data"]["text/plain"] == reply_help["payload"][0]["data"]["text/plain"]
    del msg_id


def test_completion_of_options_and_code_points(kernel):
    km, kc = kernel
    execute(kc, SLIDE)
    kc.complete("conv img f st", 13)
    reply = kc.get_shell_msg(timeout=TIMEOUT)["content"]
    assert {"stride", "step"} <= set(reply["matches"])
    assert reply["cursor_start"] == 11 and reply["cursor_end"] == 13
    execute(kc, "\u00e9t\u00e9 = 1")
    code = 'print "\u00fc\u4e2d" \u00e9t'
    kc.complete(code, len(code))
    reply = kc.get_shell_msg(timeout=TIMEOUT)["content"]
    assert "\u00e9t\u00e9" in reply["matches"]
    assert reply["cursor_start"] == len(code) - 2


def test_is_complete(kernel):
    km, kc = kernel
    for code, status in [("m = [1 0;", "incomplete"), ("x = (1 +", "incomplete"),
                         ("conv img f", "complete"), ("x = 1)", "invalid")]:
        kc.is_complete(code)
        reply = kc.get_shell_msg(timeout=TIMEOUT)["content"]
        assert reply["status"] == status, code
        if status == "incomplete":
            assert reply["indent"] == "  "


def interrupt_during(km, kc, code, after):
    """Runs `code`, interrupts it `after` seconds later; returns the cell's
    messages up to idle and the seconds from the interrupt to idle."""
    msg_id = kc.execute(code)
    time.sleep(after)
    t0 = time.time()
    km.interrupt_kernel()
    msgs = []
    while True:
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        msgs.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return msgs, time.time() - t0


def test_interrupt_keeps_variables(kernel):
    km, kc = kernel
    execute(kc, SLIDE + "\nkept = 5")
    msgs, stopped_in = interrupt_during(km, kc, "kept = 6\nconv img f step delay 2", 0.8)
    assert stopped_in < 1.0, "stops within a fraction of a second"
    assert of_type(msgs, "error")[0]["ename"] == "KeyboardInterrupt"
    reply, msgs = execute(kc, "kept")
    assert of_type(msgs, "execute_result")[0]["data"]["text/plain"] == "6"


def test_fashion_model_end_to_end(kernel):
    km, kc = kernel
    reply, msgs = execute(kc, "m = model fashion\nx = sample fashion test 0\npredict x top 3", timeout=3 * TIMEOUT)
    assert reply["status"] == "ok", reply.get("evalue")
    table = of_type(msgs, "execute_result")[0]["data"]
    assert "<table" in table["text/html"] and "Ankle boot" in table["text/plain"]
    reply, msgs = execute(kc, "cam = gradcam x class \"ankle boot\"\nshow cam over x size 112\ncam")
    assert reply["status"] == "ok", reply.get("evalue")
    (shown,) = of_type(msgs, "display_data")
    assert base64.b64decode(shown["data"]["image/png"]).startswith(b"\x89PNG")
    text = of_type(msgs, "execute_result")[0]["data"]["text/plain"]
    assert text.startswith("heatmap 11x11 gradcam of class 9 (Ankle boot) at conv2")
    kc.complete("gradcam x layer co", 18)
    reply = kc.get_shell_msg(timeout=TIMEOUT)["content"]
    assert set(reply["matches"]) == {"conv1", "conv2"}
    kc.complete("gradcam x class Ank", 19)
    reply = kc.get_shell_msg(timeout=TIMEOUT)["content"]
    assert reply["matches"] == ["Ankle_boot"]
    reply, msgs = execute(kc, "gradcam x class ankle_boot layer conv3")
    assert reply["evalue"].startswith("gradcam: unknown layer 'conv3'")
    reply, msgs = execute(kc, "gradcam m")
    assert reply["evalue"] == "gradcam: x must be an image or tensor, got model"


# The slide's own arithmetic is plain loops: a big image with a big filter is
# hours of work, and a 4000x4000 matrix is a 16-megapixel PNG.  Each must
# still stop when the student presses stop.
@pytest.mark.parametrize("setup,code", [
    ("big = rand 1500 1500\nwide = rand 700 700", "conv big wide"),
    ("big = rand 3000 3000", "pool big size 1500 stride 1"),
    ("big = rand 4000 4000", "show big size 4000"),
], ids=["conv", "pool", "png"])
def test_interrupt_stops_plain_loops_over_big_matrices(kernel, setup, code):
    km, kc = kernel
    reply, _ = execute(kc, setup + "\nkept = 1")
    assert reply["status"] == "ok", reply.get("evalue")
    # 0.6 s whatever the build: every one of these cells runs for seconds even
    # natively, and under memcheck the PNG case ends within 0.6 * SLOW.
    msgs, stopped_in = interrupt_during(km, kc, "kept = 2\n" + code, 0.6)
    assert stopped_in < 1.0 * SLOW
    assert of_type(msgs, "error")[0]["ename"] == "KeyboardInterrupt"
    reply, msgs = execute(kc, "kept")
    assert of_type(msgs, "execute_result")[0]["data"]["text/plain"] == "2"
    execute(kc, "big = 0")  # frees the 64 MB


def test_interrupt_stops_long_engine_work(kernel):
    km, kc = kernel
    execute(kc, "m = model fashion\nkept = 1", timeout=3 * TIMEOUT)
    msgs, stopped_in = interrupt_during(km, kc, "kept = 2\nshow maximize conv2 filter 0..13 steps 100000", 1.0)
    assert stopped_in < 1.0 * SLOW
    assert of_type(msgs, "error")[0]["ename"] == "KeyboardInterrupt"
    progress = of_type(msgs, "display_data") + of_type(msgs, "update_display_data")
    assert progress and progress[-1]["data"]["text/plain"].startswith("maximize"), "live progress"
    reply, msgs = execute(kc, "kept")
    assert of_type(msgs, "execute_result")[0]["data"]["text/plain"] == "2"
