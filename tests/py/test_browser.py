"""The notebooks in a real browser: Debian's classic Jupyter Notebook serves
6.4 and 6.5 with the cnnlens kernel, headless Debian Chromium (driven by
playwright-core from tests/browser) runs every cell, and the figures, errors and
the toolbar's interrupt button are checked as a student would see them.
Screenshots go to $CNNLENS_BUILD/browser-screenshots/."""
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import BUILD, SLOW, SOURCE

NOTEBOOKS = ["6.4-gradcam-step-by-step.ipynb", "6.5-gradcam-imagenet.ipynb"]
FOLDERS = ["images", "labels"]
BROWSER_DIR = os.path.join(SOURCE, "tests", "browser")
CHROMIUM = "/usr/bin/chromium"
NOTEBOOK_SERVER = "/usr/bin/jupyter-notebook"
HOW_TO_FIX = "run install/deps.sh (as root) to install it"
# The interrupt button's bound: 5 s, and 20 s when memcheck slows each step
STOP_SECONDS = 5 * min(SLOW, 4)


def require_tools():
    """The browser test needs all of these; a missing one fails the test."""
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"Debian's Chromium ({CHROMIUM}, package chromium)")
    if not os.access(NOTEBOOK_SERVER, os.X_OK):
        missing.append(f"Debian's classic Notebook ({NOTEBOOK_SERVER}, package jupyter-notebook)")
    node = shutil.which("node")
    if node is None:
        missing.append("Node.js (node, package nodejs)")
    if not os.path.exists(os.path.join(BROWSER_DIR, "node_modules", "playwright-core", "package.json")):
        missing.append("playwright-core in tests/browser/node_modules (npm ci --prefix tests/browser)")
    if missing:
        pytest.fail("the browser test needs " + "; ".join(missing) + f": {HOW_TO_FIX}", pytrace=False)
    return node


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shows_in(src):
    """One PNG per `show` line, in a cell that does not `require` a weight file
    (the temp folder holds no weights, so such a cell says so and skips)."""
    if re.search(r"^\s*require\b", src, re.M):
        return 0
    return len(re.findall(r"^\s*show\b", src, re.M))


def expected_figures(path):
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    return sum(shows_in("".join(c["source"]) if isinstance(c["source"], list) else c["source"])
               for c in nb["cells"] if c["cell_type"] == "code")


def copy_without_outputs(src, dst):
    """A stored output would pass for a figure the browser drew: start from none."""
    with open(src, encoding="utf-8") as f:
        nb = json.load(f)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(nb, f)


@pytest.fixture(scope="module")
def notebook_server(jupyter_path, tmp_path_factory):
    """Debian's jupyter-notebook on 127.0.0.1 with a token, serving copies of
    the notebooks and the folders they read. Yields (url, token, folder)."""
    require_tools()
    root = tmp_path_factory.mktemp("notebooks")
    for name in NOTEBOOKS:
        copy_without_outputs(os.path.join(SOURCE, "notebooks", name), root / name)
    for folder in FOLDERS:
        shutil.copytree(os.path.join(SOURCE, "notebooks", folder), root / folder)
    state = tmp_path_factory.mktemp("jupyter-state")
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env.update({
        "JUPYTER_PATH": jupyter_path,
        # Keep the machine's own Jupyter config, runtime files and kernelspecs out.
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "JUPYTER_DATA_DIR": str(state / "data"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "CNNLENS_INTERP": "lens",
    })
    log_path = state / "server.log"
    log = open(log_path, "w")
    argv = [NOTEBOOK_SERVER, "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
            f"--NotebookApp.token={token}", f"--notebook-dir={root}"]
    if os.geteuid() == 0:  # CI runs as root; Notebook refuses that without this flag
        argv.append("--allow-root")
    if SLOW > 1:  # a kernel under valgrind needs time to write its report when shut down
        argv.append(f"--KernelManager.shutdown_wait_time={5.0 * SLOW}")
    server = subprocess.Popen(
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"jupyter-notebook exited early:\n{log_path.read_text()}", pytrace=False)
            try:
                with urllib.request.urlopen(f"{url}/api/kernelspecs?token={token}", timeout=2) as r:
                    specs = json.load(r)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter-notebook did not answer in 60 s:\n{log_path.read_text()}", pytrace=False)
                time.sleep(0.2)
        assert "cnnlens" in specs["kernelspecs"], f"the server does not see the cnnlens kernelspec: {specs}"
        yield url, token, root, log_path
    finally:
        server.terminate()
        try:
            server.wait(timeout=15 + 5 * SLOW)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def browser_run(notebook_server):
    """Runs tests/browser/notebooks.js once; the tests below read its results."""
    node = require_tools()
    url, token, root, server_log = notebook_server
    out = os.path.join(BUILD, "browser-screenshots")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    config = os.path.join(out, "config.json")
    with open(config, "w") as f:
        json.dump({"url": url, "token": token, "out": out, "notebooks": NOTEBOOKS,
                   "interruptIn": NOTEBOOKS[0], "runTimeoutMs": 150000,
                   "slow": SLOW}, f)
    print(f"\nbrowser screenshots and results: {out}")
    t0 = time.monotonic()
    proc = subprocess.run([node, os.path.join(BROWSER_DIR, "notebooks.js"), config],
                          cwd=BROWSER_DIR, capture_output=True, text=True, timeout=600 * SLOW)
    print(proc.stdout, proc.stderr, f"browser run: {time.monotonic() - t0:.1f} s", sep="\n")
    assert proc.returncode == 0, (f"the browser script failed:\n{proc.stdout}\n{proc.stderr}\n"
                                  f"server log:\n{server_log.read_text()[-4000:]}")
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    results["by_name"] = {r["name"]: r for r in results["notebooks"]}
    return results


def describe(cells):
    return "\n".join(f"  cell {c['index']} [{c['prompt']}] {c['source'].splitlines()[0] if c['source'] else ''!r}: "
                     + ("; ".join(e.splitlines()[-1] if e else e for e in c["errors"]))
                     for c in cells if c["errors"])


def test_browser_tools_are_installed():
    require_tools()


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_browser(browser_run, name):
    r = browser_run["by_name"][name]
    assert r["screenshot"] and os.path.getsize(r["screenshot"]) > 0, "no screenshot was saved"
    see = f"(screenshot: {r['screenshot']})"
    assert r["ok"], f"{name} did not finish in the browser: {r['error']} {see}"
    assert r["imagesBeforeRun"] == 0, "the copy should start with no outputs"
    cells = r["cells"]
    errors = describe(cells)
    assert not errors, f"{name}: cells show errors (.output_error):\n{errors}\n{see}"
    not_run = [c["index"] for c in cells if not isinstance(c["prompt"], int)]
    assert not not_run, f"{name}: cells that never ran: {not_run} {see}"
    imgs = [i for c in cells for i in c["imgs"]]
    want = expected_figures(os.path.join(SOURCE, "notebooks", name))
    assert len(imgs) >= want, f"{name}: {len(imgs)} figures rendered, expected at least {want} {see}"
    for c in cells:
        assert len(c["imgs"]) >= shows_in(c["source"]), \
            f"cell {c['index']} has {len(c['imgs'])} figures for {shows_in(c['source'])} show commands {see}"
        for i in c["imgs"]:
            assert i["png"], f"cell {c['index']}: <img> without PNG data ({i['srcStart']!r})"
            assert i["complete"] and i["naturalWidth"] > 0 and i["naturalHeight"] > 0, \
                f"cell {c['index']}: the browser could not decode the PNG: {i}"


def test_interrupt_button_stops_a_long_cell(browser_run):
    r = browser_run["by_name"][NOTEBOOKS[0]]["interrupt"]
    assert r["ok"], f"the interrupt test did not finish: {r['error']}"
    cell = r["cell"]
    assert any("KeyboardInterrupt" in e for e in cell["errors"]), \
        f"the interrupted cell should end with a KeyboardInterrupt error, it shows {cell['errors']} {cell['text']!r}"
    assert r["seconds"] < STOP_SECONDS, f"the cell took {r['seconds']:.1f} s to stop after the interrupt button"
    after = r["after"]
    assert not after["errors"], f"the cell after the interrupt failed: {after['errors']}"
    assert "still here" in after["text"], f"the cell after the interrupt printed {after['text']!r}"
