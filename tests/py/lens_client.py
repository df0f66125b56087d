"""Helpers the pytest suites share to drive a cnnlens kernel through a
jupyter_client KernelClient."""
import time


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
