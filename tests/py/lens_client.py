"""Helpers the pytest suites share to drive a cnnlens kernel through a
jupyter_client KernelClient."""
import os
import subprocess
import time
import uuid

from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

# sanitizer and valgrind runs are slower (conftest.py sets CNNLENS_TEST_SLOW)
SLOW = float(os.environ.get("CNNLENS_TEST_SLOW", "1"))
TIMEOUT = 10 * SLOW


def execute(kc, code, timeout):
    """(reply content, iopub messages of the request up to idle)."""
    msg_id = kc.execute(code)
    msgs = []
    deadline = time.time() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.01, deadline - time.time()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        msgs.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    while True:
        reply = kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"], msgs


class Kernel:
    """`cnnlens kernel -f FILE` started by hand (any address, a preexec_fn for
    resource limits), with a client holding the key."""

    def __init__(self, binary, folder, preexec_fn=None, ip="127.0.0.1"):
        self.folder = folder
        self.conn_file, self.info = write_connection_file(
            str(folder / f"kernel-{uuid.uuid4().hex}.json"), ip=ip,
            key=uuid.uuid4().hex.encode())
        with open(self.conn_file, "rb") as f:
            self.conn_bytes = f.read()
        self.stderr = open(folder / "kernel-stderr.txt", "w+")
        self.proc = subprocess.Popen([os.path.abspath(binary), "kernel", "-f", self.conn_file],
                                     stdout=subprocess.DEVNULL, stderr=self.stderr, cwd=folder,
                                     preexec_fn=preexec_fn)
        try:
            self.kc = self.client()
        except BaseException:
            self.proc.kill()  # no kernel left behind when it never got ready
            self.proc.wait()
            raise

    def client(self, ready=True):
        kc = BlockingKernelClient()
        kc.load_connection_file(self.conn_file)
        kc.hb_channel.time_to_dead = SLOW  # a heartbeat under valgrind takes its time
        kc.start_channels()
        if ready:
            kc.wait_for_ready(timeout=TIMEOUT)
        return kc

    def run(self, code, kc=None, timeout=TIMEOUT):
        """Executes code; the reply and the IOPub messages up to its idle."""
        kc = kc or self.kc
        msg_id = kc.execute(code)
        deadline = time.time() + timeout
        while True:
            reply = kc.get_shell_msg(timeout=max(0.01, deadline - time.time()))
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        out = []
        while True:
            msg = kc.get_iopub_msg(timeout=max(0.01, deadline - time.time()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            out.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return reply["content"], out

    def wait_started(self, msg_id, kc=None):
        kc = kc or self.kc
        while True:
            msg = kc.get_iopub_msg(timeout=TIMEOUT)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_input":
                return

    def log(self):
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()

    def close(self):
        """Stops the kernel with SIGTERM (a clean exit, so a sanitizer build
        reports leaks), or kills it if that does not work."""
        self.kc.stop_channels()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=TIMEOUT)
        self.stderr.close()
