"""The hub as a Hugging Face Space: SYSTEM=spaces and SPACE_ID set, as on Spaces, (a) without and
(b) with Hugging Face's own `spaces` package (what ZeroGPU hardware runs), which our `spaces/`
folder must absorb. Two app launches, on purpose: one per case.

For (b) the package is installed for the test only (`pip install --no-deps --target <tmp>`) and
put on the app's PYTHONPATH; without PyPI the case is skipped.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from app_server import REPO_ROOT, api_client, app_env, launch_app

HF_SPACES_VERSION = "0.51.3"
SPACE_ENV = {"SYSTEM": "spaces", "SPACE_ID": "test/stylegan-hub"}

# What app.py's imports (in app.py's order) leave behind, without launching anything.
PROBE = r"""
import importlib, json
import app
import gradio
import gradio.block_function as block_function
import spaces
generate = importlib.import_module("spaces.generate")
f = lambda: 42
print("PROBE " + json.dumps({
    "init": spaces.__file__,
    "hf_dir": spaces._HF_SPACES_DIR,
    "path": list(spaces.__path__),
    "generate": generate.__file__,
    "gpu_module": spaces.GPU.__module__,
    "auto_wrap_module": spaces.gradio_auto_wrap.__module__,
    "gpu_keeps_plain": spaces.GPU(f)() == 42 and spaces.GPU(duration=30)(f)() == 42,
    "auto_wrap_keeps": spaces.gradio_auto_wrap(f)() == 42,
    "gradio_imported": getattr(block_function.spaces, "__file__", None),
    "space": gradio.utils.get_space(),
}))
"""


def start_probe(env: dict) -> subprocess.Popen:
    """Run PROBE in the background (it imports gradio: seconds), beside the app's start-up."""
    return subprocess.Popen([sys.executable, "-c", PROBE], cwd=str(REPO_ROOT), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def probe_result(process: subprocess.Popen) -> dict:
    try:
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    lines = [line for line in out.splitlines() if line.startswith("PROBE ")]
    assert process.returncode == 0 and lines, f"probe failed ({process.returncode}):\n{out}\n{err}"
    return json.loads(lines[-1][len("PROBE "):])


def generate_two(server, download_dir: Path) -> None:
    with api_client(server, download_dir) as client:
        gallery, grid, status = client.predict(seeds="0-1", api_name="/generate")
    assert [item["caption"] for item in gallery] == ["seed 0", "seed 1"]
    for item in gallery:
        with Image.open(item["image"]) as im:
            assert im.format == "PNG" and im.size == (64, 64)
    assert "untrained" in status


@pytest.fixture(scope="module")
def hf_spaces_dir(tmp_path_factory) -> Path:
    """Hugging Face's `spaces` package, installed into a folder of its own for this module."""
    target = tmp_path_factory.mktemp("hf-spaces-pkg")
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target),
               "--disable-pip-version-check", "--no-input", "--timeout", "20", "--retries", "1",
               f"spaces=={HF_SPACES_VERSION}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.skip(f"pip could not fetch spaces=={HF_SPACES_VERSION} from PyPI within 180 s")
    if done.returncode != 0 or not (target / "spaces" / "__init__.py").is_file():
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        pytest.skip(f"pip could not install spaces=={HF_SPACES_VERSION} (is PyPI reachable?): " + " | ".join(tail))
    return target


def test_space_without_huggingface_spaces_package(tmp_path):
    overrides = {**SPACE_ENV, "PYTHONPATH": None}
    running = start_probe(app_env(overrides, tmp_path / "probe"))
    with launch_app(["--device", "cpu"], env=overrides, workdir=tmp_path / "app") as app:
        facts = probe_result(running)
        generate_two(app, tmp_path / "downloads")
        assert app.alive()
    if facts["hf_dir"] is not None:
        pytest.skip(f"Hugging Face's spaces package is installed in this environment ({facts['hf_dir']}): "
                    "case (a) needs an environment without it")
    ours = str(REPO_ROOT / "spaces")
    assert facts["space"] == "test/stylegan-hub"
    assert facts["init"] == str(REPO_ROOT / "spaces" / "__init__.py") and facts["path"] == [ours]
    assert facts["generate"] == str(REPO_ROOT / "spaces" / "generate.py")
    # Gradio imported our package and gets pass-through GPU / gradio_auto_wrap from it.
    assert facts["gradio_imported"] == facts["init"]
    assert facts["gpu_keeps_plain"] and facts["auto_wrap_keeps"]
    assert facts["gpu_module"] == facts["auto_wrap_module"] == "spaces"


@pytest.fixture(scope="module")
def hf_probe(hf_spaces_dir, tmp_path_factory):
    """PROBE with Hugging Face's package on the path; started now, read when first needed."""
    overrides = {**SPACE_ENV, "PYTHONPATH": str(hf_spaces_dir)}
    running = start_probe(app_env(overrides, tmp_path_factory.mktemp("hf-probe")))
    facts: dict = {}

    def result() -> dict:
        if not facts:
            facts.update(probe_result(running))
        return facts

    yield result
    if running.poll() is None:
        running.kill()
        running.communicate()


def test_space_with_huggingface_spaces_package(tmp_path, hf_spaces_dir, hf_probe):
    overrides = {**SPACE_ENV, "PYTHONPATH": str(hf_spaces_dir)}
    with launch_app(["--device", "cpu"], env=overrides, workdir=tmp_path / "app") as app:
        facts = hf_probe()
        generate_two(app, tmp_path / "downloads")
        assert app.alive()
    # Our folder stays `spaces` (the tabs import from it) and Hugging Face's joins it.
    assert facts["init"] == str(REPO_ROOT / "spaces" / "__init__.py")
    assert facts["hf_dir"] == str(hf_spaces_dir / "spaces")
    assert facts["path"] == [str(REPO_ROOT / "spaces"), str(hf_spaces_dir / "spaces")]
    assert facts["generate"] == str(REPO_ROOT / "spaces" / "generate.py")
    # The names come from Hugging Face's package, and do nothing off ZeroGPU hardware.
    assert facts["gpu_module"] == "spaces.zero.decorator" and facts["auto_wrap_module"] == "spaces.gradio"
    assert facts["gpu_keeps_plain"] and facts["auto_wrap_keeps"]


def test_gradio_gets_the_merged_spaces_package(hf_spaces_dir, hf_probe):
    facts = hf_probe()
    assert facts["gradio_imported"] == str(REPO_ROOT / "spaces" / "__init__.py")
