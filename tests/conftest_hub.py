"""pytest fixtures for the fake Hub: import them into tests/conftest.py with

    from conftest_hub import fake_hub, no_retry_wait  # noqa: F401  (pytest fixtures)
"""
from __future__ import annotations

import time
import types
from typing import Iterator

import pytest

from fakehub import FakeHub


@pytest.fixture
def fake_hub(tmp_path, monkeypatch) -> Iterator[FakeHub]:
    """A running fake Hub; HF_ENDPOINT points at it, the Hub cache is a fresh temp folder, no
    token and no offline mode, whatever the developer's shell or ~/.cache/huggingface hold."""
    import huggingface_hub.constants as hf_constants

    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
                    "HUGGINGFACE_HUB_CACHE", "HF_HUB_DISABLE_XET"):
            monkeypatch.delenv(var, raising=False)
        # huggingface_hub copies these from the environment once, at import: keep its copy in step
        # with the test's environment (offline off, no saved login token of the developer's, nothing sent anywhere else).
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
        # No telemetry: huggingface_hub 2.x otherwise GETs {ENDPOINT}/api/agent-harnesses once per process.
        monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", True)
        yield hub


@pytest.fixture
def no_retry_wait(monkeypatch) -> list:
    """Skip huggingface_hub's back-off sleeps (1+2+4+8+8 s when the Hub is unreachable, 1 s per
    resumed transfer) without changing what it does; returns the list of waits it asked for."""
    import huggingface_hub.file_download as hf_download
    import huggingface_hub.utils._http as hf_http

    waits: list = []
    fast_time = types.SimpleNamespace(**{name: getattr(time, name) for name in dir(time) if not name.startswith("__")})
    fast_time.sleep = waits.append
    monkeypatch.setattr(hf_http, "time", fast_time)
    monkeypatch.setattr(hf_download, "time", fast_time)
    return waits
