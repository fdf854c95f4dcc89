"""An untrained HyperStyle for any official StyleGAN2: seeded random weights, nothing downloaded.

Two uses: the demo generator's HyperStyle (small widths), so the method can be tried offline like every
other control, and the benchmark's (the released widths), so a HyperStyle pass is timed at its real cost
on a machine without the 1.44 GB file. Neither is a trained model: its offsets do not move the image
towards the target. Each head is scaled so an untrained offset Δ has a standard deviation of
`offset_scale` on a random input, so that W·(1 + Δ) stays a usable generator.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch

from stylecore.inversion.hyperstyle import HyperStyleModel, build_hyperstyle
from stylecore.networks.encoders_backbone import DEFAULT_WIDTHS
from stylecore.networks.hyperstyle import SHARED_LAYERS, LayerShape, SharedWeightsHyperNetResNet, WEncoder, layer_shapes

__all__ = ["SMALL", "RELEASED", "tunable_layers", "random_hyperstyle"]

SMALL = dict(widths=(8, 8, 16, 16), w_encoder_widths=(16, 16, 32, 32), code_dim=32, inner=16)
RELEASED = dict(widths=DEFAULT_WIDTHS, w_encoder_widths=DEFAULT_WIDTHS, code_dim=512, inner=None)


def tunable_layers(decoder: torch.nn.Module) -> list[Optional[LayerShape]]:
    """The released faces model's choice, for any size: every 3x3 layer, no ToRGB; a layer of the shared
    hypernetwork's indices is tuned only where its kernel has the shared shape (small networks narrow early)."""
    shapes = layer_shapes(decoder.synthesis)
    shared = (shapes[0].out_channels, shapes[0].out_channels, 3)
    return [shape if shape.kernel_size == 3 and (i not in SHARED_LAYERS or tuple(shape) == shared) else None
            for i, shape in enumerate(shapes)]


def _scale_heads(net: SharedWeightsHyperNetResNet, offset_scale: float, generator: torch.Generator) -> None:
    """Rescale every offset head so its output's standard deviation is `offset_scale` on a random input."""
    with torch.no_grad():
        x = torch.randn(1, 6, 256, 256, generator=generator)
        outputs = net(x)
        shared_std = [float(o.std()) for i, o in enumerate(outputs) if o is not None and i in SHARED_LAYERS]
        if shared_std:
            factor = offset_scale / max(sum(shared_std) / len(shared_std), 1e-12)
            net.shared_weight_hypernet.w1.mul_(factor)
            net.shared_weight_hypernet.b1.mul_(factor)
        for i, (block, out) in enumerate(zip(net.refinement_blocks, outputs)):
            if block is not None and i not in SHARED_LAYERS:
                head = block.output[-1]
                factor = offset_scale / max(float(out.std()), 1e-12)
                head.weight.mul_(factor)
                head.bias.mul_(factor)


def random_hyperstyle(decoder: torch.nn.Module, seed: int = 0, widths: Sequence[int] = SMALL["widths"],
                      w_encoder_widths: Sequence[int] = SMALL["w_encoder_widths"], code_dim: int = SMALL["code_dim"],
                      inner: Optional[int] = SMALL["inner"], offset_scale: float = 0.02) -> HyperStyleModel:
    """An untrained HyperStyle for `decoder` (an official StyleGAN2, kept as is) with seeded weights:
    `SMALL` widths by default, `**RELEASED` for the released architecture's cost."""
    generator = torch.Generator().manual_seed(seed)
    layers = tunable_layers(decoder)
    shared = layer_shapes(decoder.synthesis)[0].out_channels
    sizes = {} if inner is None else {"hyper_inner": inner, "refine_inner": inner}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hypernet = SharedWeightsHyperNetResNet(layers, widths=widths, code_dim=code_dim, shared_channels=shared,
                                               **sizes)
        w_encoder = WEncoder(int(decoder.num_ws), 3, w_encoder_widths, int(decoder.w_dim))
    with torch.no_grad():
        hyper = hypernet.shared_weight_hypernet
        hyper.w2.copy_(torch.randn(hyper.w2.shape, generator=generator) / hyper.z_dim ** 0.5)
        hyper.w1.copy_(torch.randn(hyper.w1.shape, generator=generator) / hyper.z_dim ** 0.5)
        hyper.b1.zero_()
        hyper.b2.zero_()
    hypernet.eval()
    _scale_heads(hypernet, offset_scale, generator)
    device = next(decoder.parameters()).device
    state = {k: v.to(device) for k, v in hypernet.state_dict().items()}
    model = build_hyperstyle(state, decoder, w_encoder.eval().requires_grad_(False), None,
                             {"output_size": int(decoder.img_resolution)}, path="untrained HyperStyle")
    model.notes = [f"untrained HyperStyle (seeded random weights, seed {seed}): its offsets do not fit the image"]
    return model
