"""The fast CPU paths of the ops against the reference ops: random shapes, up/down factors, filter
sizes, paddings, dtypes and gradients (the inversion tabs differentiate through them)."""
from __future__ import annotations

import random
import subprocess
import sys

import pytest
import torch

import stylecore.ops.filtered_lrelu_cpu as filtered_lrelu_cpu
from stylecore.ops.banded import separable_terms
from stylecore.ops.bias_act import bias_act
from stylecore.ops.filtered_lrelu import filtered_lrelu
from stylecore.ops.impl import current_impl, use_impl
from stylecore.ops.upfirdn2d import upfirdn2d

TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-4, torch.bfloat16: 3e-2}  # random, unnormalised filters


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref.double()).abs().max() / ref.double().abs().max().clamp_min(1e-30)).item()


def random_filter(rng: random.Random, kind: str) -> torch.Tensor:
    taps = rng.randint(8, 24)
    if kind == "1d":
        return torch.randn(taps)
    if kind == "separable":
        return torch.randn(taps)[:, None] * torch.randn(rng.randint(8, 24))[None]
    return torch.randn(taps, rng.randint(8, 24))


def upfirdn2d_cases(count: int, seed: int):
    rng = random.Random(seed)
    torch.manual_seed(seed)
    cases = []
    while len(cases) < count:
        up = (rng.randint(1, 4), rng.randint(1, 4))
        down = (rng.randint(1, 4), rng.randint(1, 4))
        f = random_filter(rng, rng.choice(["1d", "separable", "2d"]))
        x = torch.randn(rng.randint(1, 3), rng.randint(1, 5), rng.randint(4, 40), rng.randint(4, 40))
        pad = [rng.randint(-6, 14) for _ in range(4)]
        h = x.shape[2] * up[1] + pad[2] + pad[3] - f.shape[0] + 1
        w = x.shape[3] * up[0] + pad[0] + pad[1] - f.shape[-1] + 1
        if h >= 1 and w >= 1:
            cases.append((x, f, up, down, pad, rng.random() < 0.5, rng.choice([1.0, 4.0, 0.5])))
    return cases


def test_default_impl_is_auto_and_bad_env_is_refused(monkeypatch):
    monkeypatch.delenv("STYLECORE_OPS", raising=False)
    assert current_impl() == "auto"
    monkeypatch.setenv("STYLECORE_OPS", "turbo")
    with pytest.raises(ValueError, match="STYLECORE_OPS='turbo'"):
        current_impl()
    with pytest.raises(ValueError, match="unknown ops implementation"):
        with use_impl("turbo"):
            pass


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_upfirdn2d_fast_matches_reference(dtype):
    for x, f, up, down, pad, flip, gain in upfirdn2d_cases(60, seed=int(str(dtype)[-2:])):
        x = x.to(dtype)
        with use_impl("ref"):
            ref = upfirdn2d(x, f, up, down, pad, flip, gain)
        with use_impl("fast"):
            out = upfirdn2d(x, f, up, down, pad, flip, gain)
        assert out.shape == ref.shape and out.dtype == ref.dtype
        assert rel_err(out, ref) < TOLERANCE[dtype], (tuple(x.shape), tuple(f.shape), up, down, pad, flip, gain)


def test_upfirdn2d_fast_gradients_match_reference():
    for x, f, up, down, pad, flip, gain in upfirdn2d_cases(12, seed=7):
        grads = []
        for impl in ("ref", "fast"):
            xi = x.double().requires_grad_(True)
            with use_impl(impl):
                y = upfirdn2d(xi, f.double(), up, down, pad, flip, gain)
            weights = torch.linspace(-1, 1, y.numel(), dtype=torch.float64).reshape(y.shape)
            grads.append(torch.autograd.grad((y * weights).sum(), xi)[0])
        assert rel_err(grads[1], grads[0]) < 1e-12


def test_separable_terms_split_low_rank_filters_only():
    col, row = torch.randn(12, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
    [(a, b)] = separable_terms(col[:, None] * row[None])
    assert torch.allclose(a[:, None] * b[None], col[:, None] * row[None], atol=1e-12)
    low = sum(torch.randn(12, 1, dtype=torch.float64) * torch.randn(1, 12, dtype=torch.float64) for _ in range(3))
    terms = separable_terms(low)
    assert len(terms) == 3 and torch.allclose(sum(a[:, None] * b[None] for a, b in terms), low, atol=1e-12)
    assert separable_terms(torch.randn(12, 12, dtype=torch.float64)) is None


def sg3_like_cases(seed: int):
    """filtered_lrelu calls shaped like StyleGAN3's layers: up 1/2/4, down 1/2/4, 1-D or radial 2-D fd."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    cases = []
    for up, down, radial in [(2, 2, False), (4, 2, False), (2, 4, False), (1, 1, False), (2, 2, True), (4, 4, True)]:
        fu = torch.randn(6 * up) if up > 1 else None
        fd = torch.randn(6 * down) if down > 1 else None
        if radial and fd is not None:
            fd = torch.randn(6 * down, 6 * down)
        size = rng.randint(18, 28)  # large enough for the 24-tap filters after any cropping below
        pad = [rng.randint(-2, 10) for _ in range(4)]
        x = torch.randn(2, rng.randint(3, 9), size, size)
        b = torch.randn(x.shape[1])
        slope, gain = (1.0, 1.0) if up == down == 1 else (0.2, 2 ** 0.5)
        cases.append((x, fu, fd, b, up, down, pad, gain, slope, rng.choice([None, 0.5]), rng.random() < 0.5))
    return cases


@pytest.mark.parametrize("slice_bytes", [1 << 12, 4 << 20])
def test_filtered_lrelu_fast_matches_reference(monkeypatch, slice_bytes):
    monkeypatch.setattr(filtered_lrelu_cpu, "SLICE_BYTES", slice_bytes)  # a tiny budget: many slices
    for x, fu, fd, b, up, down, pad, gain, slope, clamp, flip in sg3_like_cases(seed=slice_bytes):
        kwargs = dict(fu=fu, fd=fd, b=b, up=up, down=down, padding=pad, gain=gain, slope=slope, clamp=clamp,
                      flip_filter=flip)
        before = x.clone()
        with use_impl("ref"):
            ref = filtered_lrelu(x, **kwargs)
        with use_impl("fast"):
            out = filtered_lrelu(x, **kwargs)
        assert torch.equal(x, before), "the fast path changed its input"
        assert out.shape == ref.shape
        assert rel_err(out, ref) < 1e-4, (up, down, tuple(x.shape), pad, clamp)


def test_filtered_lrelu_fast_gradients_match_reference(monkeypatch):
    monkeypatch.setattr(filtered_lrelu_cpu, "SLICE_BYTES", 1 << 12)
    for x, fu, fd, b, up, down, pad, gain, slope, clamp, flip in sg3_like_cases(seed=3):
        grads = []
        for impl in ("ref", "fast"):
            xi = x.double().requires_grad_(True)
            bi = b.double().requires_grad_(True)
            with use_impl(impl):
                y = filtered_lrelu(xi, None if fu is None else fu.double(), None if fd is None else fd.double(),
                                   bi, up, down, pad, gain, slope, clamp, flip)
            weights = torch.linspace(-1, 1, y.numel(), dtype=torch.float64).reshape(y.shape)
            grads.append(torch.autograd.grad((y * weights).sum(), [xi, bi]))
        for fast, ref in zip(grads[1], grads[0]):
            assert rel_err(fast, ref) < 1e-10


@pytest.mark.parametrize("act", ["linear", "relu", "lrelu", "tanh", "swish"])
def test_bias_act_in_place_epilogue_matches_reference(act):
    x = torch.randn(2, 5, 7, 7)
    b = torch.randn(5)
    before = x.clone()
    with use_impl("ref"):
        ref = bias_act(x, b, act=act, gain=1.7, clamp=0.9)
    with use_impl("fast"), torch.no_grad():
        out = bias_act(x, b, act=act, gain=1.7, clamp=0.9)
    assert torch.equal(x, before)
    assert rel_err(out, ref) < 1e-6


def test_bench_command_prints_a_table_with_small_errors():
    """`python -m stylecore bench` on the cheapest released network: every impl's row, its error and
    the conv floor row (the network's convolutions alone, never slower than the whole network)."""
    cmd = [sys.executable, "-m", "stylecore", "bench", "--arch", "sg2", "--res", "256", "--batch", "1,2",
           "--device", "cpu", "--impl", "ref,fast,auto", "--repeat", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("sg2-256")]
    labels = [(r[1], " ".join(r[2:4]) if r[2] == "conv" else r[2]) for r in rows]
    assert labels == [(b, i) for b in ("1", "2") for i in ("ref", "fast", "auto", "conv floor")]
    for r in rows:
        cells = r[1:] if r[2] != "conv" else [r[1], "conv floor"] + r[4:]
        assert cells[2] == "quiet" and float(cells[4]) > 0 and float(cells[5]) > 0  # load, latency ms, img/s
        if cells[1] in ("fast", "auto"):
            assert float(cells[-1]) < 1e-3
    floor = {r[1]: float(r[6]) for r in rows if r[2] == "conv"}
    assert all(0 < floor[r[1]] <= float(r[5]) * 1.5 for r in rows if r[2] != "conv")  # 1.5: timing noise
    bad = subprocess.run(cmd[:-4] + ["--impl", "turbo"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "unknown implementation" in bad.stderr


@pytest.mark.parametrize("mode", ["processes", "requests"])
def test_contended_rows_time_the_call_under_load(mode):
    """--contend: beside busy processes (one row) or as concurrent requests against sequential ones."""
    from stylecore.bench.generator import contended_rows

    calls = []
    rows = contended_rows(lambda ws: calls.append(ws.shape), torch.zeros(2, 3), repeat=1, cores=2, count=2,
                          mode=mode)
    if mode == "processes":
        assert [r[0] for r in rows] == ["2 busy"] and calls
    else:
        assert [(r[0], r[2]) for r in rows] == [("2 one by one", 2), ("2 at once", 2)]
        assert len(calls) == 2 * (1 + 2)  # each way: one warm-up, then one round of two requests
    assert all(r[1] > 0 for r in rows)


@pytest.mark.parametrize("architecture", ["stylegan2", "stylegan3"])
def test_cpu_bf16_mode_runs_the_fp16_layers_in_bfloat16(monkeypatch, architecture):
    """STYLECORE_CPU_BF16=1: the layers a checkpoint marks for fp16 run in bfloat16 on the CPU,
    close to float32; without it, or with force_fp32, nothing changes."""
    from stylecore.engine.demo import DEMO_KWARGS
    from stylecore.engine.manager import ModelManager
    from stylecore.networks import build_generator
    from stylecore.engine.zoo import Zoo

    torch.manual_seed(0)
    G = build_generator(architecture, dict(DEMO_KWARGS[architecture], num_fp16_res=2)).eval()
    ws = G.mapping(torch.randn(2, G.z_dim), None)
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o[0].dtype if isinstance(o, tuple) else o.dtype))
             for m in G.synthesis.children()]
    with torch.no_grad():
        monkeypatch.delenv("STYLECORE_CPU_BF16", raising=False)
        exact = G.synthesis(ws, noise_mode="const")
        assert torch.bfloat16 not in seen
        monkeypatch.setenv("STYLECORE_CPU_BF16", "1")
        assert torch.equal(G.synthesis(ws, noise_mode="const", force_fp32=True), exact)
        seen.clear()
        low = G.synthesis(ws, noise_mode="const")
    for h in hooks:
        h.remove()
    assert torch.bfloat16 in seen and low.dtype == torch.float32
    assert 0 < rel_err(low, exact) < 0.1
    assert not ModelManager(Zoo(), device="cpu").get("demo").force_fp32  # the app follows the setting


def test_filtered_lrelu_fast_matches_reference_on_released_filters():
    """StyleGAN3's own filters (Kaiser low-pass, radial jinc of config R: two separable terms), a
    linear layer (slope 1, no clamp: up and down composed into one pass), within 1e-5 in float32."""
    from stylecore.networks.filters import design_lowpass_filter

    torch.manual_seed(0)
    fu = design_lowpass_filter(numtaps=12, cutoff=10, width=8, fs=64)
    fd_radial = design_lowpass_filter(numtaps=12, cutoff=10, width=8, fs=64, radial=True)
    x = torch.randn(2, 5, 30, 30)
    b = torch.randn(5)
    for fd, slope, clamp in [(fd_radial, 0.2, 256.0), (fu, 1.0, None), (fd_radial, 1.0, None)]:
        kwargs = dict(fu=fu, fd=fd, b=b, up=2, down=2, padding=[9, 8, 9, 8], gain=2 ** 0.5, slope=slope, clamp=clamp)
        with use_impl("ref"):
            ref = filtered_lrelu(x, **kwargs)
        with use_impl("fast"), torch.no_grad():
            out = filtered_lrelu(x, **kwargs)
        assert rel_err(out, ref) < 1e-5, (tuple(fd.shape), slope)


def test_fast_outputs_do_not_share_the_scratch_buffers():
    """Intermediates live in per-thread scratch buffers; results must not: a later call leaves them be."""
    fu, fd = torch.randn(12), torch.randn(12)
    kwargs = dict(fu=fu, fd=fd, up=2, down=2, padding=[9, 8, 9, 8], gain=2 ** 0.5, slope=0.2, clamp=None)
    with use_impl("fast"), torch.no_grad():
        first = filtered_lrelu(torch.randn(1, 4, 20, 20), **kwargs)
        kept = first.clone()
        filtered_lrelu(torch.randn(1, 4, 20, 20), **kwargs)
    assert torch.equal(first, kept)


@pytest.mark.parametrize("radial", [False, True])
def test_stylegan3_fast_matches_reference_with_gradients(radial):
    """A small StyleGAN3 (config T, or R with radial filters and 1x1 convolutions): the image within
    1e-5 of the reference ops and the gradient of a loss w.r.t. the W codes within 1e-4."""
    from stylecore.engine.demo import DEMO_KWARGS
    from stylecore.networks import build_generator

    torch.manual_seed(0)
    extra = dict(conv_kernel=1, use_radial_filters=True) if radial else {}
    G = build_generator("stylegan3", dict(DEMO_KWARGS["stylegan3"], **extra)).eval()
    ws = G.mapping(torch.randn(2, G.z_dim), None).detach()
    images, grads = [], []
    for impl in ("ref", "fast"):
        codes = ws.clone().requires_grad_(True)
        with use_impl(impl):
            img = G.synthesis(codes, noise_mode="const")
        weights = torch.linspace(-1, 1, img.numel()).reshape(img.shape)
        grads.append(torch.autograd.grad((img * weights).sum(), codes)[0])
        images.append(img.detach())
    with use_impl("fast"), torch.no_grad():
        assert rel_err(G.synthesis(ws, noise_mode="const"), images[0]) < 1e-5
    assert rel_err(images[1], images[0]) < 1e-5
    assert rel_err(grads[1], grads[0]) < 1e-4


def test_fast_path_traces_as_one_graph_without_caches_buffers_or_thread_settings(monkeypatch):
    """Under torch.compile (fullgraph, eager backend: traced, not compiled) the fast ops take their
    pure-tensor path: never the memoised block matrices, the scratch buffers or the one-thread
    setting of eager inference (each fails here if called), still the banded products for 1-D
    filters (bmm in the graph), and within 1e-5 of the reference. A radial 2-D filter is not split into separable terms
    while tracing (reading its rank back would break the graph): its dense 2-D convolution runs."""
    import stylecore.ops.banded as banded
    from stylecore.networks.filters import design_lowpass_filter

    def forbidden(*args, **kwargs):
        raise AssertionError("eager-only machinery used while tracing")

    monkeypatch.setattr(banded, "_cached_axis", forbidden)
    monkeypatch.setattr(filtered_lrelu_cpu, "scratch", forbidden)
    monkeypatch.setattr(filtered_lrelu_cpu, "_one_thread", forbidden)
    torch.manual_seed(0)
    fu = design_lowpass_filter(numtaps=12, cutoff=10, width=8, fs=64)
    fd_radial = design_lowpass_filter(numtaps=12, cutoff=10, width=8, fs=64, radial=True)
    x, b = torch.randn(2, 5, 30, 30), torch.randn(5)
    for fd, slope, clamp in [(fu, 0.2, 256.0), (fu, 1.0, None), (fd_radial, 0.2, 256.0)]:
        kwargs = dict(fu=fu, fd=fd, b=b, up=2, down=2, padding=[9, 8, 9, 8], gain=2 ** 0.5, slope=slope, clamp=clamp)
        graphs = []

        def record(gm, example_inputs):
            graphs.append(gm)
            return gm.forward

        torch._dynamo.reset()
        with use_impl("ref"):
            ref = filtered_lrelu(x, **kwargs)
        with use_impl("fast"), torch.no_grad():
            traced = torch.compile(lambda t: filtered_lrelu(t, **kwargs), fullgraph=True, backend=record)(x)
        assert len(graphs) == 1 and rel_err(traced, ref) < 1e-5, (tuple(fd.shape), slope)
        if fd.ndim == 1:
            assert torch.bmm in {node.target for node in graphs[0].graph.nodes}, slope
    torch._dynamo.reset()
