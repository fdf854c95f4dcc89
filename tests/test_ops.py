"""The plain-torch ops against their defining semantics (zero-stuffing, padding, true convolution)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stylecore.ops.bias_act import ACTIVATIONS, bias_act
from stylecore.ops.conv2d_resample import conv2d_resample
from stylecore.ops.upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d


def upfirdn2d_by_definition(x, f, up, down, pad, gain):
    """Literal 1-D-per-axis definition with numpy loops: the independent oracle."""
    x = x.double().numpy()
    f = f.double().numpy()
    if f.ndim == 1:
        f = np.outer(f, f)
    f = f * gain
    n, c, h, w = x.shape
    up_img = np.zeros((n, c, h * up, w * up))
    up_img[:, :, ::up, ::up] = x
    px0, px1, py0, py1 = pad
    padded = np.pad(up_img, ((0, 0), (0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0))))
    padded = padded[:, :, max(-py0, 0): padded.shape[2] - max(-py1, 0), max(-px0, 0): padded.shape[3] - max(-px1, 0)]
    fh, fw = f.shape
    oh, ow = padded.shape[2] - fh + 1, padded.shape[3] - fw + 1
    out = np.zeros((n, c, oh, ow))
    flipped = f[::-1, ::-1]  # true convolution
    for i in range(fh):
        for j in range(fw):
            out += flipped[i, j] * padded[:, :, i:i + oh, j:j + ow]
    return torch.from_numpy(out[:, :, ::down, ::down])


@pytest.mark.parametrize("up,down,pad,taps,separable", [
    (1, 1, [1, 1, 1, 1], 4, False), (2, 1, [2, 1, 2, 1], 4, False), (1, 2, [1, 1, 1, 1], 4, False),
    (2, 2, [9, 8, 9, 8], 12, True), (4, 2, [-6, -9, -6, -9], 24, True), (1, 1, [3, -2, 0, 5], 5, False),
])
def test_upfirdn2d_matches_definition(up, down, pad, taps, separable):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 11, 11)
    f = setup_filter(torch.rand(taps).tolist(), separable=separable)
    got = upfirdn2d(x, f, up=up, down=down, padding=pad, gain=up ** 2)
    want = upfirdn2d_by_definition(x, f, up, down, pad, up ** 2)
    assert got.shape == want.shape
    assert torch.allclose(got.double(), want, atol=1e-5)


def test_resampling_helpers_keep_sizes():
    x = torch.randn(1, 2, 8, 8)
    f = setup_filter([1, 3, 3, 1])
    assert upsample2d(x, f).shape[-1] == 16
    assert downsample2d(x, f).shape[-1] == 4
    assert filter2d(x, f).shape[-1] == 8
    # The lowpass keeps a constant image constant (DC gain 1) away from the border.
    assert torch.allclose(upsample2d(torch.ones(1, 1, 8, 8), f)[..., 3:-3, 3:-3], torch.ones(1))


def test_setup_filter_rules():
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and abs(f.sum().item() - 1) < 1e-6
    assert setup_filter(list(range(1, 13))).ndim == 1  # 8 taps or more stay separable


def conv2d_resample_by_definition(x, w, f, up, down, padding, groups, flip_weight):
    """Zero-stuff, pad, filter, convolve, filter, decimate: the generic (slow) order."""
    fw = f.shape[-1] if f is not None else 1
    p = [padding] * 4
    if up > 1:
        p = [p[0] + (fw + up - 1) // 2, p[1] + (fw - up) // 2, p[2] + (fw + up - 1) // 2, p[3] + (fw - up) // 2]
    if down > 1:
        p = [p[0] + (fw - down + 1) // 2, p[1] + (fw - down) // 2, p[2] + (fw - down + 1) // 2, p[3] + (fw - down) // 2]
    x = upfirdn2d(x, f if up > 1 else None, up=up, padding=p, gain=up ** 2)
    if not flip_weight:
        w = w.flip([2, 3])
    x = F.conv2d(x, w, groups=groups)
    if down > 1:
        x = upfirdn2d(x, f, down=down)
    return x


@pytest.mark.parametrize("k,up,down,groups,flip_weight", [
    (k, up, down, g, fl) for k, (up, down), g, fl in itertools.product(
        [1, 3], [(1, 1), (2, 1), (1, 2), (2, 2)], [1, 2], [True, False])
])
def test_conv2d_resample_fast_paths_equal_generic_order(k, up, down, groups, flip_weight):
    torch.manual_seed(k * 100 + up * 10 + down + groups)
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    w = torch.randn(6, 4 // groups, k, k, dtype=torch.float64)
    f = setup_filter([1, 3, 3, 1]).double()
    padding = k // 2
    got = conv2d_resample(x, w, f=f, up=up, down=down, padding=padding, groups=groups, flip_weight=flip_weight)
    want = conv2d_resample_by_definition(x, w, f, up, down, padding, groups, flip_weight)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-10)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_bias_act_gain_and_clamp(act):
    x = torch.linspace(-3, 3, 25).reshape(1, 1, 5, 5).repeat(1, 2, 1, 1)
    b = torch.tensor([0.5, -0.5])
    y = bias_act(x, b, act=act, gain=2.0, clamp=1.5)
    assert y.abs().max() <= 1.5
    ref = ACTIVATIONS[act].func(x + b.reshape(1, 2, 1, 1), ACTIVATIONS[act].def_alpha) * 2.0
    assert torch.allclose(y, ref.clamp(-1.5, 1.5))


def test_ops_support_backward():
    x = torch.randn(1, 2, 8, 8, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, requires_grad=True)
    y = conv2d_resample(x, w, f=setup_filter([1, 3, 3, 1]), up=2, padding=1, flip_weight=False)
    bias_act(y, act="lrelu").square().sum().backward()
    assert x.grad is not None and w.grad is not None and torch.isfinite(x.grad).all()
