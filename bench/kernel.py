#!/usr/bin/python3
"""cnnlens kernel vs ipykernel, side by side, through jupyter_client.

Measures, for each kernel started from its kernelspec by jupyter_client's
KernelManager:
  - start: from KernelManager.start_kernel() to the first kernel_info_reply
    (the client connects with a 1 ms reconnect interval, so neither kernel is
    charged for ZeroMQ's default 100 ms retry);
  - execute: one trivial execute_request (`x = 1`, valid in both languages),
    from sending it to the `idle` status of that request on IOPub;
  - rss: resident memory of the idle kernel process after a few executes.
Prints medians and the ratios cnnlens / ipykernel, and checks the targets:
start <= 1/20 of ipykernel's, execute <= 1/3, rss <= 16 MiB.

usage: /usr/bin/python3 bench/kernel.py [--bin build/cnnlens] [--runs 7] [--executes 300]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import psutil
import zmq
from jupyter_client.manager import KernelManager
from jupyter_client.session import Session

HERE = os.path.dirname(os.path.abspath(__file__))


def kernelspecs(cnnlens_bin):
    """A private JUPYTER_PATH with the cnnlens kernelspec and an ipykernel
    spec that runs Debian's python3 (the one that has ipykernel)."""
    prefix = tempfile.mkdtemp(prefix="cnnlens-bench-")
    subprocess.run([cnnlens_bin, "install", "--prefix", prefix], check=True, capture_output=True)
    data = os.path.join(prefix, "share", "jupyter")
    ipy = os.path.join(data, "kernels", "ipykernel-debian")
    os.makedirs(ipy)
    with open(os.path.join(ipy, "kernel.json"), "w") as f:
        json.dump({"argv": ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                   "display_name": "Python 3 (ipykernel)", "language": "python"}, f)
    os.environ["JUPYTER_PATH"] = data
    return data


class Raw:
    """A minimal client: signed messages on bare sockets, no extra threads."""

    def __init__(self, km):
        self.ctx = zmq.Context()
        self.session = Session(key=km.session.key, signature_scheme=km.session.signature_scheme)
        info = km.get_connection_info()
        self.shell = self.socket(zmq.DEALER, info["shell_port"], info)
        self.iopub = self.socket(zmq.SUB, info["iopub_port"], info)
        self.iopub.setsockopt(zmq.SUBSCRIBE, b"")

    def socket(self, kind, port, info):
        s = self.ctx.socket(kind)
        s.linger = 0
        s.setsockopt(zmq.RECONNECT_IVL, 1)
        s.connect(f"tcp://{info['ip']}:{port}")
        return s

    def send(self, msg_type, content=None):
        msg = self.session.msg(msg_type, content or {})
        self.session.send(self.shell, msg)
        return msg["header"]["msg_id"]

    def recv(self, sock, timeout=30.0):
        """Decodes only what the bench looks at (the same light work for both
        kernels, so the client's cost does not drown the kernels' own)."""
        if not sock.poll(int(timeout * 1000)):
            raise TimeoutError("no answer from the kernel")
        frames = sock.recv_multipart()
        i = frames.index(b"<IDS|MSG>")
        header, parent = json.loads(frames[i + 2]), json.loads(frames[i + 3])
        msg = {"msg_type": header["msg_type"], "parent_header": parent, "content": {}}
        if header["msg_type"] == "status":
            msg["content"] = json.loads(frames[i + 5])
        return msg

    def reply_to(self, msg_id):
        while True:
            m = self.recv(self.shell)
            if m["parent_header"].get("msg_id") == msg_id:
                return m

    def idle_of(self, msg_id):
        while True:
            m = self.recv(self.iopub)
            if (m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "status"
                    and m["content"]["execution_state"] == "idle"):
                return m

    def close(self):
        self.shell.close()
        self.iopub.close()
        self.ctx.term()


def execute(raw, code):
    msg_id = raw.send("execute_request", {"code": code, "silent": False, "store_history": True,
                                          "user_expressions": {}, "allow_stdin": False})
    raw.idle_of(msg_id)
    return raw.reply_to(msg_id)


def measure(kernel_name, runs, executes):
    starts, rtts, rss = [], [], []
    for run in range(-1, runs):  # run -1 warms up jupyter_client's own caches
        km = KernelManager(kernel_name=kernel_name)
        t0 = time.perf_counter()
        km.start_kernel()
        raw = Raw(km)
        raw.reply_to(raw.send("kernel_info_request"))
        if run >= 0:
            starts.append(time.perf_counter() - t0)
        # IOPub is subscribed late by nature (PUB/SUB); wait until it delivers
        while True:
            msg_id = raw.send("kernel_info_request")
            raw.reply_to(msg_id)
            if raw.iopub.poll(200):
                raw.idle_of(msg_id)
                break
        if run == 0:
            for _ in range(20):
                execute(raw, "x = 1")
            for _ in range(executes):
                t = time.perf_counter()
                execute(raw, "x = 1")
                rtts.append(time.perf_counter() - t)
            time.sleep(0.5)
            proc = psutil.Process(km.provisioner.pid)
            rss.append(proc.memory_info().rss)
            threads = proc.num_threads()
        raw.close()
        km.shutdown_kernel(now=False)
    return {"start": statistics.median(starts), "execute": statistics.median(rtts),
            "rss": rss[0], "threads": threads}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("CNNLENS_BIN", os.path.join(HERE, "..", "build", "cnnlens")))
    ap.add_argument("--runs", type=int, default=7, help="kernel starts per kernel")
    ap.add_argument("--executes", type=int, default=300)
    args = ap.parse_args()
    kernelspecs(os.path.abspath(args.bin))
    res = {}
    for name in ("cnnlens", "ipykernel-debian"):
        res[name] = measure(name, args.runs, args.executes)
    c, p = res["cnnlens"], res["ipykernel-debian"]
    mib = 1 << 20
    print(f"{'':32}{'cnnlens':>12}{'ipykernel':>12}{'ratio':>9}{'target':>10}")
    rows = [
        ("start to kernel_info_reply (ms)", c["start"] * 1e3, p["start"] * 1e3, "<= 0.05"),
        ("execute round trip (ms)", c["execute"] * 1e3, p["execute"] * 1e3, "<= 0.33"),
        ("idle resident memory (MiB)", c["rss"] / mib, p["rss"] / mib, "<= 16 MiB"),
    ]
    for label, a, b, target in rows:
        print(f"{label:32}{a:12.2f}{b:12.2f}{a / b:9.3f}{target:>10}")
    print(f"{'threads':32}{c['threads']:12d}{p['threads']:12d}")
    ok = (c["start"] <= p["start"] / 20 and c["execute"] <= p["execute"] / 3
          and c["rss"] <= 16 * mib)
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
