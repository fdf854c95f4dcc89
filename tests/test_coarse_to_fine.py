"""Coarse-to-fine optimisation (issue 18, items 2 and 3): the partial synthesis of a StyleGAN2 is the full
network's intermediate skip image and passes gradients; a coarse-to-fine W+ run on the demo network
lowers the loss about as much as a full one at equal steps and ends at full resolution; the schedule
named in the tab, the API and the CLI reaches the optimisers (StyleCLIP's too); the tab estimates a
run's time before it starts. Speed is measured by `python -m stylecore bench invert`, never here."""
from __future__ import annotations

import json

import pytest
import torch

from stylecore.codes.generate import GenerationSettings, settings_ws
from stylecore.codes.schedule import COARSE_TO_FINE, FULL, Schedule, Stages, default_schedule, schedule_named
from stylecore.engine.demo import DEMO_KWARGS, build_demo_generator
from stylecore.inversion.compare import seed_target
from stylecore.inversion.methods import CPU_HYBRID_STEPS, METHODS, opening
from stylecore.inversion.optimize import (ProjectorConfig, WPlusConfig, project_w, project_wplus, target_tensor,
                                          w_stats)
from stylecore.networks import build_generator

pytest.importorskip("lpips")

C2F = Schedule(COARSE_TO_FINE)


@pytest.fixture(autouse=True)
def random_lpips(monkeypatch):
    monkeypatch.setenv("STYLECORE_LPIPS_BACKBONE", "random")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def truth(G):
    image, ws = seed_target(G, 3)
    return target_tensor(image, G), ws


def skip_images(G: torch.nn.Module, ws: torch.Tensor) -> dict[int, torch.Tensor]:
    """The running skip image after every block of one full forward pass."""
    images: dict[int, torch.Tensor] = {}
    hooks = [getattr(G.synthesis, f"b{res}").register_forward_hook(
        lambda module, args, out, res=res: images.__setitem__(res, out[1]))
        for res in G.synthesis.block_resolutions]
    try:
        G.synthesis(ws, noise_mode="const")
    finally:
        for hook in hooks:
            hook.remove()
    return images


def test_partial_synthesis_is_the_intermediate_skip_image(G):
    ws = settings_ws(G, [0, 1], GenerationSettings(truncation_psi=0.7), torch.device("cpu"))
    images = skip_images(G, ws)
    assert G.synthesis.partial_resolutions == G.synthesis.block_resolutions
    for res in G.synthesis.partial_resolutions:
        partial = G.synthesis(ws, noise_mode="const", stop_at=res)
        assert partial.shape == (2, 3, res, res)
        assert torch.equal(partial, images[res])
    assert torch.equal(G.synthesis(ws, noise_mode="const", stop_at=G.img_resolution),
                       G.synthesis(ws, noise_mode="const"))
    with pytest.raises(ValueError, match="stop_at must be one of"):
        G.synthesis(ws, stop_at=48)


def test_only_the_skip_architecture_has_partial_images():
    orig = build_generator("stylegan2", {**DEMO_KWARGS["stylegan2"], "architecture": "orig"})
    assert orig.synthesis.partial_resolutions == [orig.img_resolution]
    with pytest.raises(ValueError, match="stop_at"):
        orig.synthesis(torch.zeros(1, orig.num_ws, orig.w_dim), stop_at=32)
    sg3 = build_demo_generator("stylegan3")
    assert Stages(sg3, C2F, 10).coarse_steps == 0
    assert "no intermediate image" in Stages(sg3, C2F, 10).note("W+ optimisation")


def test_gradients_flow_through_the_partial_synthesis(G):
    ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)), None)
    ws = ws.detach().requires_grad_(True)
    G.synthesis(ws, noise_mode="const", stop_at=32).square().mean().backward()
    per_layer = ws.grad.norm(dim=-1)[0]
    used = sum(getattr(G.synthesis, f"b{r}").num_conv for r in G.synthesis.block_resolutions if r <= 32) + 1
    assert bool((per_layer[:used] > 0).all())  # every layer up to b32's toRGB
    assert bool((per_layer[used:] == 0).all())  # b64 is never run


def test_stages_split_the_steps():
    G = build_demo_generator("stylegan2")
    stages = Stages(G, C2F, 20)
    assert (stages.size, stages.coarse_steps) == (32, 18)  # at most half the demo's 64 px
    assert [stages.resolution(i) for i in (0, 17, 18, 19)] == [32, 32, 64, 64]
    assert stages.lr_scale(0) == C2F.coarse_lr_scale and stages.lr_scale(19) == 1.0
    assert Stages(G, C2F, 1).coarse_steps == 0  # one step: at full resolution
    assert Stages(G, Schedule(FULL), 20).coarse_steps == 0
    assert (default_schedule("cpu"), default_schedule("cuda:0")) == (COARSE_TO_FINE, FULL)
    assert schedule_named("auto", torch.device("cpu")).name == COARSE_TO_FINE
    assert schedule_named("full", torch.device("cpu")).name == FULL
    with pytest.raises(ValueError, match="schedule must be one of"):
        schedule_named("fast", torch.device("cpu"))


def test_coarse_to_fine_lowers_the_loss_about_as_much_and_ends_at_full_resolution(G, net, truth):
    from stylecore.inversion.compare import result_tensor
    from stylecore.perception.metrics import image_metrics

    target, _ = truth
    stats = w_stats(G)
    start = image_metrics(net, G.synthesis(stats[0].repeat(1, G.num_ws, 1), noise_mode="const", force_fp32=True),
                          target)
    steps = 30
    runs = {name: project_wplus(G, target, net, WPlusConfig(steps=steps), stats=stats, schedule=Schedule(name))
            for name in (FULL, COARSE_TO_FINE)}
    full, c2f = runs[FULL], runs[COARSE_TO_FINE]
    assert full.resolutions == [64] * steps
    assert c2f.resolutions == [32] * 27 + [64] * 3  # the last steps at full resolution
    assert "27 of 30 steps at 32 px" in c2f.note and not full.note
    final = {name: image_metrics(net, result_tensor(r), target) for name, r in runs.items()}
    for metric in ("lpips", "mse"):
        gain_full = start[metric] - final[FULL][metric]
        gain_c2f = start[metric] - final[COARSE_TO_FINE][metric]
        assert gain_full > 0 and gain_c2f > 0.5 * gain_full, (metric, start, final)


def test_the_projector_and_the_hybrid_take_the_schedule(G, net, truth):
    from stylecore.inversion.optimize import codes_result, hybrid

    target, true_ws = truth
    w = project_w(G, target, net, ProjectorConfig(steps=5), stats=w_stats(G), schedule=C2F)
    assert w.resolutions == [32] * 4 + [64] and w.losses[-1] < w.losses[0]
    start = codes_result(G, true_ws + 0.3 * torch.randn(true_ws.shape, generator=torch.Generator().manual_seed(1)),
                         "stand-in")
    refined = hybrid(G, target, net, start, WPlusConfig(steps=10), schedule=C2F)
    assert refined.resolutions == [32] * 9 + [64]


def test_styleclip_optimisation_takes_the_schedule(G):
    from stylecore.edit import styleclip as sc
    from stylecore.perception.clip import build_clip

    clip = build_clip("ViT-B-32-quickgelu", seed=0, embed_dim=32, quick_gelu=True,
                      vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=16, head_width=16),
                      text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=1))
    ws = settings_ws(G, [3], GenerationSettings(truncation_psi=0.7), torch.device("cpu"))
    config = sc.OptimizeConfig(steps=10, lr=0.1, l2_lambda=0.0)
    result = sc.optimize_latent(G, clip, ws, "a smiling face", config, schedule=C2F)
    assert result.resolutions == [32] * 9 + [64] and not torch.equal(result.ws, ws)
    edited = sc.edit_by_text(G, ws, sc.OptimizationRequest("a smiling face", config, schedule=COARSE_TO_FINE),
                             clip=clip)
    assert "coarse-to-fine, 9 of 10 steps at 32 px" in edited.summary
    plain = sc.edit_by_text(G, ws, sc.OptimizationRequest("a smiling face", config, schedule=FULL), clip=clip)
    assert "coarse-to-fine" not in plain.summary


# --- the tab, the API and the CLI -------------------------------------------------------------------------


@pytest.fixture
def manager():
    from stylecore.engine.manager import ModelManager
    from stylecore.engine.zoo import Zoo

    return ModelManager(Zoo(), device="cpu")


def test_the_tab_and_api_switch_reaches_the_engine(manager):
    pytest.importorskip("gradio")
    from spaces.inversion import InversionTab

    tab = InversionTab(manager)
    for schedule, expected in (("coarse-to-fine", "coarse-to-fine, 3 of 4 steps at 32 px"),
                               ("auto", "coarse-to-fine, 3 of 4 steps at 32 px")):  # auto on a CPU
        status = tab.invert(model_id="demo", source="seed", methods=["wplus"], wplus_steps=4, schedule=schedule)[-1]
        assert expected in status
    status = tab.invert(model_id="demo", source="seed", methods=["wplus"], wplus_steps=4, schedule="full")[-1]
    assert "coarse-to-fine" not in status
    with pytest.raises(ValueError, match="schedule must be one of"):
        tab.invert(model_id="demo", source="seed", methods=["wplus"], wplus_steps=4, schedule="fastest")


def test_the_styleclip_tab_passes_the_schedule():
    pytest.importorskip("gradio")
    from spaces.styleclip import _request

    request = _request("Latent optimization", "a smile", "a face", 4, 0.15, False, "", 16, 5, 0.1, 0.008, None, "",
                       1.0, "", None, 0.0, "full")
    assert request.schedule == "full"


def test_the_cli_takes_the_schedule(tmp_path, capsys):
    from stylecore.__main__ import build_parser, main

    assert build_parser().parse_args(["invert", "--outdir", "o"]).schedule == "auto"
    assert main(["invert", "--model", "demo", "--seed", "2", "--methods", "wplus", "--wplus-steps", "4",
                 "--schedule", "coarse-to-fine", "--device", "cpu", "--outdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "coarse-to-fine, 3 of 4 steps at 32 px" in out
    assert "LPIPS: random VGG16 backbone, values not comparable with published ones" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["random_lpips"] is True and "not comparable" in metrics["lpips_backbone"]
    args = build_parser().parse_args(["bench", "invert", "--res", "1024", "--device", "cpu", "--steps", "8"])
    assert (args.res, args.steps, args.c2f_steps) == ([1024], 8, 0)


def test_the_estimate_appears_before_a_run(manager):
    gr = pytest.importorskip("gradio")
    from spaces.inversion import InversionTab

    tab = InversionTab(manager)
    text = tab.estimate(model_id="demo", methods=["w", "wplus"], w_steps=100, wplus_steps=100, schedule="auto")
    assert text.startswith("**Estimate: about ") and "s/step at 32 px" in text and "s/step at 64 px" in text
    kept = manager.resource_keys()
    assert ("inversion_step_seconds", "demo", "cpu", 64) in kept and ("inversion_step_seconds", "demo", "cpu", 32) in kept
    assert manager.load_count[("inversion_step_seconds", "demo", "cpu", 64)] == 1
    tab.estimate(model_id="demo", methods=["wplus"], wplus_steps=10, schedule="full")  # measured once, then kept
    assert manager.load_count[("inversion_step_seconds", "demo", "cpu", 64)] == 1
    sg3 = tab.estimate(model_id="demo-sg3", methods=["wplus"], wplus_steps=10, schedule="coarse-to-fine")
    assert "no coarse-to-fine for this network" in sg3  # StyleGAN3: what a step costs, said up front
    assert tab.estimate(model_id="demo", methods=["wplus"], wplus_steps=0).startswith("No estimate yet: W+ steps")
    passes = tab.estimate(model_id="demo", methods=["hyperstyle"], encoder_iterations=3)
    assert "HyperStyle: " in passes and "(3 pass(es))" in passes and "That is long" not in passes
    long = tab.estimate(model_id="demo", methods=["pti"], pti_steps=10000, schedule="full")
    assert "PTI: " in long and "(2 x 10000 steps" in long and "That is long for a CPU" in long

    with gr.Blocks() as demo:
        tab.layout()
    estimates = [d for d in demo.config["dependencies"] if d.get("api_name") == "invert_estimate"]
    assert len(estimates) == 1 and any(t[1] == "select" for t in estimates[0]["targets"])
    radios = {b.label: b for b in demo.blocks.values() if isinstance(b, gr.Radio)}
    assert radios["Optimisation schedule"].value == COARSE_TO_FINE  # the CPU default


def test_cpu_opens_on_the_encoder_and_a_short_hybrid(manager, monkeypatch):
    gr = pytest.importorskip("gradio")
    import spaces.inversion as inversion

    assert opening("cpu", True) == (["encoder", "hybrid"], {"w": METHODS["w"].steps.default,
                                                            "wplus": METHODS["wplus"].steps.default,
                                                            "hybrid": CPU_HYBRID_STEPS,
                                                            "pti": METHODS["pti"].steps.default})
    assert opening("cuda", True)[0] == opening("cpu", False)[0] == ["w", "wplus"]
    tab = inversion.InversionTab(manager)
    monkeypatch.setattr(inversion, "ENCODER_GENERATORS", {"e4e-ffhq": tab.default})
    with gr.Blocks() as demo:
        tab.layout()
    blocks = list(demo.blocks.values())
    ticked = next(b for b in blocks if isinstance(b, gr.CheckboxGroup) and b.label == "Methods").value
    numbers = {b.label: b.value for b in blocks if isinstance(b, gr.Number)}
    encoder = next(b for b in blocks if isinstance(b, gr.Dropdown) and b.label == "Encoder").value
    assert ticked == ["encoder", "hybrid"] and numbers["Hybrid steps"] == CPU_HYBRID_STEPS and encoder == "e4e-ffhq"
