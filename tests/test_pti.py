"""Pivotal tuning on the demo StyleGAN2: it improves on its pivot, never changes the shared generator,
keeps concurrent requests apart, and edits of the pivot rendered with the tuned weights behave."""
from __future__ import annotations

import hashlib
import threading

import pytest
import torch

from stylecore.codes.latents import z_from_seeds
from stylecore.inversion.optimize import ProjectorConfig, project_w, render, target_tensor
from stylecore.inversion.pti import PtiConfig, render_tuned, tune
from stylecore.perception.metrics import lpips_distance, mse

pytest.importorskip("lpips")


pytestmark = pytest.mark.usefixtures("one_thread")


def seed_target(G, seed: int) -> torch.Tensor:
    with torch.no_grad():
        return render(G, G.mapping(z_from_seeds([seed], G.z_dim), None)).clamp(-1, 1)


@pytest.fixture(scope="module")
def pivot(G, net):
    """A short W projection of seed 5's image: the pivot the tuning starts from."""
    return project_w(G, seed_target(G, 5), net, ProjectorConfig(steps=20, w_avg_samples=500))


def weights_hash(G) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(G.state_dict().items()):
        digest.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def test_tuning_beats_the_pivot_and_leaves_the_generator_alone(G, net, pivot):
    target = seed_target(G, 5)
    before = weights_hash(G)
    result = tune(G, target, net, pivot, PtiConfig(steps=30, learning_rate=3e-3, lpips_threshold=0))
    assert weights_hash(G) == before
    assert result.steps == 30 and result.start is pivot and result.weights
    assert torch.equal(result.ws, pivot.ws)  # the pivot stays fixed
    with torch.no_grad():
        tuned = render_tuned(G, pivot.ws, result.weights).clamp(-1, 1)
        untuned = render(G, pivot.ws).clamp(-1, 1)
    assert float(mse(tuned, target)) < 0.7 * float(mse(untuned, target))
    assert float(lpips_distance(net, tuned, target)) < float(lpips_distance(net, untuned, target))
    assert result.losses[-1] < result.losses[0]


def test_concurrent_requests_do_not_share_weights(G, net, pivot):
    """Two tunings to different targets at once end where each would alone."""
    targets = {5: seed_target(G, 5), 9: seed_target(G, 9)}
    config = PtiConfig(steps=8, learning_rate=3e-3, lpips_threshold=0)
    alone = {seed: tune(G, t, net, pivot, config) for seed, t in targets.items()}
    together: dict = {}
    threads = [threading.Thread(target=lambda s=s, t=t: together.__setitem__(s, tune(G, t, net, pivot, config)))
               for s, t in targets.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for seed in targets:
        for name, weight in alone[seed].weights.items():
            torch.testing.assert_close(together[seed].weights[name], weight, rtol=1e-5, atol=1e-6)
    differs = [name for name in alone[5].weights if not torch.equal(alone[5].weights[name], alone[9].weights[name])]
    assert differs


def test_edits_of_the_pivot_on_the_tuned_weights(G, net, pivot):
    result = tune(G, seed_target(G, 5), net, pivot, PtiConfig(steps=5, learning_rate=3e-3, lpips_threshold=0))
    direction = torch.randn(1, 1, G.w_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        unedited = render_tuned(G, pivot.ws, result.weights)
        zero = render_tuned(G, pivot.ws + 0.0 * direction, result.weights)
        edited = render_tuned(G, pivot.ws + 3.0 * direction, result.weights)
    assert torch.equal(zero, unedited)
    assert float((edited - unedited).abs().mean()) > 1e-3


def test_locality_regulariser_and_early_stop(G, net, pivot):
    target = seed_target(G, 5)
    regularised = tune(G, target, net, pivot, PtiConfig(steps=3, learning_rate=3e-3, locality_weight=0.1,
                                                         lpips_threshold=0))
    assert regularised.steps == 3 and all(l > 0 for l in regularised.losses)
    stopped = tune(G, target, net, pivot, PtiConfig(steps=50, lpips_threshold=10.0))
    assert stopped.steps == 1  # the first full-resolution step already beats the threshold


def test_bad_pivot_is_refused(G, net, pivot):
    bad = type(pivot)(pivot.method, pivot.space, pivot.ws[:, :2], pivot.image)
    with pytest.raises(ValueError, match="pivot must be"):
        tune(G, target_tensor(pivot.image, G), net, bad, PtiConfig(steps=2))


def test_private_view_shares_all_but_the_replaced(G):
    from stylecore.networks.private import with_tensors

    name, original = next(iter(G.synthesis.named_parameters()))
    replacement = torch.nn.Parameter(torch.zeros_like(original))
    view = with_tensors(G.synthesis, {name: replacement})
    shared = dict(view.named_parameters())
    assert shared[name] is replacement and dict(G.synthesis.named_parameters())[name] is original
    assert all(shared[n] is p for n, p in G.synthesis.named_parameters() if n != name)
    with pytest.raises(KeyError, match="no parameter or buffer"):
        with_tensors(G.synthesis, {"nowhere.weight": replacement})
