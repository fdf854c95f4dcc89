"""Tuned generators kept per session (stylecore.engine.tuned): bounded by a share of the memory budget,
oldest dropped first, dropped with their session, drawn through a view that leaves the shared model alone."""
from __future__ import annotations

import torch

from stylecore.engine.manager import ModelManager, module_bytes
from stylecore.engine.tuned import KIND, SHARE, forget_session, keep_tuned, tuned_model, weights_digest
from stylecore.engine.zoo import Zoo


def _tuned(model, scale: float) -> dict[str, torch.Tensor]:
    return {name: p.detach() * scale for name, p in model.G.synthesis.named_parameters() if name.endswith("weight")}


def test_a_view_draws_with_the_tuned_weights_and_the_shared_model_stays():
    manager = ModelManager(Zoo(), device="cpu")
    model = manager.get("demo")
    before = weights_digest(model.G.state_dict())
    digest = keep_tuned(manager, "s1", model, _tuned(model, 1.1))
    view = tuned_model(manager, "s1", model, digest)
    assert view is not None and view.tuned_from is model and view.shared is model and view.card is model.card
    ws = model.G.mapping(torch.randn(1, model.G.z_dim, generator=torch.Generator().manual_seed(0)), None)
    with torch.no_grad():
        mine = view.G.synthesis(ws, noise_mode="const")
        shared = model.G.synthesis(ws, noise_mode="const")
    assert not torch.allclose(mine, shared)
    assert weights_digest(model.G.state_dict()) == before
    assert tuned_model(manager, "s2", model, digest) is None  # another session's weights are not handed out
    assert tuned_model(manager, "s1", model, "0" * 32) is None


def test_tuned_weights_share_of_the_budget_and_sessions_end():
    probe = ModelManager(Zoo(), device="cpu").get("demo")
    one = sum(w.numel() * w.element_size() for w in _tuned(probe, 1.0).values())
    # a budget whose tuned share holds two sets of weights, and that fits the generator itself
    budget = int(2.5 * one / SHARE)
    assert budget > module_bytes(probe.G) + 2.5 * one
    manager = ModelManager(Zoo(), device="cpu", memory_budget=budget)
    model = manager.get("demo")
    digests = [keep_tuned(manager, "s1" if i < 2 else "s2", model, _tuned(model, 1 + i / 10)) for i in range(3)]
    kept = [key for key in manager.resource_keys() if key[0] == KIND]
    assert kept == [(KIND, "s1", "demo", digests[1]), (KIND, "s2", "demo", digests[2])]  # the oldest went first
    assert "demo" in manager.loaded_ids()  # the generator itself was not pushed out
    assert forget_session(manager, "s1") == 1
    assert [key for key in manager.resource_keys() if key[0] == KIND] == [(KIND, "s2", "demo", digests[2])]
