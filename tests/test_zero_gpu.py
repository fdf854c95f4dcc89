"""ZeroGPU done right: downloads and conversions happen before `spaces.GPU` is entered, and the GPU
time asked for follows the request.

ZeroGPU hardware cannot run here, so `spaces.GPU` is replaced by a recorder while the tabs are built:
at entry it notes whether the event's model file was already downloaded and the network already
loaded, and it evaluates the `duration` callable on the request, as ZeroGPU does. Hugging Face's own
decorator (pinned in requirements.txt) is checked separately: it accepts our duration callable and,
off ZeroGPU, passes calls through unchanged.
"""
from __future__ import annotations

import importlib

import gradio as gr
import pytest

import spaces
from stylecore.engine import hub
from stylecore.engine.demo import DEMO_KWARGS, build_demo_generator
from stylecore.engine.manager import ModelManager
from stylecore.engine.zoo import ModelCard, Zoo

REPO, FILE = "someone/tiny-sg2", "tiny.pkl"


class RecordingGPU:
    """Stands in for ZeroGPU's decorator: records the state of the world when a GPU function is entered."""

    def __init__(self, manager: ModelManager, card: ModelCard):
        self.manager, self.card, self.entries = manager, card, []

    def __call__(self, fn=None, *, duration=None, **_):
        def decorate(f):
            def entered(*args, **kwargs):
                self.entries.append({"seconds": duration(*args, **kwargs), "state": hub.download_state(self.card),
                                     "loaded": self.card.id in self.manager.loaded_ids()})
                return f(*args, **kwargs)
            return entered
        return decorate(fn) if fn is not None else decorate


@pytest.fixture
def served(fake_hub, tmp_path):
    from writers.official_pickle import nest_ada_kwargs, write_official_pickle

    local = tmp_path / FILE
    write_official_pickle(local, build_demo_generator("stylegan2"), nest_ada_kwargs(DEMO_KWARGS["stylegan2"]), "ada")
    fake_hub.add_file(REPO, FILE, local.read_bytes())
    card = ModelCard(id="tiny-sg2", repo_id=REPO, filename=FILE, architecture="stylegan2")
    manager = ModelManager(Zoo([card]), device="cpu")
    return manager, card


def _endpoint(demo: gr.Blocks, api_name: str):
    return next(block.fn for block in demo.fns.values() if block.api_name == api_name)


def test_model_is_fetched_and_loaded_before_gpu_time(served, monkeypatch):
    manager, card = served
    recorder = RecordingGPU(manager, card)
    monkeypatch.setattr(spaces, "GPU", recorder)
    generate_tab = importlib.import_module("spaces.generate")
    with gr.Blocks() as demo:
        generate_tab.GenerateTab(manager).layout()
    generate = _endpoint(demo, "generate")
    assert hub.download_state(card) == "not downloaded" and not manager.loaded_ids()
    gallery, _, _ = generate(model_id=card.id, seeds="0-1")
    assert len(gallery) == 2
    first = recorder.entries[0]
    assert first["state"] == "downloaded" and first["loaded"], "the GPU function was entered before the download"
    generate(model_id=card.id, seeds="0-39")
    assert recorder.entries[1]["seconds"] > first["seconds"]  # more seeds, more GPU time asked for
    mix = _endpoint(demo, "style_mix")
    mix(model_id=card.id, row_seeds="1", col_seeds="2")
    small = recorder.entries[-1]["seconds"]
    mix(model_id=card.id, row_seeds="1-8", col_seeds="1-8")
    assert recorder.entries[-1]["seconds"] > small


def test_unavailable_model_fails_before_gpu_time(served, monkeypatch):
    """A model that cannot be downloaded is a user error, reported without ever taking the GPU."""
    manager, card = served
    missing = manager.zoo.add(ModelCard(id="missing", repo_id=REPO, filename="nope.pkl"))
    recorder = RecordingGPU(manager, missing)
    monkeypatch.setattr(spaces, "GPU", recorder)
    generate_tab = importlib.import_module("spaces.generate")
    with gr.Blocks() as demo:
        generate_tab.GenerateTab(manager).layout()
    with pytest.raises(gr.Error, match="nope.pkl"):
        _endpoint(demo, "generate")(model_id="missing", seeds="0")
    assert recorder.entries == []


def test_huggingface_decorator_takes_our_duration_callable():
    """The pinned Hugging Face package: GPU(duration=callable) is accepted and, off ZeroGPU, transparent."""
    if getattr(spaces, "_HF_SPACES_DIR", None) is None:
        pytest.skip("Hugging Face's spaces package is not installed (requirements.txt pins it)")
    from spaces.common import on_gpu

    manager = ModelManager(Zoo(), device="cpu")
    calls = []

    @on_gpu(manager, "demo", seconds=lambda a: 5 * len(a["seeds"]))
    def event(model_id: str = "demo", seeds: str = "0"):
        calls.append(seeds)
        return "done"

    assert event(seeds="0-3") == "done" and calls == ["0-3"] and "demo" in manager.loaded_ids()
