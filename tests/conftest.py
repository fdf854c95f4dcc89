"""Shared test fixtures: the parity vectors in ../shared and a private converted-model cache."""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# ../shared sits beside the checkout (CI too); STYLECORE_PARITY_DIR points elsewhere (the GPU machine).
PARITY_DIR = Path(os.environ.get("STYLECORE_PARITY_DIR", REPO_ROOT.parent / "shared" / "fixtures" / "parity"))


def parity_case(name: str) -> tuple[dict, dict, dict]:
    """(json metadata, state dict, arrays) of a parity case; fails loudly when missing."""
    from safetensors.torch import load_file

    meta_path = PARITY_DIR / f"{name}.json"
    if not meta_path.exists():
        pytest.fail(f"parity fixture {meta_path} is missing: clone the project with ../shared beside it")
    meta = json.loads(meta_path.read_text())
    tensors_path = PARITY_DIR / f"{name}.safetensors"
    state = load_file(str(tensors_path)) if tensors_path.exists() else {}
    with np.load(PARITY_DIR / f"{name}.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return meta, state, arrays


def relative_error(a, b) -> float:
    """max|a - b| / std(b), the parity measure of the fixtures' READMEs."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / b.std())


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Each test session converts into its own cache folder, never the user's."""
    cache = tmp_path_factory.getbasetemp() / "stylecore-cache"
    monkeypatch.setenv("STYLECORE_CACHE", str(cache))


@pytest.fixture(autouse=True)
def _fresh_reachability():
    """Each test starts knowing nothing about which servers answered (stylecore.engine.remote): a port an
    earlier test found closed may be a fake Hub's now."""
    from stylecore.engine.remote import forget_answers

    forget_answers()


@contextlib.contextmanager
def true_float32():
    """Turn off TF32 in cuDNN convolutions and matmuls so CUDA float32 is float32 arithmetic."""
    import torch

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


from conftest_hub import fake_hub, no_retry_wait  # noqa: E402,F401  (pytest fixtures for every test module)
from browser import browser, page  # noqa: E402,F401  (real-browser fixtures; each browser test module defines `app`)


@pytest.fixture(scope="module")
def one_thread():
    """Optimisation loops are many small ops: one thread is fastest and fair to the other jobs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def demo_sg2():
    """The demo StyleGAN2, built once for the session (the tests that share it only read it)."""
    from stylecore.engine.demo import build_demo_generator

    return build_demo_generator("stylegan2").eval().requires_grad_(False)


@pytest.fixture(scope="session")
def lpips_random_net():
    """LPIPS on a random VGG16 backbone, built once for the session (a build takes seconds)."""
    from stylecore.perception.metrics import build_lpips

    return build_lpips(pretrained=False)


@pytest.fixture(scope="module")
def G(demo_sg2):
    """`G` for the optimisation tests (test_invert, test_coarse_to_fine, test_pti): the shared demo StyleGAN2;
    a module with its own `G` fixture overrides this one."""
    return demo_sg2


@pytest.fixture(scope="module")
def net(lpips_random_net):
    """`net` for the same tests: the shared random-backbone LPIPS."""
    return lpips_random_net
