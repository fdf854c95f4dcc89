"""Which model each tab opens on, the start-up probe behind it, and a Space's background prefetch."""
from __future__ import annotations

import pytest

from stylecore.engine import hub
from stylecore.engine.defaults import TAB_DEFAULTS, default_cards, default_model_id
from stylecore.engine.prefetch import Prefetch
from stylecore.engine.reachability import UNPROBED, Reachability, probe
from stylecore.engine.zoo import ModelCard, Zoo

ONLINE, HUB_ONLY = Reachability(True, True), Reachability(True, False, "ngc: unreachable")


def test_real_models_when_reachable_demo_networks_when_not():
    zoo = Zoo()
    for tab, (real, demo, _) in TAB_DEFAULTS.items():
        assert real in zoo and demo in zoo, tab
        assert default_model_id(zoo, tab, ONLINE) == real
        assert default_model_id(zoo, tab, UNPROBED) == demo
    assert default_model_id(zoo, "generate", ONLINE) == "sg2-ffhq-512" and zoo.get("sg2-ffhq-512").url
    assert default_model_id(zoo, "video", ONLINE) == "sg3-t-ffhqu-256"
    assert default_model_id(zoo, "stylenerf", ONLINE) == "stylenerf-ffhq-256"
    assert default_model_id(zoo, "inversion", ONLINE) == "sg2-ffhq-1024-rosinality"
    # NGC unreachable but the Hub fine: the Hub-backed defaults stay real, the NGC one falls back.
    assert default_model_id(zoo, "generate", HUB_ONLY) == "demo"
    assert default_model_id(zoo, "editing", HUB_ONLY) == "sg2-ffhq-1024-rosinality"


def test_a_model_already_here_wins_even_offline(tmp_path):
    local = tmp_path / "mine.pkl"
    local.write_bytes(b"not read here")
    zoo = Zoo()
    zoo.add_spec(f"mine={local}")
    assert default_model_id(zoo, "generate", ONLINE) == "mine"  # the user's own model comes first
    assert default_model_id(zoo, "inversion", UNPROBED) == "mine"
    assert default_model_id(zoo, "stylenerf", UNPROBED) == "demo-nerf"  # architecture 'auto' is not StyleNeRF


def test_probe_answers_without_requests_when_told(monkeypatch):
    monkeypatch.setenv("STYLECORE_DEMO_DEFAULTS", "1")
    assert probe() == Reachability(False, False, "STYLECORE_DEMO_DEFAULTS is set")
    monkeypatch.delenv("STYLECORE_DEMO_DEFAULTS")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reach = probe()
    assert not reach.online and "HF_HUB_OFFLINE" in reach.reason


def test_probe_reaches_the_hub_and_names_what_it_cannot_reach(fake_hub, monkeypatch):
    from app_server import free_port

    monkeypatch.delenv("STYLECORE_DEMO_DEFAULTS", raising=False)
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("STYLECORE_URL_MIRRORS", f"https://api.ngc.nvidia.com={dead}")
    reach = probe(timeout=2)
    assert reach.hub and not reach.ngc and reach.online
    assert reach.reason == "NVIDIA's model server (NGC) could not be reached" and dead in reach.detail


def test_prefetch_reports_progress_and_failures(fake_hub):
    fake_hub.add_file("someone/models", "a.pkl", b"\x80" + b"x" * 300_000)
    ok = ModelCard(id="a", title="Model A", repo_id="someone/models", filename="a.pkl")
    missing = ModelCard(id="b", title="Model B", repo_id="someone/models", filename="b.pkl")
    job = Prefetch([ok, missing])
    assert "Model A: waiting" in job.status()
    job.start().join(60)
    status = job.status()
    assert job.done and "Model A: ready" in status and hub.download_state(ok) == "downloaded"
    assert "Model B: not available" in status and "fetched on first use" in status
    assert "Preparing the default models" in status  # not all ready


def test_default_cards_are_each_tabs_real_default_once():
    cards = default_cards(Zoo())
    ids = [c.id for c in cards]
    assert len(ids) == len(set(ids)) == len({real for real, _, _ in TAB_DEFAULTS.values()})
    with pytest.raises(KeyError):
        TAB_DEFAULTS["no-such-tab"]


def test_space_front_matter_preloads_the_default_hub_files_at_their_pins():
    """README's `preload_from_hub` holds every Hub-backed default model (and the files the default
    Inversion and StyleCLIP runs need) at the same revision as its card, so a Space starts with them."""
    import yaml

    from app_server import REPO_ROOT
    from stylecore.perception.clip import CLIP_MODELS, DEFAULT_CLIP
    from stylecore.inversion.encoder_cards import encoder_zoo
    from stylecore.perception.metrics import VGG16_CARD

    front = yaml.safe_load((REPO_ROOT / "README.md").read_text().split("---")[1])
    preload = {}
    for entry in front["preload_from_hub"]:
        repo, files, *revision = entry.split()
        for name in files.split(","):
            preload[(repo, name)] = revision[0] if revision else None
    clip = CLIP_MODELS[DEFAULT_CLIP]
    wanted = [(c.repo_id, c.filename, c.revision) for c in default_cards(Zoo()) if c.repo_id]
    wanted += [(VGG16_CARD.repo_id, VGG16_CARD.filename, VGG16_CARD.revision),
               (clip.repo_id, clip.filename, clip.revision)]
    e4e = encoder_zoo().get("e4e-ffhq")
    wanted.append((e4e.repo_id, e4e.filename, e4e.revision))
    for repo, name, revision in wanted:
        assert preload.get((repo, name), "missing") == revision, (repo, name)
    assert {repo for repo, _ in preload} <= set(front["models"])
    assert front["suggested_hardware"] == "cpu-basic"
