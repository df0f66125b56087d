"""Shared fixtures: the built binary and a kernelspec installed into a private
Jupyter data folder, so tests never depend on (or change) the machine's setup.

Memory checking: with CNNLENS_SANITIZE on (an ASan+UBSan build) or CNNLENS_TEST_BIN
pointing at tests/valgrind-kernel.sh, every cnnlens process the tests start --
including kernels started by jupyter_client, which tests never see exit -- writes
its sanitizer or valgrind report into one folder per session (CNNLENS_MEMCHECK_DIR,
made under CNNLENS_MEMCHECK_ROOT when that is set).
A test during which a report appears fails; so does the session if one appears
later (a kernel shut down by a module fixture)."""
import glob
import json
import os
import re
import subprocess
import tempfile
import time

import pytest

SOURCE = os.environ.get("CNNLENS_SOURCE", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("CNNLENS_BUILD", os.path.join(SOURCE, "build"))
# CNNLENS_TEST_BIN (e.g. tests/valgrind-kernel.sh) overrides the binary CMake built.
BIN = os.environ.get("CNNLENS_TEST_BIN") or os.environ.get("CNNLENS_BIN", os.path.join(BUILD, "cnnlens"))
os.environ["CNNLENS_BIN"] = BIN


@pytest.fixture(scope="session")
def cnnlens_bin():
    assert os.path.exists(BIN), f"build cnnlens first: {BIN} is missing"
    return BIN


@pytest.fixture(scope="session")
def jupyter_path(cnnlens_bin):
    """A prefix holding share/jupyter/kernels/cnnlens, put on JUPYTER_PATH."""
    prefix = tempfile.mkdtemp(prefix="cnnlens-jupyter-")
    subprocess.run([cnnlens_bin, "install", "--prefix", prefix], check=True, capture_output=True)
    data = os.path.join(prefix, "share", "jupyter")
    _kernelspec_runs(os.path.join(data, "kernels", "cnnlens", "kernel.json"), cnnlens_bin)
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = data + (os.pathsep + old if old else "")
    yield data
    if old is None:
        os.environ.pop("JUPYTER_PATH", None)
    else:
        os.environ["JUPYTER_PATH"] = old


def _kernelspec_runs(spec_path, binary):
    """A wrapper (valgrind-kernel.sh) installs the kernelspec of the binary it
    runs; point the spec back at the wrapper so kernels run under it too."""
    with open(spec_path) as f:
        spec = json.load(f)
    if os.path.realpath(spec["argv"][0]) != os.path.realpath(binary):
        spec["argv"][0] = os.path.abspath(binary)
        with open(spec_path, "w") as f:
            json.dump(spec, f, indent=1)


def _truthy(v):
    return (v or "").upper() not in ("", "0", "OFF", "FALSE", "NO")


SANITIZED = _truthy(os.environ.get("CNNLENS_SANITIZE"))
VALGRIND = os.path.basename(BIN) == "valgrind-kernel.sh"
# Memory is measured on the plain build only: ASan's quarantine and valgrind
# hold freed memory on purpose (their leak checkers cover those builds).
NATIVE = not (SANITIZED or VALGRIND)
MEMCHECK_DIR = None
if SANITIZED or VALGRIND:
    # One fresh folder per session, under CNNLENS_MEMCHECK_ROOT if given (run.sh keeps them).
    root = os.environ.get("CNNLENS_MEMCHECK_ROOT") or None
    if root:
        os.makedirs(root, exist_ok=True)
    MEMCHECK_DIR = tempfile.mkdtemp(prefix="memcheck-", dir=root)
    os.environ["CNNLENS_MEMCHECK_DIR"] = MEMCHECK_DIR
    if SANITIZED:
        # log_path: a kernel's report goes to a file, not to a stderr nobody reads.
        asan = "detect_leaks=1:abort_on_error=1:log_path=" + os.path.join(MEMCHECK_DIR, "asan")
        ubsan = "print_stacktrace=1:halt_on_error=1:log_path=" + os.path.join(MEMCHECK_DIR, "ubsan")
        os.environ["ASAN_OPTIONS"] = ":".join(x for x in (os.environ.get("ASAN_OPTIONS"), asan) if x)
        os.environ["UBSAN_OPTIONS"] = ":".join(x for x in (os.environ.get("UBSAN_OPTIONS"), ubsan) if x)
        if "suppressions=" not in os.environ.get("LSAN_OPTIONS", ""):
            # a libzmq leak, not cnnlens's (tests/lsan.supp says why)
            supp = "suppressions=" + os.path.join(os.path.dirname(__file__), "..", "lsan.supp")
            os.environ["LSAN_OPTIONS"] = ":".join(x for x in (os.environ.get("LSAN_OPTIONS"), supp) if x)

# How many times slower than a release build the binary under test runs; tests
# multiply their time limits by CNNLENS_TEST_SLOW (set here unless given).
# (memcheck runs the engine's arithmetic 50-100 times slower than native)
SLOW = float(os.environ.get("CNNLENS_TEST_SLOW") or (100 if VALGRIND else 2 if SANITIZED else 1))
os.environ["CNNLENS_TEST_SLOW"] = str(SLOW)
if VALGRIND:
    os.environ["CNNLENS_UNDER_VALGRIND"] = "1"
if SLOW > 1:
    # jupyter_client sends SIGTERM after half of this and SIGKILL after all of it;
    # a kernel killed before it exits leaves no leak report.
    from jupyter_client.manager import KernelManager

    KernelManager.shutdown_wait_time.default_value = 5.0 * SLOW

_VG_ERRORS = re.compile(r"ERROR SUMMARY: (\d[\d,]*) errors")
_VG_DEFINITE = re.compile(r"definitely lost: (\d[\d,]*) bytes")


def _memcheck_problems(path):
    """The text of a report that shows a problem, or None if it is clean."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    if not _is_valgrind_log(path):
        return text  # ASan/UBSan write a file only when they report something
    errors = _VG_ERRORS.findall(text)
    if not errors:
        return None  # still running, or killed (counted at session finish)
    definite = [int(d.replace(",", "")) for d in _VG_DEFINITE.findall(text)]
    if int(errors[-1].replace(",", "")) or any(definite):
        return text
    return None


def _is_valgrind_log(path):
    return os.path.basename(path).startswith("vg.")


def _finished(path):
    """ASan/UBSan files are whole when they appear; a valgrind log once it has its summary."""
    if not _is_valgrind_log(path):
        return True
    with open(path, errors="replace") as f:
        return bool(_VG_ERRORS.search(f.read()))


def _memcheck_reports():
    return set(glob.glob(os.path.join(MEMCHECK_DIR, "*"))) if MEMCHECK_DIR else set()


def _report(paths):
    out = []
    for p in sorted(paths):
        problem = _memcheck_problems(p)
        if problem:
            out.append(f"==== {p}\n{problem[-12000:]}")
    return "\n".join(out)


_seen_reports = set()


@pytest.fixture(autouse=True)
def _no_memory_errors():
    """Fails the test during which a cnnlens process reported a memory error."""
    yield
    if not MEMCHECK_DIR:
        return
    new = _memcheck_reports() - _seen_reports
    problems = _report(new)
    _seen_reports.update(p for p in new if _finished(p))  # unfinished ones: look again later
    assert not problems, "memory errors reported by cnnlens processes:\n" + problems


def _wait_for_children(seconds):
    """Kernels exit (and write their leak report) after the test that shut them down."""
    deadline = time.time() + seconds
    me = str(os.getpid())
    while time.time() < deadline:
        alive = False
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                with open(stat) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me and fields[0] != "Z":
                alive = True
                break
        if not alive:
            return
        time.sleep(0.2)


def pytest_sessionfinish(session, exitstatus):
    if not MEMCHECK_DIR:
        return
    _wait_for_children(60 if VALGRIND else 10)
    reports = _memcheck_reports()
    problems = _report(reports - _seen_reports)
    unfinished = sorted(p for p in reports if not _finished(p))
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr:
        tr.write_line(f"memcheck: {len(reports)} report(s) in {MEMCHECK_DIR}"
                      + (f"; {len(unfinished)} valgrind log(s) without a summary (process killed): {unfinished}"
                         if unfinished else ""))
        if problems:
            tr.write_line("memory errors reported after their test finished:\n" + problems, red=True)
    if problems:
        session.exitstatus = 1


@pytest.fixture
def rehearse_under_valgrind(monkeypatch):
    """Under memcheck a lecture's optimisation steps take hours (6.2's first
    maximize cell alone: 22 min; 6.2 whole in a rehearsal: 24 s): suites that
    run whole lectures run them as a rehearsal there (CNNLENS_REHEARSE: every
    steps, epochs and samples cut to 3; `cnnlens run` and the kernel both read
    it), with the same checks.  Native and sanitizer runs do the full work."""
    if VALGRIND:
        monkeypatch.setenv("CNNLENS_REHEARSE", "3")
