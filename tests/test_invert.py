"""Inversion methods on a tiny generator (the 64x64 built-in demo network), with LPIPS on a random
VGG16 backbone: targets are generated from known codes, so every method must get closer to them.

Stated reductions, CPU, one thread (starting point: the image of w_avg, where both optimisers start):
* W optimisation (official schedule), 60 steps: LPIPS / 2.5, MSE / 1.5;
* W+ optimisation (Image2StyleGAN), 60 steps: LPIPS / 4, MSE / 4;
* hybrid, 50 steps from a stand-in encoder (the true code plus noise): LPIPS / 1.4, MSE / 1.4 below its start.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stylecore.engine.demo import build_demo_generator
from stylecore.inversion.optimize import (ProjectorConfig, WPlusConfig, codes_result, hybrid, noise_regularization,
                              project_w, project_wplus, projector_lr, projector_w_noise_scale, render, w_stats)
from stylecore.inversion.compare import result_tensor, run_methods, save_result
from stylecore.inversion.methods import MethodSpec
from stylecore.codes.latents import load_latents, z_from_seeds
from stylecore.perception.metrics import VGG16_CARD, build_lpips, image_metrics, lpips_distance, mse, psnr

pytest.importorskip("lpips")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def truth(G):
    """A target generated from a known code (seed 5, no truncation), and that code."""
    with torch.no_grad():
        ws = G.mapping(z_from_seeds([5], G.z_dim), None)
        return render(G, ws).clamp(-1, 1), ws


@pytest.fixture(scope="module")
def start_metrics(G, net, truth):
    """Where both optimisers start: the image of w_avg."""
    w_avg, _ = w_stats(G)
    with torch.no_grad():
        return image_metrics(net, render(G, w_avg.repeat(1, G.num_ws, 1)).clamp(-1, 1), truth[0])


def measured(result, net, target) -> dict:
    return image_metrics(net, result_tensor(result), target)


# ---------------------------------------------------------------------------------------------
# the projector's schedule


def test_projector_schedule():
    cfg = ProjectorConfig()
    assert projector_lr(0.0) == 0.0
    assert projector_lr(0.025) == pytest.approx(0.05)  # half-way up the 5 % ramp
    assert projector_lr(0.5) == pytest.approx(0.1)
    assert projector_lr(0.875) == pytest.approx(0.1 * (0.5 - 0.5 * math.cos(math.pi * 0.5)))
    assert projector_w_noise_scale(0.0, 2.0) == pytest.approx(2.0 * 0.05)
    assert projector_w_noise_scale(0.375, 2.0) == pytest.approx(2.0 * 0.05 * 0.25)
    assert projector_w_noise_scale(0.8, 2.0) == 0.0
    assert (cfg.steps, cfg.w_avg_samples, cfg.regularize_noise_weight) == (1000, 10000, 1e5)


def test_noise_regularization_penalises_structure():
    gen = torch.Generator().manual_seed(0)
    white = [torch.randn(32, 32, generator=gen), torch.randn(8, 8, generator=gen)]
    smooth = [torch.ones(32, 32), torch.ones(8, 8)]
    assert noise_regularization(white) < 0.1 < noise_regularization(smooth)
    # 32 -> 16 -> 8: three levels for the first map, one for the second, two terms each = 8 x 1
    assert noise_regularization(smooth) == pytest.approx(8.0)


def test_w_stats_like_the_projector(G):
    w_avg, w_std = w_stats(G, 1000)
    z = torch.from_numpy(np.random.RandomState(123).randn(1000, G.z_dim)).float()
    w = G.mapping(z, None)[:, :1]
    torch.testing.assert_close(w_avg, w.mean(0, keepdim=True))
    assert w_std == pytest.approx(float(((w - w.mean(0)).square().sum() / 1000).sqrt()), rel=1e-5)
    assert w_stats(G, 1000)[1] == w_std  # cached


# ---------------------------------------------------------------------------------------------
# methods


def test_project_w_reduces_lpips_and_mse(G, net, truth, start_metrics):
    target, _ = truth
    before = {k: v.clone() for k, v in G.state_dict().items()}
    fractions: list[float] = []
    result = project_w(G, target, net, ProjectorConfig(steps=60), progress=lambda f, m: fractions.append(f))
    got = measured(result, net, target)
    assert got["lpips"] < start_metrics["lpips"] / 2.5, (start_metrics, got)
    assert got["mse"] < start_metrics["mse"] / 1.5, (start_metrics, got)
    assert result.space == "W" and result.ws.shape == (1, G.num_ws, G.w_dim)
    assert torch.equal(result.ws[:, 0], result.ws[:, -1])  # one w for every layer
    assert len(result.losses) == 60 and result.losses[-1] < result.losses[0] and result.seconds > 0
    assert set(result.noise) == {n for n, _ in G.synthesis.named_buffers() if "noise_const" in n}
    for n in result.noise.values():  # renormalised every step
        assert abs(float(n.mean())) < 1e-4 and float(n.std(unbiased=False)) == pytest.approx(1.0, abs=1e-3)
    assert fractions and fractions[-1] == 1.0 and fractions == sorted(fractions)
    for name, tensor in G.state_dict().items():  # the shared model is untouched
        assert torch.equal(tensor, before[name]), name
    assert all(p.grad is None for p in G.parameters())


def test_project_wplus_reduces_lpips_and_mse(G, net, truth, start_metrics):
    target, _ = truth
    result = project_wplus(G, target, net, WPlusConfig(steps=60))
    got = measured(result, net, target)
    assert got["lpips"] < start_metrics["lpips"] / 4, (start_metrics, got)
    assert got["mse"] < start_metrics["mse"] / 4, (start_metrics, got)
    assert result.space == "W+" and not torch.equal(result.ws[:, 0], result.ws[:, -1])


def test_hybrid_beats_its_encoder_start(G, net, truth):
    target, true_ws = truth
    gen = torch.Generator().manual_seed(1)
    start_ws = true_ws + 0.6 * torch.randn(true_ws.shape, generator=gen)  # a stand-in encoder's guess
    start = codes_result(G, start_ws, "stand-in encoder")
    start_got = measured(start, net, target)
    result = hybrid(G, target, net, start, WPlusConfig(steps=50))
    got = measured(result, net, target)
    assert got["lpips"] < start_got["lpips"] / 1.4, (start_got, got)
    assert got["mse"] < start_got["mse"] / 1.4, (start_got, got)
    assert result.start is start and result.method.startswith("hybrid")


def test_stop_between_steps(G, net, truth):
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= 3

    result = project_wplus(G, truth[0], net, WPlusConfig(steps=50), should_stop=should_stop)
    assert result.cancelled and result.steps == 3 and result.image.shape == (64, 64, 3)


def test_bad_arguments(G, net, truth):
    with pytest.raises(ValueError, match="target must be"):
        project_w(G, torch.zeros(1, 3, 32, 32), net, ProjectorConfig(steps=1))
    with pytest.raises(ValueError, match="steps"):
        project_wplus(G, truth[0], net, WPlusConfig(steps=0))
    with pytest.raises(ValueError, match="encoder made for this model"):
        codes_result(G, torch.zeros(1, 18, 512), "wrong encoder")
    with pytest.raises(ValueError, match="unknown inversion method"):
        MethodSpec("magic").validate()


def test_run_methods_compares_and_saves(G, net, truth, tmp_path):
    target, true_ws = truth
    image = result_tensor(codes_result(G, true_ws, "truth")).add(1).mul(127.5).round().clamp(0, 255)
    image = image[0].permute(1, 2, 0).to(torch.uint8).numpy()
    resolved: list[str] = []

    def resolver(encoder_id, progress):
        resolved.append(encoder_id)

        def run(x, iterations, prog):  # a ReStyle-like stand-in: each pass closer to the truth
            assert x.shape == (1, 3, 64, 64) and -1 <= float(x.min()) and float(x.max()) <= 1
            return [true_ws + 0.5 / (i + 1) for i in range(iterations)]

        return run

    specs = [MethodSpec("encoder", encoder="stand-in", iterations=3), MethodSpec("wplus", steps=5),
             MethodSpec("hybrid", steps=5, encoder="stand-in", iterations=3)]
    results = run_methods(G, image, specs, net, resolve_encoder=resolver)
    assert resolved == ["stand-in"]  # one encoder run serves the encoder and the hybrid
    assert [r.space for r in results] == ["W+", "W+", "W+"]
    assert len(results[0].iterations) == 3 and results[0].losses == []
    assert results[2].start is results[0]
    for r in results:
        assert set(r.metrics) == {"lpips", "psnr", "mse"} and r.image.shape == (64, 64, 3)
    path = save_result(tmp_path / "code.npz", results[1])
    torch.testing.assert_close(load_latents(path, num_ws=G.num_ws, w_dim=G.w_dim), results[1].ws)
    with np.load(path) as data:
        assert str(data["space"]) == "W+" and float(data["lpips"]) == pytest.approx(results[1].metrics["lpips"])


def test_saved_w_projection_keeps_its_noise(G, net, truth, tmp_path):
    result = project_w(G, truth[0], net, ProjectorConfig(steps=2))
    path = save_result(tmp_path / "w.npz", result)
    with np.load(path) as data:
        assert {f"noise:{n}" for n in result.noise} <= set(data.files)


# ---------------------------------------------------------------------------------------------
# metrics


def test_psnr_mse_values():
    a = torch.zeros(1, 3, 8, 8)
    b = torch.full((1, 3, 8, 8), 0.2)  # 0.1 apart on the [0, 1] scale
    assert float(mse(a, b)) == pytest.approx(0.01)
    assert float(psnr(a, b)) == pytest.approx(20.0)


def fake_timm_vgg16(path, dtype=torch.float16) -> dict:
    """A timm-layout VGG16 state dict with random convolutions (and a classifier stub) as safetensors."""
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(3)
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    state, index, cin = {}, 0, 3
    for v in cfg:
        if v == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = (torch.randn(v, cin, 3, 3, generator=gen) * 0.05).to(dtype)
        state[f"features.{index}.bias"] = (torch.randn(v, generator=gen) * 0.01).to(dtype)
        index, cin = index + 2, v
    state["head.fc.weight"] = torch.zeros(10, 4096, dtype=dtype)
    save_file(state, str(path))
    return state


def test_vgg16_backbone_mapping(tmp_path):
    state = fake_timm_vgg16(tmp_path / "vgg.safetensors")
    model = build_lpips(pretrained=True, backbone=tmp_path / "vgg.safetensors")
    mine = model.state_dict()
    torch.testing.assert_close(mine["net.slice1.0.weight"], state["features.0.weight"].float())
    torch.testing.assert_close(mine["net.slice5.28.bias"], state["features.28.bias"].float())
    torch.testing.assert_close(mine["net.slice3.14.weight"], state["features.14.weight"].float())
    assert not model.random_backbone
    del state["features.28.bias"]
    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "broken.safetensors"))
    with pytest.raises(ValueError, match="net.slice5.28.bias"):
        build_lpips(pretrained=True, backbone=tmp_path / "broken.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable"):
        build_lpips(pretrained=True, backbone=tmp_path / "junk.safetensors")


def test_vgg16_backbone_from_the_hub(fake_hub, tmp_path):
    """The backbone comes from timm/vgg16.tv_in1k through stylecore.engine.hub (the fake Hub here)."""
    fake_timm_vgg16(tmp_path / "model.safetensors")
    fake_hub.add_file(VGG16_CARD.repo_id, VGG16_CARD.filename, (tmp_path / "model.safetensors").read_bytes(),
                      revision=VGG16_CARD.revision)
    model = build_lpips(pretrained=True)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert float(lpips_distance(model, x, x)) == 0.0
    assert float(lpips_distance(model, x, -x)) > 0.0


def test_real_encoder_api_restyle_and_hybrid(G, net, truth):
    """The default resolver with a tiny ReStyle-e4e checkpoint around the demo network (local .pt):
    the strip has one image per iteration, and the hybrid refines the encoder's codes."""
    import tempfile
    from pathlib import Path

    writers = pytest.importorskip("writers.encoders")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tiny_restyle_e4e.pt"
        writers.write_tiny_encoder_pt(path, "restyle_e4e", G)
        image = result_tensor(codes_result(G, truth[1], "truth")).add(1).mul(127.5).round().clamp(0, 255)
        image = image[0].permute(1, 2, 0).to(torch.uint8).numpy()
        specs = [MethodSpec("encoder", encoder=str(path), iterations=2),
                 MethodSpec("hybrid", steps=3, encoder=str(path), iterations=2)]
        encoder, refined = run_methods(G, image, specs, net)
    assert encoder.method == "encoder tiny_restyle_e4e.pt (2 iterations)" and len(encoder.iterations) == 2
    assert refined.start is encoder and refined.steps == 3
    assert refined.metrics["lpips"] < encoder.metrics["lpips"]


def test_encoder_results_say_whether_the_generator_is_the_encoders_own_decoder(G, net, truth, tmp_path):
    """The comparison renders an encoder's codes with the chosen generator: a generator with the encoder's
    decoder weights is confirmed by hash; any other is named as a mismatch beside the result."""
    writers = pytest.importorskip("writers.encoders")
    path = tmp_path / "tiny_e4e.pt"
    writers.write_tiny_encoder_pt(path, "e4e", G)
    image = result_tensor(codes_result(G, truth[1], "truth")).add(1).mul(127.5).round().clamp(0, 255)
    image = image[0].permute(1, 2, 0).to(torch.uint8).numpy()
    specs = [MethodSpec("encoder", encoder=str(path))]
    (own,) = run_methods(G, image, specs, net)
    assert "same weights as the encoder's own decoder" in own.note
    other = build_demo_generator("stylegan2", seed=1).eval().requires_grad_(False)
    (foreign,) = run_methods(other, image, specs, net)
    assert "NOT the one the encoder was trained with" in foreign.note and "tiny_e4e.pt" in foreign.note
