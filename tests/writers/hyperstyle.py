"""Write HyperStyle checkpoints in their released on-disk layout, small.

Layout (A.2 of the encoder spec, and yuval-alaluf/hyperstyle's coach): `hyperstyle_ffhq.pt` is a
torch.save zip of `{'state_dict': {hypernet.*, decoder.*}, 'opts': <plain dict>, 'latent_avg':
[n_styles, 512], 'global_step', 'best_val_loss'}` (the W encoder's keys stripped); the shared
hypernetwork's tensors appear under `hypernet.shared_weight_hypernet.*` and under every hyper
block's `hypernet.refinement_blocks.{i}.hypernet.*`, one storage for all. `faces_w_encoder.pt` is a
pSp-style file with `encoder.*` (WEncoder) and `decoder.*`. Both carry the PT4 pickle globals.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Union

import torch

from name_seeded import latent_avg as seeded_latent_avg
from name_seeded import name_seeded_like
from writers.encoders import encoder_opts, write_encoder_pt
from writers.rosinality import rosinality_state_from_official

HYPERNET_WIDTHS = (8, 8, 16, 16)  # narrow ResNet-34 trunk
W_ENCODER_WIDTHS = (16, 16, 32, 32)  # IR-SE units need 16+ channels (SE reduction 16)
FACES_LAYERS = "0,2,3,5,6,8,9,11,12,14,15,17,18,20,21,23,24"  # the released faces model's layers_to_tune


def hyperstyle_opts(output_size: int, layers_to_tune: str = FACES_LAYERS, **overrides: Any) -> dict:
    """The options dict a HyperStyle training run saves (train_options.py, plus `device`)."""
    opts = dict(encoder_opts("restyle_psp", output_size), dataset_type="ffhq_hypernet",
                encoder_type="SharedWeightsHyperNetResNet", input_nc=6, n_iters_per_batch=5, load_w_encoder=True,
                w_encoder_checkpoint_path="pretrained_models/faces_w_encoder.pt", w_encoder_type="WEncoder",
                layers_to_tune=layers_to_tune, max_val_batches=150)
    opts.pop("start_from_latent_avg")
    opts.update(overrides)
    return opts


def _seeded(module: torch.nn.Module, prefix: str) -> "OrderedDict[str, torch.Tensor]":
    prefixed = OrderedDict((f"{prefix}{k}", v) for k, v in module.state_dict().items())
    return OrderedDict((k[len(prefix):], v) for k, v in name_seeded_like(prefixed).items())


def tiny_hypernet_state(G_official: torch.nn.Module, layers_to_tune: str, code_dim: int = 32,
                        inner: int = 16) -> "OrderedDict[str, torch.Tensor]":
    """A narrow SharedWeightsHyperNetResNet for `G_official` (same key names and depth), name-seeded,
    with the shared hypernetwork's aliases holding the very same tensors."""
    from stylecore.networks.hyperstyle import SharedWeightsHyperNetResNet, layer_shapes

    tuned = {int(i) for i in layers_to_tune.split(",")}
    shapes = layer_shapes(G_official.synthesis)
    shared = shapes[0].out_channels
    net = SharedWeightsHyperNetResNet([s if i in tuned else None for i, s in enumerate(shapes)],
                                      widths=HYPERNET_WIDTHS, code_dim=code_dim, shared_channels=shared,
                                      hyper_inner=inner, refine_inner=inner)
    state = _seeded(net, "hypernet.")
    for key in state:
        if ".hypernet." in key:
            state[key] = state[f"shared_weight_hypernet.{key.rsplit('.', 1)[1]}"]
    return state


def tiny_w_encoder_state(G_official: torch.nn.Module) -> "OrderedDict[str, torch.Tensor]":
    from stylecore.networks.hyperstyle import WEncoder

    return _seeded(WEncoder(int(G_official.num_ws), 3, W_ENCODER_WIDTHS, int(G_official.w_dim)), "encoder.")


def write_hyperstyle_pt(path: Union[str, "os.PathLike[str]"], hypernet_state: dict[str, torch.Tensor],
                        decoder_state: dict[str, torch.Tensor], opts: dict, latent_avg: torch.Tensor) -> None:
    sd = OrderedDict((f"hypernet.{k}", v) for k, v in hypernet_state.items())
    sd.update((f"decoder.{k}", v) for k, v in decoder_state.items())
    torch.save({"state_dict": sd, "opts": dict(opts), "latent_avg": latent_avg, "global_step": 500000,
                "best_val_loss": 0.25}, os.fspath(path))


def write_tiny_hyperstyle(folder: Union[str, "os.PathLike[str]"], G_official: torch.nn.Module,
                          layers_to_tune: str, **opts_overrides: Any) -> tuple[Path, Path]:
    """`hyperstyle_ffhq.pt` and `faces_w_encoder.pt` side by side in `folder`, as the Hub stores them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    size, n_styles, w_dim = int(G_official.img_resolution), int(G_official.num_ws), int(G_official.w_dim)
    decoder = rosinality_state_from_official(G_official)
    hyper_path, w_path = folder / "hyperstyle_ffhq.pt", folder / "faces_w_encoder.pt"
    write_hyperstyle_pt(hyper_path, tiny_hypernet_state(G_official, layers_to_tune), decoder,
                        hyperstyle_opts(size, layers_to_tune, **opts_overrides), seeded_latent_avg(n_styles, w_dim))
    w_opts = dict(encoder_opts("psp", size), encoder_type="WEncoder")
    write_encoder_pt(w_path, tiny_w_encoder_state(G_official), decoder, w_opts,
                     torch.zeros(n_styles, w_dim))
    return hyper_path, w_path
