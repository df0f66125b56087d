"""Helpers the pytest suites share to start a cnnlens kernel and drive it
through a jupyter_client KernelClient."""
import contextlib
import os
import subprocess
import time
import uuid

from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file
from jupyter_client.manager import KernelManager

# sanitizer and valgrind runs are slower (conftest.py sets CNNLENS_TEST_SLOW)
SLOW = float(os.environ.get("CNNLENS_TEST_SLOW", "1"))
TIMEOUT = 10 * SLOW


def collect(kc, msg_id, timeout=TIMEOUT, on_msg=None):
    """IOPub messages of one request up to and including its idle status;
    on_msg sees each one as it comes."""
    msgs = []
    deadline = time.time() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.01, deadline - time.time()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        msgs.append(msg)
        if on_msg:
            on_msg(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return msgs


def shell_reply(kc, msg_id, timeout=TIMEOUT):
    """The shell reply to one request (other replies are passed over)."""
    deadline = time.time() + timeout
    while True:
        msg = kc.get_shell_msg(timeout=max(0.01, deadline - time.time()))
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


def execute(kc, code, timeout):
    """(reply content, iopub messages of the request up to idle)."""
    msg_id = kc.execute(code)
    msgs = collect(kc, msg_id, timeout)
    return shell_reply(kc, msg_id, timeout)["content"], msgs


def start(timeout=TIMEOUT, **kw):
    """A kernel started as Jupyter starts it, through the installed kernelspec
    (the jupyter_path fixture), and a ready client; kw go to start_kernel."""
    km = KernelManager(kernel_name="cnnlens")
    km.start_kernel(**kw)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=timeout)
    return km, kc


def stop(km, kc, now=False):
    # A kernel killed at once under valgrind leaves a log without its summary
    # (conftest.py counts that as a failure): ask it to shut down instead.
    now = now and not os.environ.get("CNNLENS_UNDER_VALGRIND")
    kc.stop_channels()
    if km.is_alive():
        km.shutdown_kernel(now=now)


@contextlib.contextmanager
def lens_kernel(timeout=TIMEOUT, now=False):
    """start() with CNNLENS_INTERP=lens (the lens language) in the environment
    until the kernel is stopped; stop(now) at the end."""
    old = os.environ.get("CNNLENS_INTERP")
    os.environ["CNNLENS_INTERP"] = "lens"
    try:
        km, kc = start(timeout)
        try:
            yield km, kc
        finally:
            stop(km, kc, now)
    finally:
        if old is None:
            os.environ.pop("CNNLENS_INTERP", None)
        else:
            os.environ["CNNLENS_INTERP"] = old


class Kernel:
    """`cnnlens kernel -f FILE` started by hand (any address, a preexec_fn for
    resource limits), with a client holding the key (none when `client` is
    false: the test connects its own sockets)."""

    def __init__(self, binary, folder, preexec_fn=None, ip="127.0.0.1", client=True):
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
            self.kc = self.client() if client else None
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
        reply = shell_reply(kc, msg_id, timeout)
        return reply["content"], collect(kc, msg_id, max(0.01, deadline - time.time()))

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
        if self.kc:
            self.kc.stop_channels()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=TIMEOUT)
        self.stderr.close()
