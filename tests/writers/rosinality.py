"""Write an official StyleGAN2 network as rosinality / pSp `.pt` files (torch.save zip layouts).

Names follow §5.4 (official -> rosinality, no flips), with rosinality's 4x-scaled blur kernels and
[1, 1, r, r] noise buffers, in the key order rosinality's Generator uses.
"""
from __future__ import annotations

import argparse
import os
import re
from typing import Union

import torch

_KERNEL = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64 * 4


def _layer(out: dict, prefix: str, state: dict, src: str, blur: bool = False) -> None:
    """One official SynthesisLayer -> rosinality StyledConv keys."""
    out[f"{prefix}.conv.weight"] = state[f"{src}.weight"].unsqueeze(0)
    if blur:
        out[f"{prefix}.conv.blur.kernel"] = _KERNEL.clone()
    out[f"{prefix}.conv.modulation.weight"] = state[f"{src}.affine.weight"]
    out[f"{prefix}.conv.modulation.bias"] = state[f"{src}.affine.bias"]
    out[f"{prefix}.noise.weight"] = state[f"{src}.noise_strength"].reshape([1])
    out[f"{prefix}.activate.bias"] = state[f"{src}.bias"]


def _torgb(out: dict, prefix: str, state: dict, src: str, upsample: bool) -> None:
    out[f"{prefix}.bias"] = state[f"{src}.bias"].reshape(1, -1, 1, 1)
    if upsample:
        out[f"{prefix}.upsample.kernel"] = _KERNEL.clone()
    out[f"{prefix}.conv.weight"] = state[f"{src}.weight"].unsqueeze(0)
    out[f"{prefix}.conv.modulation.weight"] = state[f"{src}.affine.weight"]
    out[f"{prefix}.conv.modulation.bias"] = state[f"{src}.affine.bias"]


def rosinality_state_from_official(G_official: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Official StyleGAN2 ('skip', c_dim 0, 3 channels) state dict -> rosinality Generator state dict."""
    state = {k: v.detach().clone() for k, v in G_official.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    n_mlp = len([k for k in state if re.fullmatch(r"mapping\.fc\d+\.weight", k)])
    for i in range(n_mlp):
        out[f"style.{i + 1}.weight"] = state[f"mapping.fc{i}.weight"]
        out[f"style.{i + 1}.bias"] = state[f"mapping.fc{i}.bias"]
    out["input.input"] = state["synthesis.b4.const"].unsqueeze(0)
    _layer(out, "conv1", state, "synthesis.b4.conv1")
    _torgb(out, "to_rgb1", state, "synthesis.b4.torgb", upsample=False)
    resolutions = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"synthesis\.b(\d+)\.conv0\.weight", k)))
    for j, res in enumerate(resolutions):
        _layer(out, f"convs.{2 * j}", state, f"synthesis.b{res}.conv0", blur=True)
        _layer(out, f"convs.{2 * j + 1}", state, f"synthesis.b{res}.conv1")
    for j, res in enumerate(resolutions):
        _torgb(out, f"to_rgbs.{j}", state, f"synthesis.b{res}.torgb", upsample=True)
    noises = ["synthesis.b4.conv1"] + [f"synthesis.b{r}.{c}" for r in resolutions for c in ("conv0", "conv1")]
    for n, src in enumerate(noises):
        out[f"noises.noise_{n}"] = state[f"{src}.noise_const"].reshape(1, 1, *state[f"{src}.noise_const"].shape)
    return out


def write_rosinality_pt(path: Union[str, "os.PathLike[str]"], G_official: torch.nn.Module,
                        kind: str = "convert_weight", latent_avg: bool = True) -> None:
    """torch.save `G_official` as a rosinality 'convert_weight' / 'training' file or a pSp 'psp' file.

    Training checkpoints never carry latent_avg (as rosinality's train.py writes them).
    """
    g = rosinality_state_from_official(G_official)
    w_avg = G_official.mapping.w_avg.detach().clone()
    if kind == "convert_weight":
        ckpt: dict = {"g_ema": g}
        if latent_avg:
            ckpt["latent_avg"] = w_avg
    elif kind == "training":
        d = {"convs.0.0.weight": torch.randn(8, 3, 1, 1), "final_linear.1.bias": torch.zeros(1)}
        optim = {"state": {}, "param_groups": [{"lr": 0.002, "betas": (0.0, 0.99), "params": [0, 1]}]}
        size = int(G_official.img_resolution)
        args = argparse.Namespace(path="/data/lmdb", iter=800000, batch=16, size=size, r1=10.0, ckpt=None,
                                  lr=0.002, channel_multiplier=2, augment=False, latent=int(G_official.w_dim),
                                  n_mlp=sum(1 for k in g if re.fullmatch(r"style\.\d+\.weight", k)))
        ckpt = {"g": {k: v * 0.5 for k, v in g.items()}, "d": d, "g_ema": g, "g_optim": optim, "d_optim": optim,
                "args": args, "ada_aug_p": 0.0}
    elif kind == "psp":
        sd = {"encoder.input_layer.0.weight": torch.randn(8, 3, 3, 3),
              "encoder.input_layer.1.running_mean": torch.zeros(8),
              "encoder.styles.0.linear.weight": torch.randn(4, 4)}
        sd.update({f"decoder.{k}": v for k, v in g.items()})
        opts = {"encoder_type": "GradualStyleEncoder", "output_size": int(G_official.img_resolution),
                "start_from_latent_avg": latent_avg, "learn_in_w": False}
        ckpt = {"state_dict": sd, "opts": opts}
        if latent_avg:
            ckpt["latent_avg"] = w_avg.unsqueeze(0).repeat(int(G_official.num_ws), 1)
    else:
        raise ValueError(f"unknown rosinality checkpoint kind {kind!r}")
    torch.save(ckpt, os.fspath(path))
