"""`cnnlens kernel` driven by jupyter_client as Jupyter drives it (through the
installed kernelspec): interrupts, displays updated in place, stdin, history,
is_complete, heartbeat, control while busy, stop_on_error, user expressions,
comms, shutdown and restart, and memory over 1000 executes."""
import base64
import os
import signal
import struct
import time

import psutil
import pytest
import zmq
from jupyter_client.manager import KernelManager

from lens_client import collect, shell_reply, start, stop

SLOW = float(os.environ.get("CNNLENS_TEST_SLOW", "1"))  # sanitizer/valgrind runs (conftest.py)
TIMEOUT = 10 * SLOW


@pytest.fixture(scope="module")
def kernel(jupyter_path):
    km, kc = start()
    yield km, kc
    stop(km, kc)


@pytest.fixture
def fresh(jupyter_path):
    km, kc = start()
    yield km, kc
    stop(km, kc)


def collect_many(kc, msg_ids, timeout=TIMEOUT):
    """IOPub messages of several requests, by request, up to each one's idle."""
    out = {m: [] for m in msg_ids}
    waiting = set(msg_ids)
    deadline = time.time() + timeout
    while waiting:
        msg = kc.get_iopub_msg(timeout=max(0.01, deadline - time.time()))
        parent = msg["parent_header"].get("msg_id")
        if parent in out:
            out[parent].append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                waiting.discard(parent)
    return out


def shell_replies(kc, msg_ids, timeout=TIMEOUT):
    """Replies to several requests, in whatever order they come."""
    out = {}
    deadline = time.time() + timeout
    while len(out) < len(msg_ids):
        msg = kc.get_shell_msg(timeout=max(0.01, deadline - time.time()))
        if msg["parent_header"].get("msg_id") in msg_ids:
            out[msg["parent_header"]["msg_id"]] = msg
    return out


def run(kc, code, **kw):
    msg_id = kc.execute(code, **kw)
    reply = shell_reply(kc, msg_id)
    return reply, collect(kc, msg_id)


def types(msgs):
    return [m["msg_type"] for m in msgs]


def result_text(msgs):
    return [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"]


def stdout(msgs):
    return "".join(m["content"]["text"] for m in msgs
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")


def wait_busy(kc, msg_id):
    while True:
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_input":
            return


def test_kernel_info(kernel):
    km, kc = kernel
    msg_id = kc.kernel_info()
    c = shell_reply(kc, msg_id)["content"]
    assert c["status"] == "ok" and c["protocol_version"] == "5.3"
    assert c["implementation"] == "cnnlens" and c["implementation_version"]
    li = c["language_info"]
    assert li["name"] == "lens" and li["file_extension"] == ".lens"
    for key in ("version", "mimetype", "pygments_lexer", "codemirror_mode"):
        assert li[key]
    assert "cnnlens" in c["banner"] and isinstance(c["help_links"], list)
    states = [m["content"]["execution_state"] for m in collect(kc, msg_id)]
    assert states == ["busy", "idle"]


def test_execute_message_order(kernel):
    km, kc = kernel
    reply, msgs = run(kc, 'print "a"\nprint "b"\neprint "c"\n40 + 2')
    assert reply["content"]["status"] == "ok"
    t = types(msgs)
    assert t[0] == "status" and t[-1] == "status"
    assert t[1] == "execute_input"
    # prints are batched into one stream message per run of the same stream
    assert t[2:-1] == ["stream", "stream", "execute_result"]
    assert stdout(msgs) == "a\nb\n"
    assert result_text(msgs) == ["42"]
    count = reply["content"]["execution_count"]
    assert msgs[1]["content"]["execution_count"] == count
    assert [m for m in msgs if m["msg_type"] == "execute_result"][0]["content"]["execution_count"] == count


def test_error_is_one_message(kernel):
    km, kc = kernel
    reply, msgs = run(kc, 'print "before"\nnosuch')
    c = reply["content"]
    assert c["status"] == "error" and c["ename"] == "NameError" and "nosuch" in c["evalue"]
    errors = [m for m in msgs if m["msg_type"] == "error"]
    assert len(errors) == 1 and errors[0]["content"]["traceback"]
    assert "stderr" not in [m["content"].get("name") for m in msgs]


def test_silent_and_store_history(kernel):
    km, kc = kernel
    reply, _ = run(kc, "1")
    n = reply["content"]["execution_count"]
    reply, msgs = run(kc, "2", silent=True)
    assert "execute_input" not in types(msgs) and "execute_result" not in types(msgs)
    reply, msgs = run(kc, "3", store_history=False)
    assert result_text(msgs) == ["3"]
    reply, _ = run(kc, "4")
    assert reply["content"]["execution_count"] == n + 1


def best_of(attempts, measure):
    """The fastest of a few runs: the machine is shared, and a time limit is
    about the kernel, not about the test runner being descheduled once."""
    times = []
    for _ in range(attempts):
        times.append(measure())
        if times[-1] < best_of.limit:
            break
    return min(times)


def interrupt_once(kc, code, do_interrupt):
    msg_id = kc.execute(code)
    wait_busy(kc, msg_id)
    time.sleep(0.3)
    t0 = time.perf_counter()
    do_interrupt()
    reply = shell_reply(kc, msg_id)
    elapsed = time.perf_counter() - t0
    collect(kc, msg_id)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    return elapsed


def interrupt_during(kc, code, do_interrupt):
    run(kc, "x = 3")
    best_of.limit = 0.2 * SLOW
    elapsed = best_of(3, lambda: interrupt_once(kc, code, do_interrupt))
    assert elapsed < best_of.limit, f"the cell took {elapsed:.3f} s to stop"
    # the session survives
    reply, msgs = run(kc, "x")
    assert result_text(msgs) == ["3"]


@pytest.mark.parametrize("code", ["m = model fashion\nshow maximize conv2 filter 0..49 steps 100000", "sleep 60"])
def test_interrupt_by_message(kernel, code):
    km, kc = kernel
    interrupt_during(kc, code, km.interrupt_kernel)  # interrupt_mode "message": control socket


@pytest.mark.parametrize("code", ["m = model fashion\nshow maximize conv2 filter 0..49 steps 100000", "sleep 60"])
def test_interrupt_by_signal(kernel, code):
    km, kc = kernel
    interrupt_during(kc, code, lambda: os.kill(km.provisioner.pid, signal.SIGINT))


def test_interrupt_when_idle_does_not_hurt_the_next_cell(kernel):
    km, kc = kernel
    km.interrupt_kernel()
    time.sleep(0.1)
    reply, msgs = run(kc, "sleep 0.05\n5")
    assert reply["content"]["status"] == "ok" and result_text(msgs) == ["5"]


def test_update_display_data(kernel):
    km, kc = kernel
    # the slide's step-through: one display, updated once per window
    reply, msgs = run(kc, "conv [1 2 3; 4 5 6; 7 8 9] [1 0; 0 1] step delay 0")
    assert reply["content"]["status"] == "ok"
    shown = [m for m in msgs if m["msg_type"] in ("display_data", "update_display_data")]
    assert types(shown) == ["display_data"] + ["update_display_data"] * 4
    ids = {m["content"]["transient"]["display_id"] for m in shown}
    assert len(ids) == 1
    assert shown[-1]["content"]["data"]["text/plain"] == "conv: window 4 of 4, value 14"
    assert all("image/png" in m["content"]["data"] for m in shown)


def test_png_display(kernel):
    km, kc = kernel
    reply, msgs = run(kc, "show zeros 20 20")
    (d,) = [m for m in msgs if m["msg_type"] == "display_data"]
    png = base64.b64decode(d["content"]["data"]["image/png"], validate=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", png[16:24])
    assert d["content"]["metadata"]["image/png"] == {"width": w, "height": h}


def test_stdin_round_trip(kernel):
    km, kc = kernel
    msg_id = kc.execute('name = input "your name? "\nprint "hello"\nname', allow_stdin=True)
    req = kc.get_stdin_msg(timeout=TIMEOUT)
    assert req["msg_type"] == "input_request"
    assert req["content"]["prompt"] == "your name? " and req["content"]["password"] is False
    assert req["parent_header"]["msg_id"] == msg_id
    kc.input("Ada Lovelace")
    reply = shell_reply(kc, msg_id)
    msgs = collect(kc, msg_id)
    assert reply["content"]["status"] == "ok"
    assert result_text(msgs) == ["Ada Lovelace"]


def test_stdin_refused_when_not_allowed(kernel):
    km, kc = kernel
    reply, msgs = run(kc, 'input "prompt"', allow_stdin=False)
    assert reply["content"]["status"] == "error" and "allow_stdin" in reply["content"]["evalue"]


def test_interrupt_while_waiting_for_input(kernel):
    km, kc = kernel
    msg_id = kc.execute('input "never answered"', allow_stdin=True)
    kc.get_stdin_msg(timeout=TIMEOUT)
    km.interrupt_kernel()
    reply = shell_reply(kc, msg_id)
    collect(kc, msg_id)
    assert reply["content"]["ename"] == "KeyboardInterrupt"


def test_history(fresh):
    km, kc = fresh
    for code in ("a = 1", "a + 1", "a + 2", "a + 1"):
        run(kc, code)

    def history(**kw):
        msg_id = kc.history(raw=True, **kw)
        return shell_reply(kc, msg_id)["content"]["history"]

    tail = history(output=False, hist_access_type="tail", n=2)
    assert [h[2] for h in tail] == ["a + 2", "a + 1"]
    assert [h[1] for h in tail] == [3, 4]
    with_out = history(output=True, hist_access_type="tail", n=3)
    assert [h[2] for h in with_out] == [["a + 1", "2"], ["a + 2", "3"], ["a + 1", "2"]]
    session = tail[0][0]
    rng = history(output=False, hist_access_type="range", session=session, start=2, stop=4)
    assert [h[1:] for h in rng] == [[2, "a + 1"], [3, "a + 2"]]
    found = history(output=False, hist_access_type="search", pattern="a + 1")
    assert [h[1] for h in found] == [2, 4]
    unique = history(output=False, hist_access_type="search", pattern="a + *", unique=True)
    assert [h[2] for h in unique] == ["a + 2", "a + 1"]
    last = history(output=False, hist_access_type="search", pattern="*", n=1)
    assert [h[1] for h in last] == [4]


@pytest.mark.parametrize("code,status", [
    ("x = (1 +", "incomplete"),
    ("print (1 +\n (2", "incomplete"),
    ('print "open', "invalid"),
    ("x = 2)", "invalid"),
    ("x = (1 +\n 2)", "complete"),
    ("", "complete"),
])
def test_is_complete(kernel, code, status):
    km, kc = kernel
    msg_id = kc.is_complete(code)
    c = shell_reply(kc, msg_id)["content"]
    assert c["status"] == status
    if status == "incomplete":
        assert c["indent"] == "  "


def test_complete_and_inspect_count_code_points(kernel):
    km, kc = kernel
    run(kc, "größe = 1")
    code = 'print "äöü" + grö'
    msg_id = kc.complete(code, cursor_pos=len(code))
    c = shell_reply(kc, msg_id)["content"]
    assert c["matches"] == ["größe"]
    assert (c["cursor_start"], c["cursor_end"]) == (len(code) - 3, len(code))
    msg_id = kc.inspect("sleep 3", cursor_pos=2)
    c = shell_reply(kc, msg_id)["content"]
    assert c["found"] and "interrupt" in c["data"]["text/plain"]


def test_user_expressions(kernel):
    km, kc = kernel
    reply, _ = run(kc, "y = 20", user_expressions={"ok": "y + 1", "bad": "nosuch"})
    ue = reply["content"]["user_expressions"]
    assert ue["ok"] == {"status": "ok", "data": {"text/plain": "21"}, "metadata": {}}
    assert ue["bad"]["status"] == "error" and ue["bad"]["ename"] == "NameError"


def test_pager_payload(kernel):
    km, kc = kernel
    reply, _ = run(kc, "help sleep")
    (page,) = reply["content"]["payload"]
    assert page["source"] == "page" and "SECONDS" in page["data"]["text/plain"]


def test_stop_on_error_aborts_queued_executes(kernel):
    km, kc = kernel
    first = kc.execute("sleep 0.2\nnosuch")
    second = kc.execute('print "must not run"')
    third = kc.execute("7", stop_on_error=False)
    replies = shell_replies(kc, [first, second, third])
    assert replies[first]["content"]["status"] == "error"
    assert replies[second]["content"]["status"] == "aborted"
    assert replies[third]["content"]["status"] == "aborted"
    msgs = collect_many(kc, [first, second, third])
    assert "execute_input" not in types(msgs[second]) + types(msgs[third])
    # a request sent in answer to the error is served
    reply, msgs = run(kc, "9")
    assert result_text(msgs) == ["9"]
    # without stop_on_error the queue runs
    a = kc.execute("sleep 0.2\nnosuch", stop_on_error=False)
    b = kc.execute("8")
    replies = shell_replies(kc, [a, b])
    assert replies[a]["content"]["status"] == "error"
    assert replies[b]["content"]["status"] == "ok"
    assert result_text(collect_many(kc, [a, b])[b]) == ["8"]


def test_control_and_heartbeat_answer_while_a_cell_runs(kernel):
    km, kc = kernel
    msg_id = kc.execute("sleep 1.5")
    wait_busy(kc, msg_id)
    # kernel_info on the control channel
    req = kc.session.msg("kernel_info_request")
    kc.control_channel.send(req)
    t0 = time.perf_counter()
    rep = kc.get_control_msg(timeout=TIMEOUT)
    assert rep["parent_header"]["msg_id"] == req["header"]["msg_id"]
    assert time.perf_counter() - t0 < 0.5
    # a raw heartbeat ping
    ctx = zmq.Context.instance()
    hb = ctx.socket(zmq.REQ)
    hb.linger = 0
    hb.connect(f"tcp://{km.ip}:{km.hb_port}")
    hb.send(b"ping")
    assert hb.poll(1000) and hb.recv() == b"ping"
    hb.close()
    assert shell_reply(kc, msg_id)["content"]["status"] == "ok"
    collect(kc, msg_id)


def test_comms(kernel):
    km, kc = kernel
    msg_id = kc.comm_info()
    assert shell_reply(kc, msg_id)["content"] == {"status": "ok", "comms": {}}
    msg = kc.session.msg("comm_open", {"comm_id": "c1", "target_name": "nobody", "data": {}})
    kc.shell_channel.send(msg)
    msgs = collect(kc, msg["header"]["msg_id"])
    (close,) = [m for m in msgs if m["msg_type"] == "comm_close"]
    assert close["content"]["comm_id"] == "c1"


def test_iopub_keeps_every_message(kernel):
    km, kc = kernel
    n = 1500  # above ZeroMQ's default high-water mark of 1000
    msg_id = kc.execute("\n".join(["show zeros 2 2"] * n))
    # all output is queued before the reply; the client reads IOPub only now
    reply = shell_reply(kc, msg_id, timeout=6 * TIMEOUT)  # (sanitizer builds are slow)
    msgs = collect(kc, msg_id, timeout=6 * TIMEOUT)
    assert reply["content"]["status"] == "ok"
    assert types(msgs).count("display_data") == n
    assert msgs[-1]["content"]["execution_state"] == "idle"


def shutdown_once():
    km, kc = start()
    try:
        proc = psutil.Process(km.provisioner.pid)
        msg_id = kc.shutdown()  # on the control channel
        reply = kc.get_control_msg(timeout=TIMEOUT)
        t0 = time.perf_counter()
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"] == {"status": "ok", "restart": False}
        proc.wait(timeout=5 * SLOW)
        elapsed = time.perf_counter() - t0
        assert km.provisioner.process.wait(timeout=5 * SLOW) == 0
        return elapsed
    finally:
        stop(km, kc)


def test_shutdown_exits_quickly(jupyter_path):
    best_of.limit = 0.1 * SLOW
    elapsed = best_of(3, shutdown_once)
    assert elapsed < best_of.limit, f"the kernel took {elapsed:.3f} s to exit after its shutdown_reply"


def test_shutdown_while_a_cell_runs(fresh):
    km, kc = fresh
    msg_id = kc.execute("sleep 600")
    wait_busy(kc, msg_id)
    t0 = time.perf_counter()
    km.request_shutdown()
    km.provisioner.process.wait(timeout=5 * SLOW)
    assert time.perf_counter() - t0 < 0.5 * SLOW


def test_restart_clears_the_session(fresh):
    km, kc = fresh
    run(kc, "x = 3")
    old = km.provisioner.pid
    km.restart_kernel(now=False)
    assert km.provisioner.pid != old
    kc.wait_for_ready(timeout=TIMEOUT)
    reply, _ = run(kc, "x")
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "NameError"


def test_1000_executes_keep_memory_flat(fresh):
    km, kc = fresh
    proc = psutil.Process(km.provisioner.pid)

    def burst(n):
        for _ in range(n):
            msg_id = kc.execute('x = 1 + 2\nprint "ok"\nx')
            shell_reply(kc, msg_id)
        while True:  # drain IOPub up to the last idle
            try:
                kc.get_iopub_msg(timeout=0.2)
            except Exception:
                break

    burst(100)
    before = proc.memory_info().rss
    burst(1000)
    after = proc.memory_info().rss
    assert km.is_alive()
    if os.environ.get("CNNLENS_SANITIZE", "0") in ("0", "", "FALSE", "OFF") and not os.environ.get(
            "CNNLENS_UNDER_VALGRIND"):
        # (AddressSanitizer's quarantine holds freed memory on purpose, valgrind's
        # translation cache grows with new code paths; their leak checks cover those runs.)
        assert after - before < 1 << 20, f"resident set grew by {(after - before) / 1024:.0f} KiB"
        assert after < 16 << 20, f"resident set is {after / 2**20:.1f} MiB"


def test_ipc_transport(jupyter_path, tmp_path):
    km = KernelManager(kernel_name="cnnlens", transport="ipc", ip=str(tmp_path / "kernel"))
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=TIMEOUT)
        assert any(p.name.startswith("kernel-") for p in tmp_path.iterdir())
        reply, msgs = run(kc, 'print "over ipc"')
        assert stdout(msgs) == "over ipc\n"
    finally:
        stop(km, kc)
