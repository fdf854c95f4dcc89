"""The command line as a user meets it: the `stylecore` command that `pip install -e .` installs (and
`python -m stylecore`) run from any folder, results named by model and seed under out/, progress that
never runs into what is printed after it, and a quiet end when its reader stops early. (That `invert`
says which LPIPS its numbers are is checked with its other output, in test_coarse_to_fine.py.)"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import setuptools

from stylecore.__main__ import StatusLine, main

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_elsewhere(args: list[str], cwd: Path, **popen) -> subprocess.Popen:
    """`python <args>` started in `cwd`, outside the checkout, finding stylecore as an install would:
    the checkout on PYTHONPATH (what `pip install -e .` maps for stylecore, here for the rest too)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, text=True, **popen)


def test_the_install_is_stylecore_with_its_command_and_data():
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    module, _, name = config["project"]["scripts"]["stylecore"].partition(":")
    assert callable(getattr(importlib.import_module(module), name))
    find = config["tool"]["setuptools"]["packages"]["find"]
    packages = setuptools.find_packages(str(REPO_ROOT), include=find["include"])
    assert "stylecore" in packages and all(p.split(".")[0] == "stylecore" for p in packages)  # no spaces/kernels/tests
    data = [path for pattern in config["tool"]["setuptools"]["package-data"]["stylecore"]
            for path in (REPO_ROOT / "stylecore").glob(pattern)]
    assert REPO_ROOT / "stylecore" / "engine" / "cards.toml" in data


def test_the_command_runs_from_another_folder(tmp_path):
    entry = "import sys; import stylecore.__main__ as cli; sys.argv[0] = 'stylecore'; cli.run()"
    for args, usage in ((["-c", entry, "--help"], "usage: stylecore "),
                        (["-m", "stylecore", "--help"], "usage: python -m stylecore ")):
        proc = run_elsewhere(args, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.startswith(usage), err


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path):
    """`stylecore models | head -1`: no traceback, no 'Broken pipe', the status of a SIGPIPE."""
    proc = run_elsewhere(["-m", "stylecore", "models"], tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the command writes anything
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141 and err == ""


def test_outputs_are_named_by_model_and_seed_under_out(tmp_path, monkeypatch, capsys):
    """The README's examples, in one folder: nothing overwrites anything, and the counts read right."""
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "--model", "demo", "--seeds", "0-1", "--device", "cpu"]) == 0
    assert "wrote 2 images to out: demo-seed0000.png ... demo-seed0001.png" in capsys.readouterr().out
    assert main(["generate", "--model", "demo-sg3", "--seeds", "0", "--translate", "0.1,0", "--rotate", "15",
                 "--device", "cpu"]) == 0
    assert "wrote 1 image to out: demo-sg3-seed0000.png" in capsys.readouterr().out
    assert main(["video", "--model", "demo", "--seeds", "0-1", "--frames-per-transition", "1", "--device", "cpu"]) == 0
    assert "wrote out/demo-seeds0000-0001.mp4: 2 frames" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "demo-seed0000.png", "demo-seed0001.png", "demo-seeds0000-0001.mp4", "demo-sg3-seed0000.png"]


def test_an_error_after_progress_starts_on_a_fresh_line(capsys):
    assert main(["generate", "--model", "demo", "--seeds", "0", "--translate", "0.1,0", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("\r[") and err.endswith("\n")
    progress, error = err.rstrip("\n").rsplit("\n", 1)
    assert "demo" in progress and error.startswith("error: ") and "StyleGAN3" in error


def test_the_status_line_covers_longer_text_and_ends_once(capsys):
    status = StatusLine()
    status.end()  # nothing open: nothing written
    status(0.5, "loading a long model name")
    status(1.0, "ready")
    status.end()
    status.end()
    first = "[ 50%] loading a long model name"
    assert capsys.readouterr().err == f"\r{first}\r{'[100%] ready'.ljust(len(first))}\n"
