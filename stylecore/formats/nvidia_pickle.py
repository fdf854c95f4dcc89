"""Official NVIDIA network pickles (StyleGAN2-ADA-PyTorch, StyleGAN3 code base) -> ParsedCheckpoint.

Works on the already safely-unpickled object (see safe_pickle): persistence records are data.
The generator's init kwargs are written out explicitly from the records' resolved attributes,
because the two code bases have different defaults (reference/stylegan_formats.md §1.6): a
kwarg left implicit would silently take whatever default our network happens to have.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import numpy as np
import torch

from stylecore.formats.errors import CheckpointError
from stylecore.formats.parsed import ParsedCheckpoint
from stylecore.formats.safe_pickle import PersistentRecord
from stylecore.formats.snapshot import child_record, flatten_state_dict, generator_record

__all__ = ["parse_official_pickle", "identify_architecture", "to_plain"]

_TOP_KEYS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
ADA = "StyleGAN2-ADA-PyTorch"
SG3_CODEBASE = "StyleGAN3 code base"


def to_plain(value: Any, what: str = "value") -> Any:
    """numpy scalars/arrays, EasyDicts and tuples -> plain, JSON-serialisable Python values."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): to_plain(v, f"{what}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v, what) for v in value]
    if isinstance(value, torch.Tensor) and value.numel() <= 64:
        return value.tolist()
    raise ValueError(f"{what} holds a {type(value).__name__}, which is not a plain configuration value")


def identify_architecture(G: PersistentRecord, path: str) -> str:
    """'stylegan2' or 'stylegan3', from the synthesis structure first, the source docstring second."""
    synth = G.modules.get("synthesis")
    if isinstance(synth, PersistentRecord):
        if "layer_names" in synth.state and "input" in synth.modules:
            return "stylegan3"
        if "block_resolutions" in synth.state and "b4" in synth.modules:
            return "stylegan2"
    doc = G.module_doc
    if "Alias-Free" in doc:
        return "stylegan3"
    if "Analyzing and Improving" in doc or (G.module_has_bom and not doc):
        return "stylegan2"
    raise CheckpointError(path, f"unrecognised generator in the pickle (class {G.class_name!r}, module "
                                f"docstring {doc[:80]!r}): expected a StyleGAN2 or StyleGAN3 generator")


def _flavour(G: PersistentRecord, stored: Mapping, architecture: str) -> str:
    if architecture == "stylegan3":
        return SG3_CODEBASE
    if "synthesis_kwargs" in stored:
        return ADA
    if "Analyzing and Improving" in G.module_doc:
        return SG3_CODEBASE
    synth = G.modules.get("synthesis")
    if isinstance(synth, PersistentRecord) and "num_fp16_res" in synth.state:
        return SG3_CODEBASE
    return ADA


def _attr(record: PersistentRecord, name: str, *fallbacks: Any) -> Any:
    """A resolved attribute, else the first fallback that is not `_MISSING`."""
    if name in record.state:
        return record.state[name]
    for value in fallbacks:
        if value is not _MISSING:
            return value
    return _MISSING


_MISSING = object()


def _weight_shape(record: PersistentRecord, name: str = "weight") -> Optional[tuple[int, ...]]:
    params = record.state.get("_parameters") or {}
    value = params.get(name) if isinstance(params, Mapping) else None
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def _mapping_kwargs(G: PersistentRecord, stored: Mapping, c_dim: int, architecture: str,
                    flavour: str, path: str) -> dict[str, Any]:
    mapping = child_record(G, "mapping", path)
    stored_m = dict(stored.get("mapping_kwargs") or {})
    out = dict(stored_m)
    num_layers = _attr(mapping, "num_layers", stored_m.get("num_layers", _MISSING))
    if num_layers is _MISSING:
        raise CheckpointError(path, "the mapping network record does not say how many layers it has")
    out["num_layers"] = num_layers
    default_beta = 0.995 if flavour == ADA else 0.998
    out["w_avg_beta"] = _attr(mapping, "w_avg_beta", stored_m.get("w_avg_beta", _MISSING), default_beta)
    fc0 = mapping.modules.get("fc0")
    if isinstance(fc0, PersistentRecord):
        lr = _attr(fc0, "bias_gain", stored_m.get("lr_multiplier", _MISSING))
        if lr is not _MISSING:
            out["lr_multiplier"] = lr
        if architecture == "stylegan2":
            activation = _attr(fc0, "activation", stored_m.get("activation", _MISSING))
            if activation is not _MISSING:
                out["activation"] = activation
            shape = _weight_shape(fc0)
            if shape is not None and int(num_layers) > 1:
                out["layer_features"] = shape[0]
    if architecture == "stylegan2" and c_dim > 0:
        embed = mapping.modules.get("embed")
        shape = _weight_shape(embed) if isinstance(embed, PersistentRecord) else None
        if shape is not None:
            out["embed_features"] = shape[0]
    return out


def _infer_channel_base_max(synth: PersistentRecord, resolutions: list[int]) -> Optional[tuple[int, int]]:
    """channel_base/max reproducing the stored block widths, for kwargs that omit them."""
    channels: dict[int, int] = {}
    for res in resolutions:
        block = synth.modules.get(f"b{res}")
        conv1 = block.modules.get("conv1") if isinstance(block, PersistentRecord) else None
        shape = _weight_shape(conv1) if isinstance(conv1, PersistentRecord) else None
        if shape is None:
            return None
        channels[res] = shape[0]
    candidates = [(32768, 512)]
    cmax = max(channels.values())
    narrow = [ch * res for res, ch in channels.items() if ch < cmax]
    candidates.append((max(narrow) if narrow else cmax * max(resolutions), cmax))
    for base, top in candidates:
        if all(min(base // r, top) == ch for r, ch in channels.items()):
            return base, top
    return None


def _stylegan2_kwargs(G: PersistentRecord, stored: dict, flavour: str, path: str) -> dict[str, Any]:
    synth = child_record(G, "synthesis", path)
    syn_stored = dict(stored.pop("synthesis_kwargs", None) or {})
    syn_stored.update({k: v for k, v in stored.items() if k not in _TOP_KEYS and k != "mapping_kwargs"})
    out: dict[str, Any] = {k: _attr(G, k, stored.get(k, _MISSING)) for k in _TOP_KEYS}
    missing = [k for k, v in out.items() if v is _MISSING]
    if missing:
        raise CheckpointError(path, f"the generator record lacks {missing}")
    out["mapping_kwargs"] = _mapping_kwargs(G, stored, int(out["c_dim"]), "stylegan2", flavour, path)
    out.update(syn_stored)

    resolutions = [int(r) for r in (synth.attr("block_resolutions") or [])]
    blocks = [synth.modules.get(f"b{r}") for r in resolutions]
    if not resolutions or not all(isinstance(b, PersistentRecord) for b in blocks):
        raise CheckpointError(path, "the StyleGAN2 synthesis record lacks its blocks b4 ... bR")
    if "channel_base" not in out or "channel_max" not in out:
        inferred = _infer_channel_base_max(synth, resolutions)
        base, top = inferred if inferred else (32768, 512)
        out.setdefault("channel_base", base)
        out.setdefault("channel_max", top)
    if "num_fp16_res" in synth.state:  # stored by the SG3 code base
        out["num_fp16_res"] = synth.state["num_fp16_res"]
    else:  # ADA: the fp16 blocks are the top num_fp16_res resolutions
        out["num_fp16_res"] = sum(bool(b.attr("use_fp16", False)) for b in blocks)

    first = blocks[0]
    layer = first.modules.get("conv1")
    if isinstance(layer, PersistentRecord):
        default_clamp = None if flavour == ADA else 256
        out["conv_clamp"] = _attr(layer, "conv_clamp", syn_stored.get("conv_clamp", _MISSING), default_clamp)
        if "use_noise" in layer.state and (layer.state["use_noise"] is not True or "use_noise" in syn_stored):
            out["use_noise"] = layer.state["use_noise"]
        if "activation" in layer.state and (layer.state["activation"] != "lrelu" or "activation" in syn_stored):
            out["activation"] = layer.state["activation"]
        shape = _weight_shape(layer)
        if shape is not None and (shape[-1] != 3 or "kernel_size" in syn_stored):
            out["kernel_size"] = shape[-1]
    out["architecture"] = _attr(first, "architecture", syn_stored.get("architecture", _MISSING), "skip")
    if "fused_modconv_default" in first.state:
        out["fused_modconv_default"] = first.state["fused_modconv_default"]
    return out


def _stylegan3_kwargs(G: PersistentRecord, stored: dict, path: str) -> dict[str, Any]:
    synth = child_record(G, "synthesis", path)
    out: dict[str, Any] = {k: v for k, v in stored.items() if k != "mapping_kwargs"}
    for key in _TOP_KEYS:
        value = _attr(G, key, stored.get(key, _MISSING))
        if value is _MISSING:
            raise CheckpointError(path, f"the generator record lacks {key}")
        out[key] = value
    out["mapping_kwargs"] = _mapping_kwargs(G, stored, int(out["c_dim"]), "stylegan3", SG3_CODEBASE, path)
    for key in ("num_layers", "num_critical", "margin_size", "output_scale", "num_fp16_res"):
        if key in synth.state:
            out[key] = synth.state[key]
    names = synth.attr("layer_names") or []
    layer = synth.modules.get(names[0]) if names else None
    if not isinstance(layer, PersistentRecord):
        raise CheckpointError(path, "the StyleGAN3 synthesis record lacks its layers")
    for key in ("conv_clamp", "magnitude_ema_beta"):
        if key in layer.state:
            out[key] = layer.state[key]
    if not layer.attr("is_torgb", False) and "conv_kernel" in layer.state:
        out["conv_kernel"] = layer.state["conv_kernel"]
    if not layer.attr("is_critically_sampled", True) and "down_radial" in layer.state:
        out["use_radial_filters"] = bool(layer.state["down_radial"])
    out.setdefault("channel_base", 32768)
    out.setdefault("channel_max", 512)
    return out


def parse_official_pickle(obj: Any, path: str) -> ParsedCheckpoint:
    """Pick G_ema (else G), flatten its tensors and write out explicit init kwargs."""
    key, G = generator_record(obj, path)
    architecture = identify_architecture(G, path)
    try:
        stored = to_plain(G.state.get("_init_kwargs") or {}, "G._init_kwargs")
        stored = stored if isinstance(stored, dict) else {}
        flavour = _flavour(G, stored, architecture)
        if architecture == "stylegan2":
            kwargs = _stylegan2_kwargs(G, dict(stored), flavour, path)
        else:
            kwargs = _stylegan3_kwargs(G, dict(stored), path)
        kwargs = to_plain(kwargs, "init kwargs")
    except ValueError as exc:
        raise CheckpointError(path, f"unreadable generator configuration: {exc}") from None
    state = flatten_state_dict(G, path)
    return ParsedCheckpoint(architecture=architecture, init_kwargs=kwargs, state_dict=state,
                            source=f"official pickle ({flavour}, {key})")
