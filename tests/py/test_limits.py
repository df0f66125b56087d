"""Limits (engine/limits.h) hit with real inputs through a real kernel driven by
jupyter_client: a PNG over the pixel limit (lowered by CNNLENS_MAX_IMAGE_PIXELS),
tensors, models and weight files, matrix and string literals, nesting, the steps
of long commands, and a message over CNNLENS_MAX_MESSAGE_BYTES on the wire.
Each error is one LimitError that names the limit and how to raise it, and a
value stored before it is still there after it.  Also: `limits` shows and
changes the table, and a malformed CNNLENS_MAX_ value stops the start."""
import os
import queue
import subprocess
import time

import cv2
import numpy as np
import pytest
from jupyter_client.manager import KernelManager

import lens_client

from conftest import SLOW  # sanitizer and valgrind runs are slower

TIMEOUT = 30 * SLOW
ENV = {"CNNLENS_MAX_IMAGE_PIXELS": "10k", "CNNLENS_MAX_MESSAGE_BYTES": "1M"}


@pytest.fixture(scope="module")
def kernel(jupyter_path):
    km = KernelManager(kernel_name="cnnlens")
    km.start_kernel(env=dict(os.environ, **ENV), stderr=subprocess.PIPE)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=TIMEOUT)
    stderr = km.provisioner.process.stderr
    os.set_blocking(stderr.fileno(), False)
    yield kc, stderr
    kc.stop_channels()
    km.shutdown_kernel(now=False)


@pytest.fixture
def kc(kernel):
    """The client; every limit changed in a test goes back to where it started."""
    kc, _ = kernel
    yield kc
    ok(kc, "\n".join([f"limits {n} default" for n in
                      ("tensor_bytes", "model_bytes", "matrix_elements", "string_bytes", "depth",
                       "steps")] + [f'limits {k[12:].lower()} "{v}"' for k, v in ENV.items()]))


def execute(kc, code, timeout=TIMEOUT):
    return lens_client.execute(kc, code, timeout)


def ok(kc, code):
    reply, msgs = execute(kc, code)
    assert reply["status"] == "ok", reply.get("evalue")
    return msgs


def stdout(msgs):
    return "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")


def limit_error(kc, code, name, needle):
    """Runs code after storing a value, expects one LimitError naming limit
    `name` and containing needle, and checks the value survived."""
    ok(kc, "keep = 42")
    reply, msgs = execute(kc, code)
    assert reply["status"] == "error"
    errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
    assert len(errors) == 1
    assert reply["ename"] == errors[0]["ename"] == "LimitError", reply["evalue"]
    env = "CNNLENS_MAX_" + name.upper()
    assert reply["evalue"].endswith(f"(set {env} or `limits {name} ...`)"), reply["evalue"]
    assert needle in reply["evalue"], reply["evalue"]
    assert stdout(ok(kc, "print keep")) == "42\n", "the session lost a value"
    return reply["evalue"]


def test_limits_lists_the_table_with_env_values(kc):
    msgs = ok(kc, "limits")
    result = [m["content"] for m in msgs if m["msg_type"] == "execute_result"][0]["data"]
    text = result["text/plain"]
    for name in ("image_pixels", "tensor_bytes", "model_bytes", "matrix_elements", "string_bytes",
                 "depth", "steps", "message_bytes"):
        assert name in text and "CNNLENS_MAX_" + name.upper() in text
    rows = {line.split()[0]: line for line in text.splitlines()[1:]}
    assert rows["image_pixels"].split()[1:5] == ["10", "kpixels", "64", "Mpixels"]
    assert rows["message_bytes"].split()[1:5] == ["1", "MiB", "16", "MiB"]
    assert rows["steps"].split()[1:3] == ["100000", "100000"]
    assert "<table" in result["text/html"]


def test_limits_changes_one_and_refuses_bad_values(kc):
    msgs = ok(kc, 'limits steps "20k"')
    assert "steps  20000  100000" in [m for m in msgs if m["msg_type"] == "execute_result"][0][
        "content"]["data"]["text/plain"]
    reply, _ = execute(kc, "limits steps 0")
    assert reply["ename"] == "ValueError"
    assert reply["evalue"] == "steps 0 is out of range: it must be between 1 and 1000000000"
    reply, _ = execute(kc, 'limits tensor_bytes "lots"')
    assert "is not a valid limit (write a number of bytes, e.g. 67108864, 64M or 1G)" in reply[
        "evalue"]
    reply, _ = execute(kc, "limits step 5")
    assert reply["ename"] == "NameError"
    assert reply["evalue"] == "unknown limit 'step' \u2014 did you mean 'steps'?"
    ok(kc, "limits steps default")
    reply, _ = execute(kc, "help limits")
    page = reply["payload"][0]["data"]["text/plain"]
    assert "limits [NAME] [VALUE]" in page and "CNNLENS_MAX_<NAME>" in page


def test_image_over_the_pixel_limit_set_by_the_environment(kc, tmp_path):
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), np.full((100, 120, 3), 128, np.uint8))
    limit_error(kc, f'x = image "{big}"', "image_pixels",
                "the PNG is 120x100 = 12 kpixels; the limit is 10 kpixels")
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.full((50, 60, 3), 128, np.uint8))
    ok(kc, f'x = image "{small}"')
    limit_error(kc, "show x size 200", "image_pixels", "the resized image is 200x166 = 33.2 kpixels; the limit is 10 kpixels")
    ok(kc, 'limits image_pixels "1M"')
    try:
        ok(kc, f'y = image "{big}"\nshow y size 200')
    finally:
        ok(kc, 'limits image_pixels "10k"')


def test_tensor_over_the_byte_limit(kc, tmp_path):
    ok(kc, 'limits tensor_bytes "1M"')
    ok(kc, "z = zeros 512 512")
    limit_error(kc, "z = zeros 1000 1000", "tensor_bytes",
                "a tensor of shape [1000, 1000] (1000000 numbers) is 3.81 MiB; the limit is 1 MiB")
    big = tmp_path / "big.npy"
    np.save(big, np.ones((3, 300, 300), np.float32))
    limit_error(kc, f'a = load "{big}"', "tensor_bytes",
                "big.npy': a tensor of shape [3, 300, 300] (270000 numbers) is 1.03 MiB; "
                "the limit is 1 MiB")
    ok(kc, 'limits tensor_bytes "2M"')
    assert stdout(ok(kc, f'a = load "{big}"\nprint shape a')).strip() == "[3 300 300]"
    assert stdout(ok(kc, "print shape z")).strip() == "[512 512]", "z kept its old value"


def test_model_and_weight_file_over_the_model_limit(kc, tmp_path):
    import torch
    junk = tmp_path / "junk.pth"
    torch.save({"junk": torch.zeros(1 << 20)}, junk)  # 4 MiB
    ok(kc, 'limits model_bytes "1M"')
    limit_error(kc, "m = sequential [dense 1000; dense 10]", "model_bytes",
                "the size of the model's parameters up to 'dense1' is 2.99 MiB; the limit is 1 MiB")
    limit_error(kc, f'm = sequential [conv 4 3; dense 10] weights "{junk}"', "model_bytes",
                "junk.pth': the weight file is 4 MiB; the limit is 1 MiB")


def test_matrix_literal_over_the_element_limit(kc):
    ok(kc, "limits matrix_elements 100")
    ok(kc, "m = [" + " ".join(["1"] * 100) + "]")
    limit_error(kc, "m = [" + " ".join(["1"] * 50) + ";\n" + " ".join(["2"] * 51) + "]",
                "matrix_elements",
                "the number of elements of this matrix literal (counted so far) is 101; "
                "the limit is 100")
    assert stdout(ok(kc, "print shape m")).strip() == "[1 100]"


def test_string_literal_over_the_default_limit(kc):
    ok(kc, 'limits message_bytes "8M"')
    text = limit_error(kc, 's = "' + "a" * (1100 * 1024) + '"', "string_bytes",
                       "this string is 1.07 MiB; the limit is 1 MiB")
    assert text.startswith("this string")
    ok(kc, 'b = "' + "a" * 1000 + '"' + "\nb = b + b" * 10)  # 1,024,000 bytes
    limit_error(kc, "b = b + b", "string_bytes", "the joined string is 1.95 MiB; the limit is 1 MiB")
    assert stdout(ok(kc, 'print b == "" + b')) == "1\n"


def test_nesting_over_the_depth_limit(kc):
    limit_error(kc, "x = " + "(" * 201 + "1" + ")" * 201, "depth",
                "brackets nested too deeply: the depth is 201; the limit is 200")
    ok(kc, "x = " + "(" * 200 + "1" + ")" * 200)
    limit_error(kc, "x = " + "+".join(["1"] * 202), "depth", "expression too long")
    # A chain of nested commands used to overflow the stack at about 20,000.
    limit_error(kc, "show " * 20000 + "keep", "depth",
                "evaluation nested too deeply: the depth is 201; the limit is 200")
    ok(kc, "limits depth 1000")
    ok(kc, "x = " + "(" * 1000 + "1" + ")" * 1000)
    reply, _ = execute(kc, "show " * 999 + "x")  # deep enough now; `show show` is an error itself
    assert reply["evalue"] == "show gives no value that show could use"


def test_steps_of_long_commands(kc):
    ok(kc, "m = model fashion\nx = sample fashion test 17")
    limit_error(kc, "show maximize conv2 filter 0 steps 200000", "steps",
                "maximize: steps is 200000; the limit is 100000")
    limit_error(kc, "show fool class 3 steps 1e6", "steps", "fool: steps is 1000000")
    limit_error(kc, "train m on fashion epochs 200", "steps",
                "train: epochs x batches is 187600; the limit is 100000")
    ok(kc, "limits steps 100")
    limit_error(kc, "show occlusion x window 2 stride 1", "steps",
                "occlusion: the number of windows is 729; the limit is 100")
    limit_error(kc, "show smoothgrad x samples 101", "steps", "smoothgrad: samples is 101")
    limit_error(kc, "show intgrad x steps 150", "steps", "intgrad: steps is 150")
    limit_error(kc, "train m on fashion limit 6464 batch 64", "steps",
                "train: epochs x batches is 101")
    ok(kc, "show maximize conv2 filter 0 steps 100")


def test_message_over_the_limit_is_dropped_on_the_wire(kernel, kc):
    _, stderr = kernel
    stderr.read()
    ok(kc, "keep = 42")
    msg_id = kc.execute("# " + "x" * (1 << 20))  # 1 MiB of code: over the 1 MiB limit
    with pytest.raises(queue.Empty):
        while True:
            reply = kc.get_shell_msg(timeout=2)
            assert reply["parent_header"].get("msg_id") != msg_id, "an oversized message ran"
    time.sleep(0.1)
    log = (stderr.read() or b"").decode(errors="replace")
    assert "exceeds the size limit: its size is 1 MiB (" in log, log
    assert "bytes); the limit is 1 MiB (1048576 bytes) (set CNNLENS_MAX_MESSAGE_BYTES or " \
           "`limits message_bytes ...`)" in log, log
    assert stdout(ok(kc, "print keep")) == "42\n"
    ok(kc, 'limits message_bytes "4M"')
    assert execute(kc, "# " + "x" * (1 << 20))[0]["status"] == "ok"


@pytest.mark.parametrize("value,needle", [
    ("lots", 'CNNLENS_MAX_STEPS "lots" is not a valid limit (write a whole number'),
    ("0", "CNNLENS_MAX_STEPS 0 is out of range: it must be between 1 and 1000000000"),
])
def test_a_malformed_environment_value_stops_the_start(cnnlens_bin, tmp_path, value, needle):
    script = tmp_path / "a.lens"
    script.write_text('print "hi"\n')
    env = dict(os.environ, CNNLENS_MAX_STEPS=value)
    for args in (["run", str(script)], ["kernel", "-f", str(tmp_path / "none.json")]):
        r = subprocess.run([cnnlens_bin] + args, env=env, capture_output=True, text=True,
                           timeout=TIMEOUT)
        assert r.returncode == 2
        assert needle in r.stderr
        assert "hi" not in r.stdout
    r = subprocess.run([cnnlens_bin, "run", str(script)], capture_output=True, text=True,
                       env=dict(os.environ, CNNLENS_MAX_STEP="5"), timeout=TIMEOUT)
    assert r.returncode == 2 and "CNNLENS_MAX_STEP is not a limit" in r.stderr
    r = subprocess.run([cnnlens_bin, "run", str(script)], capture_output=True, text=True,
                       env=dict(os.environ, CNNLENS_MAX_STEPS="5k"), timeout=TIMEOUT)
    assert r.returncode == 0 and r.stdout == "hi\n"
