"""Face-identity (ArcFace IR-SE50) network for StyleCLIP's optional ID loss: released key names,
strict loading, the loss itself, clear errors for wrong files, and latent optimisation with λ_ID > 0.
Random weights and small widths (the key names do not depend on the widths)."""
from __future__ import annotations

import pytest
import torch

from stylecore.perception.identity import (
    IdentityNet,
    IdentityWeightsError,
    identity_embedding,
    identity_loss,
    load_identity,
)

# The random tiny CLIP of tests/test_styleclip.py.
TINY = dict(embed_dim=32, quick_gelu=True,
            vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=16, head_width=16),
            text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=1))
SMALL = (16, 32, 48, 64)  # SE needs >= 16 channels (reduction 16); stage 1 keeps its width, as released


def _random_net(widths=SMALL, embed_dim=64, seed=0) -> IdentityNet:
    """A small IdentityNet with random weights and non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    net = IdentityNet(widths, embed_dim)
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("id") / "model_ir_se50.pth"
    torch.save(_random_net().state_dict(), path)
    return path


def test_key_names_are_the_released_ones():
    keys = set(IdentityNet(SMALL, 64).state_dict())
    for key in ("input_layer.0.weight", "input_layer.1.running_var", "input_layer.2.weight",
                "body.1.res_layer.0.weight",
                "body.3.shortcut_layer.0.weight", "body.3.shortcut_layer.1.running_mean",
                "body.23.res_layer.5.fc1.weight", "body.23.res_layer.5.fc2.weight",
                "output_layer.0.running_mean", "output_layer.3.weight", "output_layer.3.bias",
                "output_layer.4.running_var", "output_layer.4.num_batches_tracked"):
        assert key in keys, key
    assert not any(k.startswith("body.24.") for k in keys)
    full = IdentityNet().state_dict()  # the released sizes: Linear(512*7*7 -> 512)
    assert tuple(full["output_layer.3.weight"].shape) == (512, 512 * 7 * 7)
    assert tuple(full["input_layer.0.weight"].shape) == (64, 3, 3, 3)


def test_loads_strictly_and_the_loss_measures_identity(weights):
    net = load_identity(weights)
    reference = _random_net()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), reference.state_dict().values()))

    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1  # not 256: pooled up as pSp does
    y = torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1
    e = identity_embedding(net, x)
    assert e.shape == (2, 64) and torch.allclose(e.norm(dim=1), torch.ones(2), atol=1e-5)
    assert float(identity_loss(net, x, x)) == pytest.approx(0.0, abs=1e-5)
    slight = float(identity_loss(net, x, (x + 0.05 * y).clamp(-1, 1)))
    far = float(identity_loss(net, x, y))
    assert 0 < slight < far

    z = x.clone().requires_grad_(True)
    identity_loss(net, z, y).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0

    big = torch.rand(1, 3, 256, 256, generator=gen) * 2 - 1  # at 256 only the crop and the pool to 112
    crop = torch.nn.functional.adaptive_avg_pool2d(big[:, :, 35:223, 32:220], (112, 112))
    assert torch.allclose(identity_embedding(net, big), net(crop), atol=1e-6)


def test_wrong_files_give_clear_errors(tmp_path, weights):
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(ValueError, match=r"wrong\.pth.*model_ir_se50\.pth.*missing"):
        load_identity(wrong)

    state = torch.load(weights, weights_only=True)
    state["output_layer.9.weight"] = torch.zeros(1)
    extra = tmp_path / "extra.pth"
    torch.save(state, extra)
    with pytest.raises(IdentityWeightsError, match=r"extra\.pth.*does not match"):
        load_identity(extra)

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"garbage\.pth.*cannot read"):
        load_identity(garbage)
    with pytest.raises(ValueError, match="no such file"):
        load_identity(tmp_path / "absent.pth")

    wrapped = tmp_path / "wrapped.pth"  # {'state_dict': ...} with DataParallel's 'module.' prefix
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items() if "output_layer.9" not in k}}, wrapped)
    assert isinstance(load_identity(wrapped), IdentityNet)


def test_latent_optimization_with_the_identity_loss(weights):
    pytest.importorskip("open_clip")
    from stylecore.perception.clip import build_clip
    from stylecore.engine.demo import build_demo_generator
    from stylecore.edit import styleclip as sc
    from stylecore.codes.generate import GenerationSettings, settings_ws

    clip = build_clip("ViT-B-32-quickgelu", seed=0, **TINY)
    G = build_demo_generator("stylegan2").eval().requires_grad_(False)
    ws = settings_ws(G, [3], GenerationSettings(truncation_psi=0.7), torch.device("cpu"))
    net = load_identity(weights)
    calls = []

    def embed(imgs: torch.Tensor) -> torch.Tensor:
        calls.append(imgs.requires_grad)
        return identity_embedding(net, imgs)

    prompt = "a smiling face with curly hair"
    config = sc.OptimizeConfig(steps=4, lr=0.1, l2_lambda=0.0, id_lambda=0.5)
    result = sc.optimize_latent(G, clip, ws, prompt, config, identity=embed)
    assert result.ws.shape == ws.shape and torch.isfinite(result.ws).all() and not torch.equal(result.ws, ws)
    assert len(calls) == 5 and calls[0] is False and all(calls[1:])  # the target once, then every step
    assert len(result.losses) == 4
    # The first step starts at w0: the ID term is 0 there, so loss == CLIP loss exactly.
    assert result.losses[0] == pytest.approx(result.clip_losses[0], abs=1e-5)

    plain = sc.optimize_latent(G, clip, ws, prompt, sc.OptimizeConfig(steps=4, lr=0.1, l2_lambda=0.0, id_lambda=0.0),
                               identity=embed)
    assert len(calls) == 5 and plain.ws.shape == ws.shape  # λ_ID 0: the embedder is not called


def test_builtin_card_supplies_the_weights_without_an_upload(weights, fake_hub, monkeypatch):
    """No upload and no $STYLECORE_ID_WEIGHTS: the ArcFace card is fetched through the Hub (here the fake
    one) and loads; without the file on the Hub the error names the repo and every other way to supply it."""
    from stylecore.perception.identity import ARCFACE_CARD, ENV_ID_WEIGHTS, identity_weights_path

    monkeypatch.delenv(ENV_ID_WEIGHTS, raising=False)
    with pytest.raises(ValueError, match="face-recognition weights") as err:
        identity_weights_path(None)
    assert ARCFACE_CARD.repo_id in str(err.value) and ENV_ID_WEIGHTS in str(err.value)
    fake_hub.add_file(ARCFACE_CARD.repo_id, ARCFACE_CARD.filename, weights.read_bytes())
    path = identity_weights_path("")
    assert path.read_bytes() == weights.read_bytes()
    net = load_identity(path, "cpu")
    assert isinstance(net, IdentityNet)
    monkeypatch.setenv(ENV_ID_WEIGHTS, str(weights))
    assert identity_weights_path(None) == weights
