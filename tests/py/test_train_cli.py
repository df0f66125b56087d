"""`cnnlens train-builtin` as a user runs it: Ctrl-C stops within a batch and
writes nothing; bad options are refused with the usage."""
import os
import signal
import subprocess
import time

SLOW = float(os.environ.get("CNNLENS_TEST_SLOW", "1"))  # sanitizer/valgrind runs (conftest.py)


def test_ctrl_c_stops_training_quickly_and_writes_nothing(cnnlens_bin, tmp_path):
    out = tmp_path / "w.safetensors"
    p = subprocess.Popen([cnnlens_bin, "train-builtin", "--out", str(out), "--epochs", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The dataset loads and a few dozen batches run (a slowed valgrind process
    # needs longer to reach its Ctrl-C handler).
    time.sleep(3.0 * min(SLOW, 10))
    assert p.poll() is None, p.communicate()
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=30 * SLOW)
    assert time.monotonic() - sent < 2.0 * SLOW
    assert p.returncode == 130, stderr
    assert "interrupted" in stderr
    assert "trained 0 epoch(s)" in stdout
    assert not out.exists()
    assert not [f for f in os.listdir(tmp_path) if f.startswith("w.safetensors")]


def test_bad_options_show_the_usage(cnnlens_bin):
    for args in (["--epochs", "two", "--out", "x"], ["--optim", "rmsprop", "--out", "x"], []):
        r = subprocess.run([cnnlens_bin, "train-builtin", *args], capture_output=True, text=True)
        assert r.returncode == 2
        assert "usage: cnnlens train-builtin" in r.stderr
    r = subprocess.run([cnnlens_bin, "train-builtin", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--seed" in r.stderr
