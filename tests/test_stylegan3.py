"""StyleGAN3 generator: parity with the official outputs, filter design, configs T/R, meta loading."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import parity_case, relative_error
from stylecore.networks import build_generator
from stylecore.networks.filters import design_lowpass_filter
from stylecore.networks.stylegan3 import Generator
from stylecore.ops.filtered_lrelu import filtered_lrelu

TOL = 1e-4
TRANSFORM_KEY = "transform_rot30_tx0.125_ty-0.25"


@pytest.fixture(scope="module")
def sg3t():
    """(meta json, fixture state dict, arrays, generator loaded strictly from the state dict)."""
    meta, state, arrays = parity_case("sg3t_64")
    G = build_generator("stylegan3", meta["init_kwargs"]).eval()
    G.load_state_dict(state, strict=True)
    return meta, state, arrays, G


def _check(name: str, got: torch.Tensor, arrays: dict, key: str, tol: float = TOL) -> float:
    err = relative_error(got.detach().cpu().numpy(), arrays[key])
    print(f"[parity sg3t_64] {name}: {key} relative error {err:.3e}")
    assert err < tol, f"{name}: {key} relative error {err:.3e} >= {tol:g}"
    return err


# ----------------------------------------------------------------------------------------------
# (a) parity


def test_state_dict_names_match_fixture(sg3t):
    _, state, _, G = sg3t
    assert set(G.state_dict()) == set(state)
    assert "synthesis.input.grid" not in G.state_dict()
    assert G.synthesis.L14_64_3.up_filter is None and G.synthesis.L14_64_3.down_filter is None


def test_parity_mapping(sg3t):
    _, _, arrays, G = sg3t
    z, c = torch.from_numpy(arrays["z"]), torch.from_numpy(arrays["c"])
    with torch.no_grad():
        _check("G.mapping", G.mapping(z, c, truncation_psi=0.7), arrays, "ws_psi0.7")
        _check("G.mapping", G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=4), arrays, "ws_psi0.5_cut4")


def test_parity_images(sg3t):
    _, _, arrays, G = sg3t
    z, c = torch.from_numpy(arrays["z"]), torch.from_numpy(arrays["c"])
    ws = torch.from_numpy(arrays["ws_psi0.7"])
    with torch.no_grad():
        img = G.synthesis(ws, noise_mode="const", force_fp32=True)
        assert img.shape == (3, 3, 64, 64) and img.dtype == torch.float32
        _check("G.synthesis", img, arrays, "img_psi0.7_const")
        img = G(z, c, truncation_psi=1, noise_mode="none", force_fp32=True)
        _check("G", img, arrays, "img_psi1_none")


def test_parity_transform_buffer_and_per_call(sg3t):
    _, state, arrays, G = sg3t
    ws = torch.from_numpy(arrays["ws_psi0.7"])
    m = torch.from_numpy(arrays[TRANSFORM_KEY])
    identity = state["synthesis.input.transform"].clone()
    assert torch.equal(identity, torch.eye(3))
    with torch.no_grad():
        # Per-call override: the shared buffer must stay untouched.
        img = G.synthesis(ws, noise_mode="const", force_fp32=True, transform=m)
        assert torch.equal(G.synthesis.input.transform, identity)
        _check("per-call transform=", img, arrays, "img_psi0.7_const_transformed")

        # Per-sample matrices [N, 3, 3]: sample 0 untransformed, samples 1 and 2 transformed.
        batch = torch.stack([torch.eye(3), m, m])
        img = G.synthesis(ws, noise_mode="const", force_fp32=True, transform=batch)
        expect = np.concatenate([arrays["img_psi0.7_const"][:1], arrays["img_psi0.7_const_transformed"][1:]])
        err = relative_error(img.numpy(), expect)
        print(f"[parity sg3t_64] per-sample [N,3,3] transform: relative error {err:.3e}")
        assert err < TOL, f"per-sample transform relative error {err:.3e}"

        # Official way: copy the matrix into the persistent buffer.
        try:
            G.synthesis.input.transform.copy_(m)
            img = G.synthesis(ws, noise_mode="const", force_fp32=True)
            _check("input.transform buffer", img, arrays, "img_psi0.7_const_transformed")
            img = G(torch.from_numpy(arrays["z"]), None, truncation_psi=0.7, noise_mode="const", transform=torch.eye(3))
            _check("G(transform=eye) over a set buffer", img, arrays, "img_psi0.7_const")
        finally:
            G.synthesis.input.transform.copy_(identity)


def test_bad_inputs_give_clear_errors(sg3t):
    _, _, arrays, G = sg3t
    ws = torch.from_numpy(arrays["ws_psi0.7"])
    with pytest.raises(ValueError, match="ws must have shape"):
        G.synthesis(ws[:, :5])
    with pytest.raises(ValueError, match="transform"):
        G.synthesis(ws, transform=torch.eye(2))
    with pytest.raises(ValueError, match="transform batch"):
        G.synthesis(ws, transform=torch.eye(3).expand(2, 3, 3))


def test_update_emas(sg3t):
    meta, state, arrays, _ = sg3t
    G = build_generator("stylegan3", meta["init_kwargs"])
    G.load_state_dict(state, strict=True)
    z = torch.from_numpy(arrays["z"])
    with torch.no_grad():
        G(z, None)
        assert torch.equal(G.synthesis.L3_36_64.magnitude_ema, state["synthesis.L3_36_64.magnitude_ema"])
        assert torch.equal(G.mapping.w_avg, state["mapping.w_avg"])
        G(z, None, update_emas=True)
    assert not torch.equal(G.synthesis.L3_36_64.magnitude_ema, state["synthesis.L3_36_64.magnitude_ema"])
    assert not torch.equal(G.mapping.w_avg, state["mapping.w_avg"])


# ----------------------------------------------------------------------------------------------
# (b) filter design


def test_filter_design_matches_fixture():
    meta, state, _ = parity_case("sg3t_64")
    torch.manual_seed(0)
    fresh = build_generator("stylegan3", meta["init_kwargs"]).state_dict()
    keys = [k for k in state if k.endswith(("up_filter", "down_filter"))]
    assert len(keys) == 28
    worst = 0.0
    for k in keys:
        assert fresh[k].shape == state[k].shape, k
        worst = max(worst, (fresh[k] - state[k]).abs().max().item())
    print(f"[filters sg3t_64] {len(keys)} designed filters, max abs difference {worst:.3e}")
    assert worst < 1e-6, f"designed filters differ from the fixture by {worst:.3e}"
    assert "synthesis.L14_64_3.up_filter" not in fresh and "synthesis.L14_64_3.down_filter" not in fresh


def test_filter_design_test_vectors():
    assert design_lowpass_filter(1, 2, 12, 32) is None
    f = design_lowpass_filter(12, cutoff=2, width=12, fs=32)
    half = [0.000792, 0.010018, 0.038950, 0.092413, 0.156526, 0.201302]
    np.testing.assert_allclose(f.numpy(), half + half[::-1], atol=1e-6)
    assert f.dtype == torch.float32 and abs(f.sum().item() - 1) < 1e-6

    import scipy.signal

    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(12, 12 / (32 / 2)))
    assert abs(beta - 6.4437) < 1e-3
    r = design_lowpass_filter(12, cutoff=2, width=12, fs=32, radial=True)
    assert r.shape == (12, 12) and r.dtype == torch.float32
    assert abs(r[5, 5].item() - 0.038755) < 1e-6
    assert abs(r.sum().item() - 1) < 1e-5
    torch.testing.assert_close(r, r.t())
    # Odd tap counts hit r = 0; the jinc limit keeps the filter finite.
    assert torch.isfinite(design_lowpass_filter(11, 2, 12, 32, radial=True)).all()


# ----------------------------------------------------------------------------------------------
# (c) config R at a tiny size


def test_config_r_tiny():
    torch.manual_seed(1)
    G = Generator(z_dim=32, c_dim=4, w_dim=32, img_resolution=64, img_channels=3, channel_base=2048,
                  channel_max=64, conv_kernel=1, use_radial_filters=True).eval()
    syn = G.synthesis
    assert G.num_ws == 16 and len(syn.layer_names) == 15
    for idx, name in enumerate(syn.layer_names):
        layer = getattr(syn, name)
        assert layer.down_radial == (idx < 12), name
        if idx < 12:
            assert layer.down_filter.shape == (12, 12), name
        elif idx < 14:
            assert layer.down_filter.shape == (12,), name
        else:
            assert layer.down_filter is None and layer.up_filter is None
        assert layer.up_filter is None or layer.up_filter.ndim == 1
        assert layer.weight.shape[-1] == 1
    assert "mapping.embed.weight" in G.state_dict()
    z = torch.randn(2, 32)
    c = torch.eye(4)[:2]
    with torch.no_grad():
        img = G(z, c, truncation_psi=0.7)
    assert img.shape == (2, 3, 64, 64) and img.dtype == torch.float32
    assert torch.isfinite(img).all() and img.std() > 0


# ----------------------------------------------------------------------------------------------
# (d) layer schedule and parameter counts at 1024 (constructed on meta: no memory, fast)

T1024_NAMES = ["L0_36_512", "L1_36_512", "L2_52_512", "L3_52_512", "L4_84_512", "L5_148_512", "L6_148_512",
               "L7_276_323", "L8_276_203", "L9_532_128", "L10_1044_81", "L11_1044_51", "L12_1044_32",
               "L13_1024_32", "L14_1024_3"]
R1024_NAMES = ["L0_36_1024", "L1_36_1024", "L2_52_1024", "L3_52_1024", "L4_84_1024", "L5_148_1024", "L6_148_1024",
               "L7_276_645", "L8_276_406", "L9_532_256", "L10_1044_161", "L11_1044_102", "L12_1044_64",
               "L13_1024_64", "L14_1024_3"]


@pytest.mark.parametrize("config,kwargs,names,count", [
    ("T", dict(channel_base=32768, channel_max=512), T1024_NAMES, 22_313_167),
    ("R", dict(channel_base=65536, channel_max=1024, conv_kernel=1, use_radial_filters=True), R1024_NAMES, 15_093_151),
])
def test_1024_schedule_and_parameter_count(config, kwargs, names, count):
    with torch.device("meta"):
        G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3, **kwargs)
    syn = G.synthesis
    assert syn.layer_names == names
    n_params = sum(p.numel() for p in G.parameters())
    print(f"[schedule] {config}-1024: {n_params:,} parameters")
    assert n_params == count
    up2 = [9, 8] if config == "T" else [11, 10]
    up4 = [-6, -9] if config == "T" else [-2, -5]
    for idx, name in enumerate(names):
        layer = getattr(syn, name)
        assert isinstance(layer.in_size, np.ndarray) and layer.in_size.shape == (2,)
        assert layer.use_fp16 == (idx >= 5), name
        if idx == 14:
            assert layer.padding == [0, 0, 0, 0] and layer.is_torgb
        elif idx == 13:
            assert layer.padding[:2] == ([-11, -12] if config == "T" else [-9, -10])
        else:
            assert layer.padding[:2] == (up4 if layer.up_factor == 4 else up2), name
        if config == "R" and idx < 14:
            assert layer.down_filter.ndim == (2 if idx < 12 else 1), name
    assert int(syn.input.size[0]) == 36 and syn.input.sampling_rate == 16 and syn.input.bandwidth == 2


# ----------------------------------------------------------------------------------------------
# (e) meta construction, assign-loading, init_constants


def test_meta_construction_assign_load_and_init_constants(sg3t):
    meta, state, arrays, _ = sg3t
    ws = torch.from_numpy(arrays["ws_psi0.7"])
    with torch.device("meta"):
        G = build_generator("stylegan3", meta["init_kwargs"])
    assert G.synthesis.input.grid.is_meta
    G.load_state_dict(state, strict=True, assign=True)
    G.init_constants()
    assert all(not t.is_meta for t in list(G.parameters()) + list(G.buffers()))
    with torch.no_grad():
        _check("meta + assign + init_constants", G.synthesis(ws, force_fp32=True), arrays, "img_psi0.7_const")
        # init_constants really recomputes the grid (not only the load hook does).
        G.synthesis.input.grid.zero_()
        G.init_constants()
        _check("init_constants after clobbering", G.synthesis(ws), arrays, "img_psi0.7_const")


# ----------------------------------------------------------------------------------------------
# filtered_lrelu


def test_filtered_lrelu_reference_order():
    torch.manual_seed(2)
    x = torch.randn(2, 3, 9, 9)
    b = torch.randn(3)
    # No filters, no resampling: bias, lrelu, gain, clamp.
    y = filtered_lrelu(x, b=b, clamp=0.5)
    expect = (torch.nn.functional.leaky_relu(x + b.reshape(1, -1, 1, 1), 0.2) * math.sqrt(2)).clamp(-0.5, 0.5)
    torch.testing.assert_close(y, expect)
    # Output size per axis: (in*up + p0 + p1 - (fu_taps-1) - (fd_taps-1) + (down-1)) // down.
    fu = design_lowpass_filter(12, 2, 12, 32)
    fd = design_lowpass_filter(12, 2, 12, 32)
    y = filtered_lrelu(x, fu, fd, b, up=2, down=2, padding=[9, 8, 9, 8])
    n = (9 * 2 + 17 - 11 - 11 + 1) // 2
    assert y.shape == (2, 3, n, n)
    # slope 1 and gain 1 make the op linear (ToRGB).
    y1 = filtered_lrelu(x, fu, fd, None, up=2, down=2, padding=[9, 8, 9, 8], gain=1, slope=1)
    y2 = filtered_lrelu(2 * x, fu, fd, None, up=2, down=2, padding=[9, 8, 9, 8], gain=1, slope=1)
    torch.testing.assert_close(y2, 2 * y1)


# ----------------------------------------------------------------------------------------------
# CUDA: fp16 layers and graph capture (skipped without a GPU)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fp16_and_graph_capture(sg3t):
    meta, state, arrays, _ = sg3t
    kwargs = dict(meta["init_kwargs"], num_fp16_res=4)
    G = build_generator("stylegan3", kwargs).eval()
    G.load_state_dict(state, strict=True)
    G = G.cuda()
    assert any(getattr(G.synthesis, n).use_fp16 for n in G.synthesis.layer_names)
    ws = torch.from_numpy(arrays["ws_psi0.7"]).cuda()
    m = torch.from_numpy(arrays[TRANSFORM_KEY]).cuda()
    # The fixtures' README allows 1e-3 on CUDA in float32 (cuDNN convolutions default to TF32).
    cuda_tol = 1e-3
    with torch.no_grad():
        tf32 = torch.backends.cudnn.allow_tf32
        try:
            torch.backends.cudnn.allow_tf32 = False
            _check("cuda fp32, TF32 off", G.synthesis(ws, force_fp32=True), arrays, "img_psi0.7_const")
        finally:
            torch.backends.cudnn.allow_tf32 = tf32
        img32 = G.synthesis(ws, force_fp32=True)
        _check("cuda fp32 (default TF32 setting)", img32, arrays, "img_psi0.7_const", cuda_tol)
        img16 = G.synthesis(ws)
        err16 = relative_error(img16.cpu().numpy(), arrays["img_psi0.7_const"])
        print(f"[cuda] fp16 layers vs reference fp32: relative error {err16:.3e}")
        assert img16.dtype == torch.float32 and err16 < 5e-2

        # CUDA graph capture with a per-call transform living in a static input tensor.
        static_ws = ws.clone()
        static_m = m.clone()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(2):
                G.synthesis(static_ws, force_fp32=True, transform=static_m)
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = G.synthesis(static_ws, force_fp32=True, transform=static_m)
        graph.replay()
        torch.cuda.synchronize()
        _check("cuda graph replay", static_out, arrays, "img_psi0.7_const_transformed", cuda_tol)
        static_m.copy_(torch.eye(3, device="cuda"))
        graph.replay()
        torch.cuda.synchronize()
        _check("cuda graph replay, new transform", static_out, arrays, "img_psi0.7_const", cuda_tol)
