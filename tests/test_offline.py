"""Offline and with the Hub unreachable: downloads fail at once (no retry ladder), each kind of file says
what it is and what to do instead, inversion runs on the demo network with a labelled random LPIPS, and
the start-up probe, run in the background, fills in the banner and the model lists' wording.

The real huggingface_hub client runs against the fake Hub on 127.0.0.1, stopped or closed ports standing in
for an unreachable Hub; no test waits for a timeout."""
from __future__ import annotations

import math
import os

import pytest

from app_server import free_port
from stylecore.engine import hub, remote
from stylecore.engine.remote import ModelUnavailable, last_answer
from stylecore.engine.zoo import ModelCard

REPO, FILE = "owner/offline-test", "nets/tiny.pkl"
PAYLOAD = b"\x80\x02" + os.urandom(2048)


def card(filename: str = FILE) -> ModelCard:
    return ModelCard(id="tiny", title="tiny test net", repo_id=REPO, filename=filename)


@pytest.fixture
def dead_ngc(monkeypatch) -> str:
    """NVIDIA's server behind a closed port, so that a probe never leaves this machine."""
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("STYLECORE_URL_MIRRORS",
                       f"https://api.ngc.nvidia.com={dead},https://nvlabs-fi-cdn.nvidia.com={dead}")
    monkeypatch.delenv("STYLECORE_DEMO_DEFAULTS", raising=False)
    return dead


def test_an_unreachable_hub_fails_at_once_without_the_retry_ladder(fake_hub, no_retry_wait):
    fake_hub.add_file(REPO, FILE, PAYLOAD)
    fake_hub.go_down()
    for name in (FILE, "nets/other.pkl"):
        with pytest.raises(ModelUnavailable) as info:
            hub.fetch(card(name))
        err = info.value
        assert err.kind == "offline" and f"could not be reached at {fake_hub.endpoint}" in str(err)
        assert "built-in demo network" in err.remedy and "--models" in err.remedy  # a generator's remedies
    assert no_retry_wait == [], "huggingface_hub's back-off was entered"
    assert last_answer(fake_hub.endpoint).up is False


def test_what_the_probe_found_spares_requests_until_it_is_stale(fake_hub, no_retry_wait, dead_ngc, monkeypatch):
    from stylecore.engine.reachability import probe

    fake_hub.add_file(REPO, FILE, PAYLOAD)
    fake_hub.go_down()
    reach = probe(timeout=2)
    assert not reach.hub and not reach.online
    fake_hub.come_back()  # the Hub is back, but what the probe found still stands for a while
    fake_hub.reset_counts()
    with pytest.raises(ModelUnavailable) as info:
        hub.fetch(card())
    assert info.value.kind == "offline" and fake_hub.count() == 0 and no_retry_wait == []
    assert hub.fetch_blocker(card()) == "Hub unreachable"

    monkeypatch.setattr(remote, "RECHECK_AFTER", 0.0)  # stale now: the next download looks again
    assert hub.fetch(card()).read_bytes() == PAYLOAD
    assert hub.fetch_blocker(card("nets/other.pkl")) == ""


def test_a_failed_download_is_remembered(fake_hub, no_retry_wait):
    fake_hub.add_file(REPO, FILE, PAYLOAD)
    assert hub.fetch(card()).read_bytes() == PAYLOAD  # the Hub answered: it is trusted for a while
    fake_hub.go_down()
    with pytest.raises(ModelUnavailable):
        hub.fetch(card("nets/gone.pkl"))  # this one learns the hard way (huggingface_hub retries)
    assert no_retry_wait
    waits = len(no_retry_wait)
    fake_hub.come_back()
    fake_hub.reset_counts()
    with pytest.raises(ModelUnavailable) as info:
        hub.fetch(card("nets/other.pkl"))
    assert info.value.kind == "offline" and fake_hub.count() == 0 and len(no_retry_wait) == waits


def test_each_kind_of_file_names_itself_and_offers_its_own_remedy(fake_hub, monkeypatch):
    """Offline mode, so every download fails at once; the words differ by what the file is for."""
    import torch

    from stylecore.edit.edits import InterFaceGANEdit
    from stylecore.edit.resources import directions
    from stylecore.inversion.compare import load_encoder_model
    from stylecore.perception import align
    from stylecore.perception.clip import load_clip
    from stylecore.perception.metrics import build_lpips

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in ("STYLECORE_CLIP", "STYLECORE_DLIB_LANDMARKS", "STYLECORE_LPIPS_BACKBONE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(align, "_packaged_landmarks", lambda: None)  # as without the face-recognition-models wheel
    attempts = {
        "Model": lambda: hub.fetch(card()),
        "Encoder": lambda: load_encoder_model("e4e-ffhq", device=torch.device("cpu")),
        "InterFaceGAN boundary": lambda: directions(InterFaceGANEdit(1.0, direction_asset="interfacegan-smiling")),
        "LPIPS backbone": lambda: build_lpips(pretrained=True),
        "CLIP model": lambda: load_clip(),
        "Face landmark model": align.landmark_model_path,
    }
    remedies = {}
    for noun, attempt in attempts.items():
        with pytest.raises(ModelUnavailable) as info:
            attempt()
        assert info.value.kind == "offline" and str(info.value).startswith(f"{noun} '"), str(info.value)
        remedies[noun] = info.value.remedy
    assert "--models" in remedies["Model"] and "demo network" in remedies["Model"]
    assert all("--models" not in text for noun, text in remedies.items() if noun != "Model"), remedies
    assert "optimisation method" in remedies["Encoder"]
    assert "'Direction file'" in remedies["InterFaceGAN boundary"] and "GANSpace" in remedies["InterFaceGAN boundary"]
    assert "STYLECORE_LPIPS_BACKBONE=random" in remedies["LPIPS backbone"]
    assert "'CLIP model' box" in remedies["CLIP model"] and "STYLECORE_CLIP" in remedies["CLIP model"]
    assert "STYLECORE_DLIB_LANDMARKS" in remedies["Face landmark model"] and "crop" in remedies["Face landmark model"]


def test_inversion_runs_offline_with_a_labelled_random_lpips(fake_hub, monkeypatch):
    from stylecore.engine.manager import ModelManager
    from stylecore.engine.zoo import Zoo
    from stylecore.inversion.compare import compare_on, seed_target
    from stylecore.inversion.methods import choose

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("STYLECORE_LPIPS_BACKBONE", raising=False)
    manager = ModelManager(Zoo(), device="cpu")
    model = manager.get("demo")
    target, _ = seed_target(model.G, 5, force_fp32=True)
    comparison = compare_on(manager, model, target, choose(["w"], {"w": 1}), schedule="full")
    assert comparison.random_lpips and len(comparison.results) == 1
    assert all(math.isfinite(v) for v in comparison.results[0].metrics.values())
    note, = [n for n in comparison.notes if "LPIPS" in n]
    assert "random" in note and "could not be downloaded" in note and "offline mode" in note


def test_the_background_probe_fills_in_the_banner_and_the_model_wording(fake_hub, dead_ngc, monkeypatch):
    import gradio as gr

    from spaces.common import model_label, model_picker, offline_banner, offline_notice
    from stylecore.engine.manager import ModelManager
    from stylecore.engine.reachability import BackgroundProbe
    from stylecore.engine.zoo import Zoo

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nobody listens there
    zoo = Zoo()
    zoo.add(card())
    manager = ModelManager(zoo, device="cpu")
    probe = BackgroundProbe(timeout=2)
    manager.reachability = probe  # not started yet: still probing
    with gr.Blocks() as demo:
        offline_banner(manager)
        model_picker(manager, "demo", "test_refresh_models")
    assert offline_notice(manager) == "" and model_label(card()).endswith("· not downloaded")
    loads = [block for block in demo.fns.values() if any(event == "load" for _, event in block.targets)]
    assert len(loads) == 2 and all(block.api_visibility == "private" for block in loads)

    probe.start()
    updates = [block.fn() for block in loads]  # what a page load sends: after the probe has answered
    banner, = [u for u in updates if "Demo networks" in str(u.get("value", ""))]
    assert banner["visible"] and "could not be reached" in banner["value"]
    picker, = [u for u in updates if "choices" in u]
    labels = dict((model_id, label) for label, model_id in picker["choices"])
    assert labels["tiny"].endswith("· not downloaded, Hub unreachable")
    assert labels["sg2-ffhq-512"].endswith("· not downloaded, NVIDIA unreachable")  # an NGC card
    assert labels["demo"].endswith("· built-in") and "cannot be downloaded now" in picker["info"]
