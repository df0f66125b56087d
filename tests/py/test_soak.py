"""Soak: 10,000 mixed executes through jupyter_client against one kernel --
plain commands, errors (typos, bad paths, parse and type errors), interrupts
of a sleeping and of a computing cell, a 1000x1000 PNG loaded, shown and
saved, and displays.  Every execute_request gets exactly one execute_reply and
one `idle`; resident memory after the first 100 executes grows by less than
2 MiB to the end; the kernel's open file descriptors do not grow.

CNNLENS_SOAK_N sets the number of executes (default 10,000; the ASan build
runs fewer).  Figures are printed on one line starting with "SOAK:" (see them
with `pytest -s`)."""
import os
import queue
import time

import cv2
import numpy as np
import jupyter_client.session
import pytest
from jupyter_client.manager import KernelManager

from conftest import NATIVE, SLOW  # sanitizer and valgrind runs are slower

TIMEOUT = 20 * SLOW
N = int(os.environ.get("CNNLENS_SOAK_N", "10000"))
WINDOW = 8  # quick executes in flight at once

SETUP = """m = model fashion
x = sample fashion test 17
img = [1 0 0 0 0 1; 0 1 0 0 1 0; 0 0 1 1 0 0; 1 0 0 0 1 0; 0 1 0 0 1 0; 0 0 1 0 1 0]
f = [-1 1 -1; -1 1 -1; -1 1 -1]
a = rand 8 8"""

PLAIN = [
    "y = 1 + 2\ny",
    'print "ok"',
    "a = rand 8 8\nsum a",
    "predict x top 3",
    "conv img f",
    "relu (conv img f)",
    "shape x",
    "top1 x",
]
ERRORS = [
    'prnt "typo"',  # misspelt verb
    'image "/no/such/dir/photo.png"',  # bad path
    'load "/no/such/file.npy"',
    "q = (1 +",  # incomplete expression
    "conv img [1 2; 3 4] pad banana",  # misspelt option / wrong type
    "undefined_name + 1",
    'save a "/no/such/dir/a.npy"',
    "gradcam x layer nosuchlayer",
]
DISPLAYS = [
    "show a",
    "show x",
    "show gradcam x layer conv2",
    "show conv img f",
]
LONG = {
    "sleep": "sleep 60",
    "compute": "show maximize conv2 filter 0..49 steps 100000",
}


def cell(i, big_png, out_dir):
    """The i-th cell of the mix: (kind, code).  Every kind appears within the
    first 200, and all but saving a PNG within the first 100, so the first
    memory reading has seen nearly every code path."""
    k = i % 100
    if k == 3:
        return "big", f'big = image "{big_png}"'
    if k == 4:
        return "big", "show big"
    if k == 53 and i % 200 < 100:
        return "big", f'save big "{out_dir}/big.npy"\nbb = load "{out_dir}/big.npy"\nshape bb'
    if k == 53:
        return "big", f'save big "{out_dir}/big.png"'
    if k == 25:
        return "interrupt", LONG["sleep"]
    if k == 75:  # a computing cell every 200, a sleeping one in between
        return "interrupt", LONG["compute"] if i % 200 < 100 else LONG["sleep"]
    if k % 10 == 7:
        return "error", ERRORS[(i // 10) % len(ERRORS)]
    if k % 10 == 5:
        return "display", DISPLAYS[(i // 10) % len(DISPLAYS)]
    return "plain", PLAIN[i % len(PLAIN)]


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Tally:
    """Counts, per msg_id, the execute_replies on shell and the idles on IOPub."""

    def __init__(self, kc):
        self.kc = kc
        self.replies = {}
        self.idles = {}
        self.status = {}
        self.iopub_types = {}

    def drain_iopub(self, block_for=None):
        """Reads what IOPub holds; with block_for, waits until that msg_id's idle."""
        while True:
            if block_for is None:
                try:
                    msg = self.kc.get_iopub_msg(timeout=0)
                except queue.Empty:
                    return
            else:
                if block_for in self.idles:
                    return
                msg = self.kc.get_iopub_msg(timeout=TIMEOUT)
            self.count(msg)

    def count(self, msg):
        t = msg["msg_type"]
        self.iopub_types[t] = self.iopub_types.get(t, 0) + 1
        parent = msg["parent_header"].get("msg_id")
        # (only an execute's idle: the manager's interrupt_requests come from
        # a Session of their own whose msg_ids may repeat the client's)
        request = msg["parent_header"].get("msg_type")
        if t == "status" and msg["content"]["execution_state"] == "idle" and request == "execute_request":
            self.idles[parent] = self.idles.get(parent, 0) + 1
        return t, parent

    def wait_reply(self, msg_id):
        while msg_id not in self.replies:
            msg = self.kc.get_shell_msg(timeout=TIMEOUT)
            if msg["msg_type"] == "kernel_info_reply":
                continue  # a late answer to one of wait_for_ready's retries
            assert msg["msg_type"] == "execute_reply", msg["msg_type"]
            parent = msg["parent_header"]["msg_id"]
            self.replies[parent] = self.replies.get(parent, 0) + 1
            st = msg["content"]["status"]
            self.status[st] = self.status.get(st, 0) + 1
        return msg_id

    def wait_started(self, msg_id):
        """Waits for the cell's execute_input: from then on it is running."""
        while True:
            t, parent = self.count(self.kc.get_iopub_msg(timeout=TIMEOUT))
            if parent == msg_id and t == "execute_input":
                return


@pytest.fixture(scope="module")
def big_png(tmp_path_factory):
    """A 1000x1000 colour photo-like PNG: smooth gradients and some texture."""
    d = tmp_path_factory.mktemp("soak")
    yy, xx = np.mgrid[0:1000, 0:1000]
    rng = np.random.RandomState(0)
    img = np.stack([xx * 255 // 999, yy * 255 // 999, (xx + yy) % 256], -1).astype(np.int32)
    img[::7, :, :] += rng.randint(0, 40, size=(1, 1000, 3))
    path = d / "big.png"
    assert cv2.imwrite(str(path), np.clip(img, 0, 255).astype(np.uint8))
    return path


def test_soak(jupyter_path, big_png, tmp_path, monkeypatch):
    # Half the client's time went to parsing the dates in every header with
    # dateutil; the soak has no use for them (signatures are still checked).
    monkeypatch.setattr(jupyter_client.session, "extract_dates", lambda obj: obj)
    km = KernelManager(kernel_name="cnnlens")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=TIMEOUT)
        pid = km.provisioner.pid
        tally = Tally(kc)
        first = kc.execute(SETUP)
        tally.wait_reply(first)
        tally.drain_iopub(block_for=first)
        assert tally.status == {"ok": 1}

        sent, pending = [], []
        kinds, seconds = {}, {}
        rss_100 = fds_100 = None

        codes = {}

        def settle():
            """Waits for the replies to every request in flight."""
            for m in pending:
                try:
                    tally.wait_reply(m)
                except queue.Empty:
                    raise AssertionError(f"no reply within {TIMEOUT} s to execute {codes[m]}; "
                                         f"kernel alive: {km.is_alive()}") from None
            pending.clear()

        t0 = time.perf_counter()
        for i in range(N):
            kind, code = cell(i, big_png, tmp_path)
            kinds[kind] = kinds.get(kind, 0) + 1
            # Quick cells go WINDOW at a time, as a notebook's "run all"
            # queues them (so errors must not abort the ones behind); a long
            # or big cell goes alone, and is timed.
            alone = kind in ("interrupt", "big")
            if alone or len(pending) >= WINDOW:
                settle()
            t_cell = time.perf_counter()
            msg_id = kc.execute(code, stop_on_error=False)
            sent.append(msg_id)
            pending.append(msg_id)
            codes[msg_id] = (i, code)
            if kind == "interrupt":
                tally.wait_started(msg_id)
                if code == LONG["compute"]:
                    time.sleep(0.02)  # let it get into the optimisation loop
                km.interrupt_kernel()
            if alone:
                settle()
                seconds[kind] = seconds.get(kind, 0.0) + time.perf_counter() - t_cell
            tally.drain_iopub()
            if i + 1 == 100:
                settle()
                tally.drain_iopub(block_for=msg_id)
                rss_100, fds_100 = vm_rss_kib(pid), fd_count(pid)
        settle()
        tally.drain_iopub(block_for=sent[-1])
        elapsed = time.perf_counter() - t0
        rss_end, fds_end = vm_rss_kib(pid), fd_count(pid)
        print(f"\nSOAK: {N} executes in {elapsed:.1f} s ({N / elapsed:.0f} executes/s); "
              f"VmRSS after 100: {rss_100 / 1024:.2f} MiB, at the end: {rss_end / 1024:.2f} MiB "
              f"(growth {(rss_end - rss_100):+d} KiB); open fds after 100: {fds_100}, at the end: "
              f"{fds_end}; kinds {kinds}; seconds spent in the big and interrupted cells "
              f"{ {k: round(v, 1) for k, v in seconds.items()} }; replies {tally.status}; iopub {tally.iopub_types}")

        assert km.is_alive()
        missing = [m for m in sent if tally.replies.get(m) != 1]
        assert not missing, f"{len(missing)} executes without exactly one reply"
        no_idle = [m for m in sent if tally.idles.get(m) != 1]
        assert not no_idle, f"{len(no_idle)} executes without exactly one idle: {[(sent.index(m), tally.idles.get(m)) for m in no_idle][:10]}"
        assert sum(tally.status.values()) == N + 1
        # every error cell and every interrupted cell failed; nothing was aborted
        assert tally.status.get("error", 0) == kinds["error"] + kinds["interrupt"]
        assert "aborted" not in tally.status
        assert fds_end <= fds_100, f"open files grew from {fds_100} to {fds_end}"
        if NATIVE:
            assert rss_end - rss_100 < 2048, f"resident set grew by {rss_end - rss_100} KiB"

        # the session is intact after all that
        msg_id = kc.execute("y")
        tally.wait_reply(msg_id)
        tally.drain_iopub(block_for=msg_id)
        assert tally.status["ok"] >= 1
    finally:
        kc.stop_channels()
        if km.is_alive():
            km.shutdown_kernel(now=False)
