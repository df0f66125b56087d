"""Faults a kernel left running for a course meets: the client vanishes in
the middle of a cell, the connection file names a port already in use, the
disk fills up during `save`, SIGTERM arrives during a cell, and a weight file
is replaced, rewritten or truncated while the kernel reads it."""
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from jupyter_client.connect import write_connection_file

import lens_client

from conftest import SLOW  # sanitizer and valgrind runs are slower

TIMEOUT = 10 * SLOW


Kernel = lens_client.Kernel


@pytest.fixture
def kernel(cnnlens_bin, tmp_path):
    k = Kernel(cnnlens_bin, tmp_path)
    yield k
    k.close()


def result(out):
    return [m["content"]["data"]["text/plain"] for m in out if m["msg_type"] == "execute_result"]


def interrupt(kc):
    """An interrupt_request on the control channel (the kernelspec's interrupt_mode)."""
    msg = kc.session.msg("interrupt_request", {})
    kc.control_channel.send(msg)
    while True:
        reply = kc.get_control_msg(timeout=TIMEOUT)
        if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            return reply


# ---- the client vanishes mid-cell ------------------------------------------------

VICTIM = r"""
import sys, time
from jupyter_client import BlockingKernelClient
kc = BlockingKernelClient()
kc.load_connection_file(sys.argv[1])
kc.start_channels()
kc.wait_for_ready(timeout=10)
msg_id = kc.execute(sys.argv[2], allow_stdin=True)
while True:
    msg = kc.get_iopub_msg(timeout=10)
    if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_input":
        break
if sys.argv[3] == "close":
    kc.stop_channels()  # the sockets go away, the process stays a moment
    print("started", flush=True)
    time.sleep(0.5)
    sys.exit(0)
print("started", flush=True)
time.sleep(600)  # killed here
"""


@pytest.mark.parametrize("how,code,then", [
    ("kill", "sleep 1\ny = 8", "finishes"),
    ("kill", "sleep 600\ny = 8", "interrupt"),
    ("close", 'm = model fashion\nshow maximize conv2 filter 0..49 steps 100000', "interrupt"),
    ("kill", 'name = input "your name? "', "interrupt"),  # waiting for the gone client's input
])
def test_client_vanishes_mid_cell(kernel, how, code, then):
    reply, _ = kernel.run("x = 7")
    assert reply["status"] == "ok"
    kernel.kc.stop_channels()
    victim = subprocess.Popen([sys.executable, "-c", VICTIM, kernel.conn_file, code, how],
                              stdout=subprocess.PIPE, text=True)
    assert victim.stdout.readline().strip() == "started"
    if how == "kill":
        victim.kill()
    victim.wait(timeout=TIMEOUT)
    time.sleep(0.2)
    assert kernel.proc.poll() is None, "the kernel died with its client"
    # a new client with the same connection file (kernel_info, which
    # wait_for_ready sends on shell, waits behind the running cell, as in
    # any kernel; control answers at once)
    kc = kernel.client(ready=False)
    kernel.kc = kc
    t0 = time.perf_counter()
    if then == "interrupt":
        assert interrupt(kc)["content"]["status"] == "ok"
        kc.wait_for_ready(timeout=TIMEOUT)
        reply, out = kernel.run("x", kc)
        assert reply["status"] == "ok" and result(out) == ["7"]
        assert time.perf_counter() - t0 < 5 * SLOW, "the abandoned cell did not stop on interrupt"
    else:  # the abandoned cell runs to its end, then the new request
        kc.wait_for_ready(timeout=TIMEOUT)
        reply, out = kernel.run("y", kc)
        assert reply["status"] == "ok" and result(out) == ["8"]
    reply, out = kernel.run("x + 1", kc)
    assert result(out) == ["8"]
    assert kc.is_alive()  # heartbeat


# ---- the port is taken ---------------------------------------------------------

@pytest.mark.parametrize("which", ["shell_port", "hb_port"])
@pytest.mark.parametrize("holder_ip", ["127.0.0.1", "0.0.0.0"])
def test_port_in_use_is_a_clear_error_at_start(cnnlens_bin, tmp_path, which, holder_ip):
    conn_file, info = write_connection_file(str(tmp_path / "kernel-busy.json"), ip="127.0.0.1",
                                            key=b"secret")
    holder = socket.socket()
    holder.bind((holder_ip, info[which]))
    holder.listen()
    try:
        t0 = time.perf_counter()
        r = subprocess.run([cnnlens_bin, "kernel", "-f", conn_file], capture_output=True, text=True,
                           timeout=TIMEOUT)
        elapsed = time.perf_counter() - t0
    finally:
        holder.close()
    assert r.returncode == 1
    assert elapsed < 2 * SLOW, f"the kernel took {elapsed:.1f} s to give up"
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    port = str(info[which])
    assert line.startswith("cnnlens kernel: cannot listen on tcp://127.0.0.1:" + port), line
    assert f"{which} {port} in '{conn_file}'" in line and "Address already in use" in line, line
    assert "another program holds the port" in line, line


# ---- the disk is full during save -------------------------------------------------

def limited_file_size(limit):
    def apply():
        # Writes past `limit` fail with EFBIG, as on a full disk they fail
        # with ENOSPC; SIGXFSZ would kill the kernel instead, so it is ignored.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("ext", ["npy", "png"])
def test_disk_full_during_save_leaves_no_partial_file(cnnlens_bin, tmp_path, ext):
    out = tmp_path / "out"
    out.mkdir()
    photo = tmp_path / "noise.png"
    import cv2
    assert cv2.imwrite(str(photo), np.random.RandomState(1).randint(0, 256, (600, 600, 3),
                                                                   dtype=np.uint8))
    k = Kernel(cnnlens_bin, tmp_path, preexec_fn=limited_file_size(256 << 10))
    try:
        target = out / f"keep.{ext}"
        reply, _ = k.run(f'small = zeros 8 8\nsave small "{target}"')
        assert reply["status"] == "ok", reply
        before = target.read_bytes()
        reply, _ = k.run(f'big = image "{photo}"\nsave big "{target}"')
        assert reply["status"] == "error"
        msg = reply["evalue"]
        assert str(target) in msg and "File too large" in msg, msg
        assert "larger than this process may write" in msg and "nothing was written" in msg, msg
        assert target.read_bytes() == before, "the previous file was changed"
        assert sorted(p.name for p in out.iterdir()) == [target.name], "a partial file was left"
        # the kernel goes on; a small save still works
        reply, _ = k.run(f'save small "{out}/other.{ext}"')
        assert reply["status"] == "ok"
        assert k.proc.poll() is None
    finally:
        k.close()


# ---- SIGTERM during a cell ------------------------------------------------------

@pytest.mark.parametrize("cell", ["idle", "sleep", "compute", "save"])
def test_sigterm_during_a_cell_exits_cleanly(cnnlens_bin, tmp_path, cell):
    out = tmp_path / "out"
    out.mkdir()
    k = Kernel(cnnlens_bin, tmp_path)
    try:
        code = {
            "idle": None,
            "sleep": "sleep 600",
            "compute": "m = model fashion\nshow maximize conv2 filter 0..49 steps 100000",
            # a long run of saves of a 12 MB image: SIGTERM lands during one
            "save": f'big = image "{tmp_path}/big.png"\n' +
                    "\n".join(f'save big "{out}/big.npy"' for _ in range(200)),
        }[cell]
        if cell == "save":
            import cv2
            assert cv2.imwrite(str(tmp_path / "big.png"),
                               np.full((1000, 1000, 3), 128, np.uint8))
        if code:
            k.wait_started(k.kc.execute(code))
        deadline = time.time() + 30 * SLOW
        while cell == "save" and not (out / "big.npy").exists() and time.time() < deadline:
            time.sleep(0.01)  # the saves have begun: SIGTERM lands during one
        time.sleep(0.3)
        t0 = time.perf_counter()
        k.proc.send_signal(signal.SIGTERM)
        status = k.proc.wait(timeout=5 * SLOW)
        elapsed = time.perf_counter() - t0
        assert status == 0, f"exit status {status}"
        assert elapsed < 1 * SLOW, f"the kernel took {elapsed:.2f} s to exit after SIGTERM"
        assert "SIGTERM: shutting down" in k.log()
        assert not list(tmp_path.glob("core*"))
        with open(k.conn_file, "rb") as f:
            assert f.read() == k.conn_bytes, "the connection file was touched"
        assert [p.name for p in out.iterdir()] in ([], ["big.npy"]), list(out.iterdir())
        if cell == "save":
            saved = np.load(out / "big.npy")  # whole, never half-written
            assert saved.shape == (3, 1000, 1000)
    finally:
        k.close()


def test_sigterm_during_a_long_write_leaves_no_temp_file(cnnlens_bin, tmp_path):
    """SIGTERM while `save` writes 256 MB: the write outlasts the kernel's
    grace period, so the kernel exits without it and removes its temp file."""
    out = tmp_path / "out"
    out.mkdir()
    np.save(tmp_path / "src.npy", np.ones((64, 1024, 1024), np.float32))
    k = Kernel(cnnlens_bin, tmp_path)
    try:
        reply, _ = k.run(f'b = load "{tmp_path}/src.npy"', timeout=60 * SLOW)
        assert reply["status"] == "ok"
        k.kc.execute(f'save b "{out}/b.npy"')
        deadline = time.time() + 30 * SLOW
        while not list(out.glob("b.npy.tmp*")) and time.time() < deadline:
            time.sleep(0.001)
        assert list(out.glob("b.npy.tmp*")), "the save never started"
        k.proc.send_signal(signal.SIGTERM)
        status = k.proc.wait(timeout=5 * SLOW)
        assert status == 0, f"exit status {status}"
        names = [p.name for p in out.iterdir()]
        assert names in ([], ["b.npy"]), names
        if names:
            assert np.load(out / "b.npy").shape == (64, 1024, 1024)
        print(f"\nFAULTS: SIGTERM during a 256 MB save: {names or 'nothing saved'}; "
              f"log: {k.log().strip()!r}")
    finally:
        k.close()


# ---- a weight file replaced, rewritten or truncated while it loads -----------------

LAYERS = "[dense 2048; relu; dense 2048; relu; dense 10]"  # 5.8 M weights, 23 MB


@pytest.fixture(scope="module")
def two_checkpoints(cnnlens_bin, tmp_path_factory):
    """Two weight files of the same layers (seeds 1 and 2), and the top-10
    table each one predicts for one test image."""
    d = tmp_path_factory.mktemp("weights")
    k = Kernel(cnnlens_bin, d)
    tables = []
    try:
        for seed in (1, 2):
            reply, out = k.run(f"seed {seed}\nn = sequential {LAYERS}\n"
                               f'save n "{d}/w{seed}.safetensors"\n'
                               "x = sample fashion test 17\npredict x top 10")
            assert reply["status"] == "ok", reply
            tables.append(result(out)[0])
    finally:
        k.close()
    assert tables[0] != tables[1]
    return d / "w1.safetensors", d / "w2.safetensors", tables


def load_and_predict(k, path):
    return k.run(f'n = sequential {LAYERS} weights "{path}"\npredict x top 10', timeout=60 * SLOW)


def close_in_on_the_read(whole, attempts, attempt):
    """Calls `attempt(delay)` `attempts` times; `attempt` changes the file
    `delay` seconds into a cell that reads it, and says whether the change
    came "early" (before the file was opened), "late" (after it was read) or
    "hit" a read in progress.  The delays bisect [0, whole] towards the read:
    a fixed grid of delays can step over it, since the read is a small part of
    the cell (under valgrind a 23 MB weight file's read fell between two of
    12 evenly spaced changes).  Returns the outcomes in order."""
    lo, hi, seen = 0.0, whole, []
    for _ in range(attempts):
        delay = (lo + hi) / 2
        outcome = attempt(delay)
        seen.append(outcome)
        if outcome == "early":
            lo = delay
        elif outcome == "late":
            hi = delay
    return seen


@pytest.mark.parametrize("how", ["rename", "rewrite", "truncate"])
def test_weight_file_changed_while_loading(cnnlens_bin, tmp_path, two_checkpoints, how):
    w1, w2, tables = two_checkpoints
    path = tmp_path / "w.safetensors"
    k = Kernel(cnnlens_bin, tmp_path)
    outcomes = {"old": 0, "new": 0, "changed": 0, "other error": 0}

    def attempt(delay):
        shutil.copyfile(w1, path)
        if how == "rename":
            shutil.copyfile(w2, tmp_path / "w.new")
        msg_id = k.kc.execute(f'n = sequential {LAYERS} weights "{path}"\npredict x top 10')
        k.wait_started(msg_id)
        time.sleep(delay)
        if how == "rename":
            os.replace(tmp_path / "w.new", path)
        elif how == "rewrite":  # as `cp w2 w` does: truncate, then write in place
            with open(w2, "rb") as src, open(path, "r+b") as dst:
                dst.truncate(0)
                shutil.copyfileobj(src, dst)
        else:
            os.truncate(path, 4096)
        reply = lens_client.shell_reply(k.kc, msg_id, 60 * SLOW)
        out = lens_client.collect(k.kc, msg_id, TIMEOUT)
        assert k.proc.poll() is None, f"the kernel died (status {k.proc.poll()}): {k.log()}"
        c = reply["content"]
        if c["status"] == "ok":
            table = result(out)[0]
            assert table in tables, "the model mixes the old file and the new one"
            outcome = "old" if table == tables[0] else "new"
        elif "changed while it was being read" in c["evalue"]:
            outcome = "changed"
        else:
            # the change came before the file was opened: a clear error on a short file
            assert str(path) in c["evalue"] and how != "rename", c["evalue"]
            outcome = "other error"
        outcomes[outcome] += 1
        return {"old": "late", "changed": "hit"}.get(outcome, "early")

    try:
        reply, _ = k.run("x = sample fashion test 17")
        shutil.copyfile(w1, path)
        t0 = time.perf_counter()
        load_and_predict(k, path)
        seen = close_in_on_the_read(time.perf_counter() - t0, 12, attempt)
        print(f"\nFAULTS: {how}: {outcomes} ({' '.join(seen)})")
        if how == "rename":
            # the kernel keeps reading the file it opened: always old or new, whole
            assert outcomes["changed"] == outcomes["other error"] == 0
        elif how == "truncate":
            assert outcomes["changed"] > 0, "no truncation hit a load in progress"
        reply, out = load_and_predict(k, w2)
        assert reply["status"] == "ok" and result(out) == [tables[1]]
    finally:
        k.close()


def test_npy_truncated_while_loading(kernel, tmp_path):
    path = tmp_path / "big.npy"
    data = np.arange(3 * 2000 * 2000, dtype=np.float32).reshape(3, 2000, 2000)

    def attempt(delay):
        np.save(path, data)
        msg_id = kernel.kc.execute(f'b = load "{path}"\nshape b')
        kernel.wait_started(msg_id)
        time.sleep(delay)
        os.truncate(path, 1 << 20)
        reply = lens_client.shell_reply(kernel.kc, msg_id, 30 * SLOW)
        assert kernel.proc.poll() is None, "the kernel died"
        c = reply["content"]
        if c["status"] == "ok":
            return "late"
        assert str(path) in c["evalue"]
        return "hit" if "changed while it was being read" in c["evalue"] else "early"

    np.save(path, data)
    t0 = time.perf_counter()
    kernel.run(f'b = load "{path}"\nshape b')
    seen = close_in_on_the_read(time.perf_counter() - t0, 8, attempt)
    print(f"\nFAULTS: npy truncated: {' '.join(seen)}")
    assert "hit" in seen
    reply, out = kernel.run("1 + 1")
    assert result(out) == ["2"]
