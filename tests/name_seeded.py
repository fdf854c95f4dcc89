"""The `name_seeded_v2` init of the parity fixtures (README-encoders.md): every tensor from its key name.

Shared by the rosinality and encoder parity tests, and used by the encoder writers to fill small
test checkpoints with well-scaled, reproducible weights.
"""
from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping

import numpy as np
import torch

_TAPS = torch.tensor([1.0, 3.0, 3.0, 1.0])
_PRELU = re.compile(r"^encoder\.(input_layer\.2|body\.\d+\.res_layer\.2|relu)\.weight$")
_MAPPING = re.compile(r"(^|\.)style\.\d+\.weight$")
MAPPING_LR_MUL = 0.01


def category(key: str, shape: Iterable[int], keys: Iterable[str] = (), dtype: torch.dtype = torch.float32) -> str:
    """The init category of a key, decided from its name and shape (the README's key-name rule)."""
    shape = list(shape)
    if not dtype.is_floating_point:
        return "int_unchanged"
    if key.endswith(".kernel"):
        return "fir_kernel_unchanged"
    if key.endswith("running_var"):
        return "running_var"
    if key.endswith("running_mean"):
        return "running_mean"
    if len(shape) == 1 and key.endswith(".weight") and key[:-len("weight")] + "running_var" in set(keys):
        return "bn_weight"
    if _PRELU.match(key):
        return "prelu_weight"
    if "noises." in key:
        return "noise_buffer"
    if _MAPPING.search(key):
        return "equalized_weight_lrmul"
    if (key.endswith("modulation.weight") or re.search(r"styles\.\d+\.linear\.weight$", key)
            or (len(shape) == 5 and key.endswith("conv.weight")) or key.endswith("input.input")):
        return "equalized_weight"
    return "matrix" if len(shape) >= 2 else "vector"


def seeded_value(key: str, shape: Iterable[int], init: str, lr_mul: float = MAPPING_LR_MUL) -> torch.Tensor:
    """The tensor for one key: randn seeded by crc32(key), shaped by its category."""
    shape = list(shape)
    if init == "int_unchanged":
        return torch.zeros(shape, dtype=torch.int64)
    if init == "fir_kernel_unchanged":
        return torch.outer(_TAPS, _TAPS) / 64 * 4
    r = torch.randn(shape, generator=torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8"))),
                    dtype=torch.float32)
    if init == "running_var":
        return 1 + 0.1 * r.abs()
    if init == "running_mean":
        return 0.1 * r
    if init == "bn_weight":
        return 1 + 0.1 * r
    if init == "prelu_weight":
        return 0.25 + 0.05 * r
    if init in ("noise_buffer", "equalized_weight"):
        return r
    if init == "equalized_weight_lrmul":
        return r / lr_mul
    if init == "matrix":
        return r / np.sqrt(r.numel() / shape[0])
    if init == "vector":
        return 0.1 * r
    raise ValueError(f"unknown name_seeded_v2 init category {init!r}")


def name_seeded(records: list[dict]) -> dict[str, torch.Tensor]:
    """State dict from a fixture json's `state_dict` records (key, shape, init, lr_mul), in order."""
    return {rec["key"]: seeded_value(rec["key"], rec["shape"], rec["init"], rec.get("lr_mul") or MAPPING_LR_MUL)
            for rec in records}


def name_seeded_like(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The rule applied to any state dict (categories from key names), keeping key order and dtypes."""
    keys = list(state)
    out = {}
    for key, t in state.items():
        out[key] = seeded_value(key, t.shape, category(key, t.shape, keys, t.dtype)).to(t.dtype)
    return out


def latent_avg(n_styles: int, dim: int = 512) -> torch.Tensor:
    """The fixtures' latent_avg: randn((n_styles, dim)) seeded by crc32(b'latent_avg')."""
    return torch.randn((n_styles, dim), generator=torch.Generator().manual_seed(zlib.crc32(b"latent_avg")))
