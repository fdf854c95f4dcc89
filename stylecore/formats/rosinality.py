"""rosinality/stylegan2-pytorch checkpoints (also pSp / e4e decoders) -> official StyleGAN2 form.

The rosinality Generator computes the same function as the official 'skip' StyleGAN2 generator,
so its weights are renamed into the official network instead of keeping a second network copy.
Files are read with `torch.load(weights_only=True)`: nothing stored in them is executed.
"""
from __future__ import annotations

import argparse
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from typing import Any, Optional, Union

import numpy as np
import torch

from stylecore.formats.archive import check_zip_members
from stylecore.formats.errors import CheckpointError, UnsafeCheckpointError
from stylecore.formats.parsed import ParsedCheckpoint
from stylecore.formats.tf_pickle import filter_buffer, sg2_filter_buffers

RESAMPLE_FILTER = [1.0, 3.0, 3.0, 1.0]
LR_MLP = 0.01  # rosinality's default `lr_mlp`; not recoverable from the weights
W_AVG_SAMPLES = 10000
W_AVG_SEED = 123
NOISE_SEED = 0

_LAYER_RE = re.compile(r"^(conv1|convs\.(\d+))\.(conv\.weight|conv\.modulation\.weight|conv\.modulation\.bias|"
                       r"noise\.weight|activate\.bias|conv\.blur\.kernel)$")
_RGB_RE = re.compile(r"^(to_rgb1|to_rgbs\.(\d+))\.(conv\.weight|conv\.modulation\.weight|conv\.modulation\.bias|"
                     r"bias|upsample\.kernel)$")
_LAYER_PARAMS = {"conv.weight": "weight", "conv.modulation.weight": "affine.weight",
                 "conv.modulation.bias": "affine.bias", "noise.weight": "noise_strength", "activate.bias": "bias",
                 "bias": "bias"}


def _reason(text: str) -> str:
    """The informative line of a torch.load error (skipping its generic weights_only preamble)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Weights only load failed", "Check the documentation"))]
    return (useful or lines or ["unknown error"])[0][:300]


def load_torch_checkpoint(path: str) -> Any:
    """torch.load as data only; `argparse.Namespace` (training `args`) is the one extra global allowed.

    The zip container is checked first: torch stores tensors uncompressed, so members expanding far
    beyond the file's size, or names leaving the archive, mark a hostile file."""
    try:
        check_zip_members(path, max_expanded=4 * os.path.getsize(path) + (1 << 20))
    except ValueError as exc:
        raise CheckpointError(path, str(exc)) from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise CheckpointError(path, f"corrupt zip container ({exc})") from None
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        m = re.search(r"GLOBAL\s+([\w.]+)", text)
        if m:
            raise UnsafeCheckpointError(path, m.group(1), "torch checkpoints are loaded with weights_only=True; "
                                                          "only tensors and plain containers are allowed") from None
        raise CheckpointError(path, f"not a readable torch checkpoint ({_reason(text)})") from None
    except OSError as exc:
        raise CheckpointError(path, f"cannot read the file ({exc.strerror or exc})") from None
    except (EOFError, RuntimeError, ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        raise CheckpointError(path, f"corrupt or truncated torch checkpoint ({type(exc).__name__}: "
                                    f"{_reason(str(exc))})") from None


def _is_generator_dict(d: Any) -> bool:
    return isinstance(d, Mapping) and "input.input" in d and "style.1.weight" in d


def _find_generator(ckpt: Any, path: str) -> tuple[dict[str, torch.Tensor], Optional[torch.Tensor], str]:
    """(rosinality generator state dict, latent_avg or None, layout name) of a loaded checkpoint."""
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(path, f"a torch checkpoint holding a {type(ckpt).__name__} is not a known "
                                    "generator layout")
    inner = ckpt.get("state_dict")
    if isinstance(inner, Mapping) and any(str(k).startswith("decoder.") for k in inner):
        g = {k[len("decoder."):]: v for k, v in inner.items() if str(k).startswith("decoder.")}
        return g, ckpt.get("latent_avg"), "pSp/e4e checkpoint (decoder)"
    if "g_ema" in ckpt:
        kind = "training" if "g" in ckpt or "args" in ckpt else "convert_weight"
        layout = f"rosinality {kind} checkpoint (g_ema)"
        return dict(ckpt["g_ema"]), ckpt.get("latent_avg"), layout
    if _is_generator_dict(ckpt):
        return dict(ckpt), None, "bare rosinality Generator state dict"
    keys = ", ".join(repr(k) for k in list(ckpt)[:8])
    raise CheckpointError(path, f"unknown torch checkpoint layout (top-level keys {keys}); expected rosinality "
                                f"{{'g_ema', 'latent_avg'}}, a training checkpoint or a pSp/e4e "
                                f"{{'state_dict': decoder.*}}")


def _shape(g: Mapping[str, torch.Tensor], key: str, path: str) -> tuple[int, ...]:
    if key not in g:
        raise CheckpointError(path, f"rosinality generator key {key!r} is missing")
    return tuple(g[key].shape)


def infer_channels(g: Mapping[str, torch.Tensor], path: str) -> tuple[int, int, int, int, dict[int, int]]:
    """(size, style_dim, n_mlp, w_dim, channels per resolution) from the key shapes alone."""
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in g:
        n_mlp += 1
    if n_mlp == 0:
        raise CheckpointError(path, "no mapping layers (style.1.weight) in the rosinality generator")
    style_dim = _shape(g, "style.1.weight", path)[1]
    w_dim = _shape(g, f"style.{n_mlp}.weight", path)[0]
    n_rgbs = 0
    while f"to_rgbs.{n_rgbs}.conv.weight" in g:
        n_rgbs += 1
    size = 2 ** (n_rgbs + 2)
    channels = {4: _shape(g, "input.input", path)[1]}
    for j in range(n_rgbs):
        channels[2 ** (j + 3)] = _shape(g, f"convs.{2 * j}.conv.weight", path)[1]
    return size, style_dim, n_mlp, w_dim, channels


def derive_channel_base_max(channels: Mapping[int, int], path: str) -> tuple[int, int]:
    """channel_base / channel_max that reproduce `min(base // res, max)` for every block width.

    Standard rosinality widths are base 16384·channel_multiplier and max 512; other widths (small
    test models, forks) are derived from the shapes rather than assumed.
    """
    cmax = max(channels.values())
    candidates = [16384, 32768] + sorted({c * r for r, c in channels.items()})
    for base in candidates:
        if all(min(base // r, cmax) == c for r, c in channels.items()):
            return base, cmax
    raise CheckpointError(path, f"channel widths {dict(sorted(channels.items()))} do not follow the StyleGAN2 rule "
                                f"min(channel_base // res, channel_max)")


def _block_of(index: int) -> tuple[int, str]:
    """convs.{k} -> (resolution, 'conv0'|'conv1')."""
    return 2 ** (index // 2 + 3), ("conv0" if index % 2 == 0 else "conv1")


def _noise_owner(index: int) -> str:
    """noises.noise_{n} -> official layer prefix (n = 0 is b4.conv1, then conv0/conv1 per block)."""
    if index == 0:
        return "synthesis.b4.conv1"
    res, layer = _block_of(index - 1)
    return f"synthesis.b{res}.{layer}"


def _check_kernel(value: torch.Tensor, key: str, path: str) -> None:
    """Blur kernels are recomputed; refuse files whose kernel is not the standard [1,3,3,1]."""
    expected = filter_buffer(RESAMPLE_FILTER) * 4
    if tuple(value.shape) != (4, 4) or not torch.allclose(value.float(), expected, atol=1e-6):
        raise CheckpointError(path, f"{key} is not the standard [1,3,3,1] blur kernel; "
                                    "custom blur kernels are unsupported")


def convert_rosinality_state(g: Mapping[str, torch.Tensor], path: str = "") -> dict[str, torch.Tensor]:
    """Rename rosinality Generator tensors to official StyleGAN2 names and shapes (§5.4, reversed)."""
    out: dict[str, torch.Tensor] = {}
    unexpected = []
    for key, value in g.items():
        value = value.detach().to(torch.float32) if value.is_floating_point() else value
        m_style = re.fullmatch(r"style\.(\d+)\.(weight|bias)", key)
        m_layer = _LAYER_RE.fullmatch(key)
        m_rgb = _RGB_RE.fullmatch(key)
        m_noise = re.fullmatch(r"noises\.noise_(\d+)", key)
        if m_style and int(m_style.group(1)) >= 1:
            out[f"mapping.fc{int(m_style.group(1)) - 1}.{m_style.group(2)}"] = value
        elif key == "input.input":
            out["synthesis.b4.const"] = value[0]
        elif m_layer:
            if m_layer.group(3) == "conv.blur.kernel":
                _check_kernel(value, key, path)
                continue
            if m_layer.group(1) == "conv1":
                prefix = "synthesis.b4.conv1"
            else:
                res, layer = _block_of(int(m_layer.group(2)))
                prefix = f"synthesis.b{res}.{layer}"
            param = m_layer.group(3)
            if param == "conv.weight":
                value = value[0]
            elif param == "noise.weight":
                value = value.reshape([])
            out[f"{prefix}.{_LAYER_PARAMS[param]}"] = value
        elif m_rgb:
            if m_rgb.group(3) == "upsample.kernel":
                _check_kernel(value, key, path)
                continue
            res = 4 if m_rgb.group(1) == "to_rgb1" else 2 ** (int(m_rgb.group(2)) + 3)
            param = m_rgb.group(3)
            if param == "conv.weight":
                value = value[0]
            elif param == "bias":
                value = value.reshape(-1)
            out[f"synthesis.b{res}.torgb.{_LAYER_PARAMS[param]}"] = value
        elif m_noise:
            out[f"{_noise_owner(int(m_noise.group(1)))}.noise_const"] = value.reshape(value.shape[-2:])
        else:
            unexpected.append(key)
    if unexpected:
        raise CheckpointError(path, f"unexpected keys for a rosinality Generator: {unexpected[:6]}"
                                    f"{f' (+{len(unexpected) - 6} more)' if len(unexpected) > 6 else ''}")
    return out


def _w_avg_from_latent_avg(latent_avg: Any, w_dim: int, path: str) -> tuple[torch.Tensor, str]:
    """latent_avg -> w_avg [w_dim]. A W+ form [n_styles, w_dim] (pSp/e4e) gives its row 0 when the
    rows repeat (as in released files), else the mean of the rows (the generator has one w_avg)."""
    if not isinstance(latent_avg, torch.Tensor) or latent_avg.shape[-1] != w_dim or latent_avg.ndim > 2:
        shape = list(latent_avg.shape) if isinstance(latent_avg, torch.Tensor) else type(latent_avg).__name__
        raise CheckpointError(path, f"latent_avg has shape {shape}; expected [{w_dim}] or [n_styles, {w_dim}]")
    latent_avg = latent_avg.detach().to(torch.float32)
    if latent_avg.ndim == 1:
        return latent_avg.clone(), "w_avg from latent_avg"
    if torch.equal(latent_avg, latent_avg[:1].expand_as(latent_avg)):
        return latent_avg[0].clone(), f"w_avg from latent_avg (row 0 of {latent_avg.shape[0]} equal rows)"
    w_avg = latent_avg.mean(dim=0)
    note = f"w_avg = mean of the {latent_avg.shape[0]} distinct latent_avg rows"
    return w_avg, note


def estimate_w_avg(state: Mapping[str, torch.Tensor], z_dim: int, w_dim: int, n_mlp: int,
                   samples: int = W_AVG_SAMPLES, seed: int = W_AVG_SEED) -> torch.Tensor:
    """Mean of the mapping output over a fixed-seed batch of z, for files that store no latent_avg."""
    from stylecore.networks.layers import MappingNetwork

    mapping = MappingNetwork(z_dim, 0, w_dim, num_ws=None, num_layers=n_mlp, lr_multiplier=LR_MLP, w_avg_beta=None)
    mapping.load_state_dict({k[len("mapping."):]: v for k, v in state.items() if k.startswith("mapping.fc")})
    z = torch.from_numpy(np.random.RandomState(seed).randn(samples, z_dim).astype(np.float32))
    with torch.no_grad():
        return mapping(z, None).mean(dim=0)


def parse_torch_checkpoint(path: Union[str, "os.PathLike[str]"]) -> ParsedCheckpoint:
    """Read a rosinality / pSp / e4e `.pt` file into official StyleGAN2 kwargs and state dict."""
    path = os.fspath(path)
    ckpt = load_torch_checkpoint(path)
    g, latent_avg, layout = _find_generator(ckpt, path)
    size, style_dim, n_mlp, w_dim, channels = infer_channels(g, path)
    if w_dim != style_dim:
        raise CheckpointError(path, f"mapping output width {w_dim} differs from style_dim {style_dim}")
    channel_base, channel_max = derive_channel_base_max(channels, path)
    state = convert_rosinality_state(g, path)

    notes = [layout]
    noise_keys = [k for k in sg2_filter_buffers(size, "skip", RESAMPLE_FILTER)
                  if k.endswith(("conv0.resample_filter", "conv1.resample_filter"))]
    missing_noise = [k.replace("resample_filter", "noise_const") for k in noise_keys
                     if k.replace("resample_filter", "noise_const") not in state]
    if missing_noise:  # very old rosinality files kept noise out of the state dict
        gen = torch.Generator().manual_seed(NOISE_SEED)
        for key in missing_noise:
            res = int(re.search(r"\.b(\d+)\.", key).group(1))
            state[key] = torch.randn([res, res], generator=gen)
        notes.append(f"no stored noise buffers: {len(missing_noise)} const noise maps drawn with seed {NOISE_SEED}")

    if latent_avg is not None:
        w_avg, note = _w_avg_from_latent_avg(latent_avg, w_dim, path)
    else:
        w_avg = estimate_w_avg(state, style_dim, w_dim, n_mlp)
        note = f"no latent_avg: w_avg estimated as the mean of {W_AVG_SAMPLES} mapped z (seed {W_AVG_SEED})"
    state["mapping.w_avg"] = w_avg
    notes.append(note)
    state.update(sg2_filter_buffers(size, "skip", RESAMPLE_FILTER))

    kwargs: dict[str, Any] = {
        "z_dim": style_dim,
        "c_dim": 0,
        "w_dim": w_dim,
        "img_resolution": size,
        "img_channels": 3,
        "channel_base": channel_base,
        "channel_max": channel_max,
        "num_fp16_res": 0,
        "conv_clamp": None,
        "architecture": "skip",
        "resample_filter": list(RESAMPLE_FILTER),
        "use_noise": True,
        "activation": "lrelu",
        "mapping_kwargs": {"num_layers": n_mlp, "embed_features": None, "layer_features": None,
                           "activation": "lrelu", "lr_multiplier": LR_MLP, "w_avg_beta": 0.995},
    }
    return ParsedCheckpoint(architecture="stylegan2", init_kwargs=kwargs, state_dict=state,
                            source=f"{path}: " + "; ".join(notes))
