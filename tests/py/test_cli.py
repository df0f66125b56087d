"""The cnnlens binary as a user meets it: --help, --version, install, and the
kernelspec as Jupyter itself sees it."""
import json
import os
import subprocess


def run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, **kw)


def test_version(cnnlens_bin):
    r = run(cnnlens_bin, "--version")
    assert r.returncode == 0
    assert r.stdout.startswith("cnnlens ")


def test_help_lists_commands(cnnlens_bin):
    r = run(cnnlens_bin, "--help")
    assert r.returncode == 0
    for cmd in ("kernel", "run", "install"):
        assert cmd in r.stdout


def test_unknown_command_fails_clearly(cnnlens_bin):
    r = run(cnnlens_bin, "frobnicate")
    assert r.returncode == 2
    assert "unknown command 'frobnicate'" in r.stderr


def test_jupyter_sees_the_kernelspec(jupyter_path):
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().get_all_specs()
    assert "cnnlens" in specs
    spec = specs["cnnlens"]["spec"]
    assert spec["display_name"] == "CNN Lens"
    assert spec["language"] == "lens"
    assert spec["interrupt_mode"] == "message"
    assert os.path.isabs(spec["argv"][0]) and os.access(spec["argv"][0], os.X_OK)
    res = specs["cnnlens"]["resource_dir"]
    assert os.path.exists(os.path.join(res, "logo-32x32.png"))
    assert os.path.exists(os.path.join(res, "logo-64x64.png"))


def test_jupyter_kernelspec_list_shows_cnnlens(jupyter_path):
    r = run("/usr/bin/jupyter", "kernelspec", "list", "--json")
    assert r.returncode == 0, r.stderr
    assert "cnnlens" in json.loads(r.stdout)["kernelspecs"]


def test_install_user_writes_into_home(cnnlens_bin, tmp_path):
    env = dict(os.environ, HOME=str(tmp_path))
    r = run(cnnlens_bin, "install", "--user", env=env)
    assert r.returncode == 0, r.stderr
    spec = tmp_path / ".local/share/jupyter/kernels/cnnlens/kernel.json"
    assert json.loads(spec.read_text())["argv"][1:] == ["kernel", "-f", "{connection_file}"]
