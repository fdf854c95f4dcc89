"""StyleGAN2 generator: parity with the official outputs, every released option, official names."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import parity_case, relative_error, true_float32
from stylecore.networks import build_generator

TOL = 1e-4


@pytest.fixture(scope="module")
def sg2():
    meta, state, arrays = parity_case("sg2_64")
    G = build_generator(meta["architecture"], meta["init_kwargs"]).eval().requires_grad_(False)
    G.load_state_dict(state, strict=True)
    return G, arrays


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a)


def test_parity_mapping_truncation(sg2):
    G, a = sg2
    err = relative_error(G.mapping(_t(a["z"]), _t(a["c"]), truncation_psi=0.7), a["ws_psi0.7"])
    err_cut = relative_error(G.mapping(_t(a["z"]), _t(a["c"]), truncation_psi=0.5, truncation_cutoff=4),
                             a["ws_psi0.5_cut4"])
    print(f"\nsg2_64 ws_psi0.7 rel err {err:.3g}; ws_psi0.5_cut4 rel err {err_cut:.3g}")
    assert err < TOL and err_cut < TOL


@pytest.mark.parametrize("fused", [None, True, False])
def test_parity_synthesis_const_noise(sg2, fused):
    G, a = sg2
    img = G.synthesis(_t(a["ws_psi0.7"]), noise_mode="const", force_fp32=True, fused_modconv=fused)
    err = relative_error(img, a["img_psi0.7_const"])
    print(f"\nsg2_64 img_psi0.7_const (fused_modconv={fused}) rel err {err:.3g}")
    assert err < TOL


def test_parity_full_call_no_noise(sg2):
    G, a = sg2
    img = G(_t(a["z"]), _t(a["c"]), truncation_psi=1, noise_mode="none", force_fp32=True)
    err = relative_error(img, a["img_psi1_none"])
    print(f"\nsg2_64 img_psi1_none rel err {err:.3g}")
    assert err < TOL


def test_noise_modes_differ_as_documented(sg2):
    G, a = sg2
    ws = _t(a["ws_psi0.7"])
    const1 = G.synthesis(ws, noise_mode="const")
    const2 = G.synthesis(ws, noise_mode="const")
    none = G.synthesis(ws, noise_mode="none")
    torch.manual_seed(0)
    rand1 = G.synthesis(ws, noise_mode="random")
    rand2 = G.synthesis(ws, noise_mode="random")
    assert torch.equal(const1, const2)
    assert not torch.allclose(const1, none)
    assert not torch.allclose(rand1, rand2)
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="bogus")


def test_wrong_ws_shape_is_a_clear_error(sg2):
    G, _ = sg2
    with pytest.raises(ValueError, match=r"ws must have shape \[N, 10, 64\]"):
        G.synthesis(torch.zeros(1, 9, 64))


def _tiny(**overrides):
    kwargs = dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                  mapping_kwargs={"num_layers": 2}, channel_base=256, channel_max=16, num_fp16_res=0,
                  conv_clamp=None)
    kwargs.update(overrides)
    torch.manual_seed(1)
    return build_generator("stylegan2", kwargs).eval().requires_grad_(False)


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_architectures_run_and_have_official_keys(architecture):
    G = _tiny(architecture=architecture)
    keys = set(G.state_dict())
    assert ("synthesis.b8.skip.weight" in keys) == (architecture == "resnet")
    assert ("synthesis.b8.torgb.weight" in keys) == (architecture == "skip")
    assert "synthesis.b16.torgb.weight" in keys
    img = G(torch.randn(2, 16), None, noise_mode="const")
    assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()
    assert G.num_ws == 6


def test_conditional_generator_uses_label():
    G = _tiny(c_dim=4)
    assert "mapping.embed.weight" in G.state_dict()
    z = torch.randn(1, 16)
    a = G(z, torch.eye(4)[:1], noise_mode="const")
    b = G(z, torch.eye(4)[1:2], noise_mode="const")
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="conditional"):
        G(z, None)


def test_ada_nested_kwargs_equal_flat_kwargs():
    flat = _tiny()
    torch.manual_seed(1)
    nested = build_generator("stylegan2", dict(
        z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, mapping_kwargs={"num_layers": 2},
        synthesis_kwargs=dict(channel_base=256, channel_max=16, num_fp16_res=0, conv_clamp=None)))
    assert {k: v.shape for k, v in flat.state_dict().items()} == {k: v.shape for k, v in nested.state_dict().items()}


def test_conv_clamp_bounds_activations():
    G = _tiny(conv_clamp=0.01)
    img = G(torch.randn(2, 16), None, noise_mode="const")
    # Every torgb output is clamped to +-0.01; three image scales add up.
    assert img.abs().max() <= 0.03 + 1e-6


def test_fp16_blocks_are_flagged_and_cpu_stays_fp32():
    G = _tiny(num_fp16_res=2)
    assert [getattr(G.synthesis, f"b{r}").use_fp16 for r in (4, 8, 16)] == [False, True, True]
    img = G(torch.randn(1, 16), None, noise_mode="const")
    assert img.dtype == torch.float32 and torch.isfinite(img).all()


@pytest.mark.parametrize("resolution,channel_base,params,tensors", [
    (1024, 32768, 30_370_060, 182),  # FFHQ config-F
    (256, 16384, 24_767_458, None),
])
def test_released_configurations_parameter_counts(resolution, channel_base, params, tensors):
    with torch.device("meta"):
        G = build_generator("stylegan2", dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution,
                                              img_channels=3, channel_base=channel_base, channel_max=512))
    assert sum(p.numel() for p in G.parameters()) == params
    if tensors is not None:
        assert len(G.state_dict()) == tensors
    assert G.num_ws == 2 * int(np.log2(resolution)) - 2


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_parity_fp16_and_graph_capture():
    meta, state, a = parity_case("sg2_64")
    G = build_generator("stylegan2", dict(meta["init_kwargs"], num_fp16_res=2)).eval().requires_grad_(False)
    G.load_state_dict(state, strict=True)
    G = G.cuda()
    ws = _t(a["ws_psi0.7"]).cuda()
    with torch.no_grad():
        tf32 = relative_error(G.synthesis(ws, noise_mode="const", force_fp32=True).cpu(), a["img_psi0.7_const"])
        with true_float32():
            err32 = relative_error(G.synthesis(ws, noise_mode="const", force_fp32=True).cpu(), a["img_psi0.7_const"])
            err_z = relative_error(G(_t(a["z"]).cuda(), None, noise_mode="none", force_fp32=True).cpu(),
                                   a["img_psi1_none"])
        err16 = relative_error(G.synthesis(ws, noise_mode="const").cpu(), a["img_psi0.7_const"])
        print(f"\n[cuda] sg2_64 float32 rel err {err32:.3g} (z path {err_z:.3g}); with TF32 convolutions "
              f"{tf32:.3g}; fp16 blocks {err16:.3g}")
        assert err32 < 1e-3 and err_z < 1e-3 and tf32 < 1e-2 and err16 < 5e-2

        static_ws = ws.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                G.synthesis(static_ws, noise_mode="const", force_fp32=True)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = G.synthesis(static_ws, noise_mode="const", force_fp32=True)
        graph.replay()
        torch.cuda.synchronize()
        assert relative_error(out.cpu(), a["img_psi0.7_const"]) < 1e-2  # TF32 on, as by default
