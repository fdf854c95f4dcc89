"""Legacy TF pickles and rosinality / pSp `.pt` files load into the official StyleGAN2 network exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import parity_case, relative_error
from name_seeded import name_seeded
from writers.hostile import SystemGadget
from writers.rosinality import write_rosinality_pt
from writers.tf_pickle import write_tf_pickle

from stylecore.formats.errors import CheckpointError, UnsafeCheckpointError
from stylecore.formats.rosinality import parse_torch_checkpoint
from stylecore.formats.safe_pickle import safe_load_pickle
from stylecore.formats.tf_pickle import parse_tf_pickle
from stylecore.formats.loader import load_generator
from stylecore.networks import build_generator

PARITY_TOL = 1e-4
ROUND_TRIP_TOL = 1e-6


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """A cache per test, so a converted copy never leaks between cases."""
    monkeypatch.setenv("STYLECORE_CACHE", str(tmp_path / "own-cache"))


# ------------------------------------------------------------------------------------------------
# Helpers


def _tiny_kwargs(**overrides) -> dict:
    kwargs = dict(z_dim=32, c_dim=0, w_dim=32, img_resolution=32, img_channels=3, channel_base=1024,
                  channel_max=32, num_fp16_res=0, conv_clamp=None, architecture="skip",
                  mapping_kwargs=dict(num_layers=2))
    kwargs.update(overrides)
    return kwargs


def _random_generator(kwargs: dict, seed: int = 0) -> torch.nn.Module:
    """A tiny official network whose every tensor (biases, noise, w_avg included) is non-trivial."""
    G = build_generator("stylegan2", kwargs)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in G.state_dict().items():
            if name.endswith("resample_filter"):
                continue
            r = torch.randn(t.shape, generator=gen)
            if name.endswith("affine.bias"):
                t.copy_(1 + 0.3 * r)
            elif name.endswith(("noise_strength", "bias")):
                t.copy_(0.3 * r)
            else:
                t.copy_(r)
    return G.eval().requires_grad_(False)


def _ws(G: torch.nn.Module, seed: int = 1) -> torch.Tensor:
    return torch.randn([2, G.num_ws, G.w_dim], generator=torch.Generator().manual_seed(seed))


def _z_c(G: torch.nn.Module, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor | None]:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn([2, G.z_dim], generator=gen)
    c = torch.eye(G.c_dim)[:2] if G.c_dim else None
    return z, c


def _assert_same_network(loaded: torch.nn.Module, G: torch.nn.Module, tol: float = ROUND_TRIP_TOL) -> None:
    ws = _ws(G)
    a = loaded.synthesis(ws, noise_mode="const", force_fp32=True)
    b = G.synthesis(ws, noise_mode="const", force_fp32=True)
    assert (a - b).abs().max().item() < tol * max(1.0, b.abs().max().item())
    z, c = _z_c(G)
    assert torch.allclose(loaded.mapping(z, c), G.mapping(z, c), atol=1e-6, rtol=1e-6)
    assert torch.allclose(loaded.mapping(z, c, truncation_psi=0.5), G.mapping(z, c, truncation_psi=0.5), atol=1e-6)


# ------------------------------------------------------------------------------------------------
# rosinality parity fixture


def test_rosinality_64_parity(tmp_path):
    meta, _, arrays = parity_case("rosinality_64")
    g_ema = name_seeded(meta["state_dict"])
    assert list(g_ema) == [rec["key"] for rec in meta["state_dict"]]
    # The fixture has no latent_avg; its truncation centre is `truncation_latent`. Storing it as
    # latent_avg (convert_weight layout) makes official truncation reproduce `img_z_trunc0.7`.
    path = tmp_path / "rosinality_64.pt"
    torch.save({"g_ema": g_ema, "latent_avg": torch.from_numpy(arrays["truncation_latent"][0])}, path)

    G = load_generator(path)
    kwargs = parse_torch_checkpoint(path).init_kwargs
    assert (kwargs["img_resolution"], kwargs["z_dim"], kwargs["w_dim"]) == (64, 64, 64)
    assert kwargs["mapping_kwargs"]["num_layers"] == 2 and G.num_ws == meta["n_latent"] == 10

    z, z2 = torch.from_numpy(arrays["z"]), torch.from_numpy(arrays["z2"])
    w = G.mapping(z, None)
    mix = torch.cat([w[:, :3], G.mapping(z2, None)[:, 3:]], dim=1)
    results = {
        "img_wplus": G.synthesis(torch.from_numpy(arrays["wplus"]), noise_mode="const", force_fp32=True),
        "w_from_z": w[:, 0],
        "img_z": G.synthesis(w, noise_mode="const", force_fp32=True),
        "img_z_trunc0.7": G.synthesis(G.mapping(z, None, truncation_psi=0.7), noise_mode="const", force_fp32=True),
        "latent_mix_inject3": mix,
        "img_mix_inject3": G.synthesis(mix, noise_mode="const", force_fp32=True),
    }
    assert set(results) == set(meta["outputs"])
    errors = {name: relative_error(out, arrays[name]) for name, out in results.items()}
    print("\nrosinality_64 parity (max|a-b|/std(b)):", ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
    assert all(e < PARITY_TOL for e in errors.values()), errors


# ------------------------------------------------------------------------------------------------
# Legacy TensorFlow pickles


@pytest.mark.parametrize("overrides", [
    {},
    {"architecture": "resnet"},
    {"c_dim": 4, "mapping_kwargs": {"num_layers": 2, "embed_features": 16, "layer_features": 24}},
], ids=["skip", "resnet", "conditional"])
def test_tf_pickle_round_trip(tmp_path, overrides):
    kwargs = _tiny_kwargs(**overrides)
    G = _random_generator(kwargs)
    path = tmp_path / "network-snapshot.pkl"
    write_tf_pickle(path, G, kwargs)
    assert "dnnlib" not in __import__("sys").modules

    parsed = parse_tf_pickle(safe_load_pickle(path), str(path))
    assert parsed.architecture == "stylegan2" and parsed.init_kwargs["architecture"] == kwargs["architecture"]
    assert set(parsed.state_dict) == set(G.state_dict())
    loaded = load_generator(path)
    assert "TensorFlow" in loaded.checkpoint_info["source"]
    assert torch.equal(loaded.mapping.w_avg, G.mapping.w_avg)
    _assert_same_network(loaded, G)


def test_tf_pickle_unknown_kwarg_is_refused(tmp_path):
    kwargs = _tiny_kwargs()
    path = tmp_path / "odd.pkl"
    write_tf_pickle(path, _random_generator(kwargs), kwargs, extra_kwargs={"fmap_decay": 0.5})
    with pytest.raises(CheckpointError, match="fmap_decay") as err:
        load_generator(path)
    assert str(path) in str(err.value)


# ------------------------------------------------------------------------------------------------
# rosinality / pSp torch checkpoints


@pytest.mark.parametrize("kind", ["convert_weight", "training", "psp"])
def test_rosinality_round_trip(tmp_path, kind):
    kwargs = _tiny_kwargs(channel_base=512, channel_max=32)  # widths 32, 32, 32, 16: not all equal
    G = _random_generator(kwargs, seed=3)
    path = tmp_path / f"{kind}.pt"
    write_rosinality_pt(path, G, kind)
    loaded = load_generator(path)
    assert set(loaded.state_dict()) == set(G.state_dict())
    if kind == "training":  # train.py stores no latent_avg: it is estimated, truncation differs
        assert "estimated" in loaded.checkpoint_info["source"]
        ws = _ws(G)
        assert torch.allclose(loaded.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const"),
                              atol=1e-6, rtol=1e-6)
        z, _ = _z_c(G)
        assert torch.allclose(loaded.mapping(z, None), G.mapping(z, None), atol=1e-6, rtol=1e-6)
    else:
        assert torch.equal(loaded.mapping.w_avg, G.mapping.w_avg)
        _assert_same_network(loaded, G)


def test_rosinality_without_latent_avg_estimates_w_avg(tmp_path):
    G = _random_generator(_tiny_kwargs(), seed=4)
    path = tmp_path / "no-avg.pt"
    write_rosinality_pt(path, G, "convert_weight", latent_avg=False)
    loaded = load_generator(path)
    assert "estimated" in loaded.checkpoint_info["source"]
    z = torch.from_numpy(np.random.RandomState(123).randn(10000, G.z_dim).astype(np.float32))
    expected = G.mapping(z, None)[:, 0].mean(dim=0)
    assert torch.allclose(loaded.mapping.w_avg, expected, atol=1e-5)


def test_rosinality_unknown_layout(tmp_path):
    path = tmp_path / "classifier.pt"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, path)
    with pytest.raises(CheckpointError, match="unknown torch checkpoint layout"):
        parse_torch_checkpoint(path)
    G = _random_generator(_tiny_kwargs(), seed=5)
    from writers.rosinality import rosinality_state_from_official

    g = rosinality_state_from_official(G)
    g["extra.thing"] = torch.zeros(1)
    torch.save({"g_ema": g}, path)
    with pytest.raises(CheckpointError, match="extra.thing"):
        parse_torch_checkpoint(path)


def test_unsafe_global_in_pt_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": {"style.1.weight": SystemGadget(marker)}, "latent_avg": torch.zeros(4)}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_generator(path)
    assert str(path) in str(err.value) and "system" in err.value.global_name
    assert not marker.exists()
