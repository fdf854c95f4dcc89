"""Write pSp / e4e / ReStyle checkpoints in their released on-disk layout.

Layout (A.2 of the encoder spec): a torch.save zip of `{'state_dict': {encoder.*, decoder.*},
'opts': <plain dict = vars(argparse.Namespace)>, 'latent_avg': [n_styles, 512]}`; pSp stores
`latent_avg` only when trained with `start_from_latent_avg`. The opts keys are the ones each
project's `train_options.py` defines (plus `device`, which the coaches set before saving).
"""
from __future__ import annotations

import os
from typing import Any, Optional, Union

import torch

from name_seeded import latent_avg as seeded_latent_avg
from name_seeded import name_seeded_like
from writers.rosinality import rosinality_state_from_official

ENCODER_TYPE = {"psp": "GradualStyleEncoder", "e4e": "Encoder4Editing", "restyle_psp": "BackboneEncoder",
                "restyle_e4e": "ProgressiveBackboneEncoder"}

_COMMON = {"exp_dir": "experiments/run", "batch_size": 8, "test_batch_size": 4, "workers": 8, "test_workers": 4,
           "learning_rate": 0.0001, "optim_name": "ranger", "train_decoder": False, "lpips_lambda": 0.8,
           "id_lambda": 0.1, "l2_lambda": 1.0, "stylegan_weights": "pretrained_models/stylegan2-ffhq-config-f.pt",
           "checkpoint_path": None, "max_steps": 500000, "image_interval": 100, "board_interval": 50,
           "val_interval": 1000, "save_interval": None, "device": "cuda:0"}


def encoder_opts(kind: str, output_size: int, dataset_type: str = "ffhq_encode",
                 encoder_type: Optional[str] = None, **overrides: Any) -> dict:
    """The training-options dict a checkpoint of `kind` stores (e4e names the size `stylegan_size`)."""
    opts = dict(_COMMON, dataset_type=dataset_type, encoder_type=encoder_type or ENCODER_TYPE[kind])
    if kind == "psp":
        opts.update(input_nc=3, label_nc=0, output_size=output_size, start_from_latent_avg=True, learn_in_w=False,
                    w_norm_lambda=0.0, lpips_lambda_crop=0.0, l2_lambda_crop=0.0, resize_factors=None)
    elif kind == "e4e":
        opts.update(stylegan_size=output_size, start_from_latent_avg=True, lpips_type="alex",
                    w_discriminator_lambda=0.1, w_discriminator_lr=2e-5, r1=10, d_reg_every=16, use_w_pool=True,
                    w_pool_size=50, delta_norm=2, delta_norm_lambda=2e-4, progressive_steps=None,
                    progressive_start=20000, progressive_step_every=2000, save_training_data=False,
                    sub_exp_dir=None, keep_optimizer=False, resume_training_from_ckpt=None, update_param_list=None)
    elif kind in ("restyle_psp", "restyle_e4e"):
        opts.update(input_nc=6, output_size=output_size, start_from_latent_avg=True, w_norm_lambda=0.0,
                    moco_lambda=0.5, n_iters_per_batch=5)
        if kind == "restyle_e4e":
            opts.update(w_discriminator_lambda=0.1, progressive_start=20000, progressive_step_every=2000,
                        delta_norm=2, delta_norm_lambda=2e-4, use_w_pool=True, w_pool_size=50)
    else:
        raise ValueError(f"unknown encoder checkpoint kind {kind!r}")
    opts.update(overrides)
    return opts


def write_encoder_pt(path: Union[str, "os.PathLike[str]"], encoder_state: dict[str, torch.Tensor],
                     decoder_state: dict[str, torch.Tensor], opts: dict,
                     latent_avg: Optional[torch.Tensor] = None) -> None:
    """torch.save the released layout from bare encoder / rosinality decoder state dicts."""
    sd = {f"encoder.{k}": v for k, v in encoder_state.items()}
    sd.update({f"decoder.{k}": v for k, v in decoder_state.items()})
    ckpt: dict[str, Any] = {"state_dict": sd, "opts": dict(opts)}
    if latent_avg is not None:
        ckpt["latent_avg"] = latent_avg
    torch.save(ckpt, os.fspath(path))


def tiny_encoder_state(encoder_type: str, input_nc: int, n_styles: int, style_dim: int,
                       widths: tuple[int, ...] = (16, 32, 64, 128)) -> dict[str, torch.Tensor]:
    """A narrow copy of a released encoder (same key names and depth), filled by the name-seeded rule."""
    from stylecore.networks.encoders import ENCODER_CLASSES

    module = ENCODER_CLASSES[encoder_type](input_nc=input_nc, n_styles=n_styles, widths=widths,
                                           style_dim=style_dim)
    prefixed = {f"encoder.{k}": v for k, v in module.state_dict().items()}
    return {k[len("encoder."):]: v for k, v in name_seeded_like(prefixed).items()}


def write_tiny_encoder_pt(path: Union[str, "os.PathLike[str]"], kind: str, G_official: torch.nn.Module,
                          encoder_type: Optional[str] = None, dataset_type: str = "ffhq_encode",
                          latent_avg: Union[str, torch.Tensor, None] = "seeded", **opts_overrides: Any) -> dict:
    """A small checkpoint of `kind` around the official generator `G_official`; returns the opts written."""
    encoder_type = encoder_type or ENCODER_TYPE[kind]
    n_styles, w_dim = int(G_official.num_ws), int(G_official.w_dim)
    input_nc = 6 if kind.startswith("restyle") else 3
    enc = tiny_encoder_state(encoder_type, input_nc, n_styles, w_dim)
    opts = encoder_opts(kind, int(G_official.img_resolution), dataset_type, encoder_type, **opts_overrides)
    if isinstance(latent_avg, str):
        latent_avg = seeded_latent_avg(n_styles, w_dim)
    write_encoder_pt(path, enc, rosinality_state_from_official(G_official), opts, latent_avg)
    return opts
