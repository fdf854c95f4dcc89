"""StyleNeRF network pickles (facebook/stylenerf-ffhq-config-basic) -> ParsedCheckpoint.

The files are StyleGAN2-ADA-style snapshots: `torch_utils.persistence` records with embedded
source, whose stored constructor kwargs are OmegaConf containers (reference/encoders_clip_nerf.md
C.1). safe_pickle keeps those as inert stand-ins; here they become plain values. The released
checkpoints differ from the repository's yaml, so every setting is read from the stored kwargs,
and settings a file leaves out are taken from the weights' shapes or the records' attributes,
never from a default that might not match.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np
import torch

from stylecore.formats.errors import CheckpointError
from stylecore.formats.parsed import ParsedCheckpoint
from stylecore.formats.safe_pickle import ConfigStandIn, PersistentRecord
from stylecore.formats.snapshot import flatten_state_dict

__all__ = ["is_stylenerf", "parse_stylenerf", "config_to_plain"]

_MAX_DEPTH = 64
_TOP_KEYS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
_MAPPING_KEYS = ("num_layers", "embed_features", "layer_features", "activation", "lr_multiplier", "w_avg_beta")
_INTERPOLATION = re.compile(r"^\$\{([A-Za-z0-9_.]+)\}$")
_CAMERA_KEYS = ("range_u", "range_v", "range_radius", "depth_range", "fov", "bg_start", "ray_align_corner",
                "dists_normalized", "angular_camera", "gaussian_camera", "depth_transform")
_RENDERER_KEYS = ("n_ray_samples", "n_bg_samples", "hierarchical", "no_background", "abs_sigma",
                  "white_background", "sigma_type")


def is_stylenerf(G: PersistentRecord) -> bool:
    """True when the generator record's synthesis network is StyleNeRF's NeRF synthesis network."""
    synth = G.modules.get("synthesis")
    return isinstance(synth, PersistentRecord) and (synth.class_name == "NeRFSynthesisNetwork"
                                                     or "fg_nerf" in synth.modules)


def _omegaconf_kind(obj: ConfigStandIn) -> str:
    return obj.global_name.rsplit(".", 1)[-1]


def _root(obj: ConfigStandIn) -> ConfigStandIn:
    seen = 0
    while isinstance(obj.fields.get("_parent"), ConfigStandIn) and seen < _MAX_DEPTH:
        obj, seen = obj.fields["_parent"], seen + 1
    return obj


def config_to_plain(value: Any, what: str = "config", root: Optional[ConfigStandIn] = None, depth: int = 0) -> Any:
    """OmegaConf stand-ins, EasyDicts, numpy values and tuples -> plain JSON-like Python values.

    `${a.b}` interpolations are resolved against the configuration root they belong to.
    """
    if depth > _MAX_DEPTH:
        raise ValueError(f"{what} is nested too deeply")
    if isinstance(value, ConfigStandIn):
        kind = _omegaconf_kind(value)
        content = value.fields.get("_content") if kind in ("DictConfig", "ListConfig") else value.fields.get("_val")
        root = root or _root(value)
        if kind == "DictConfig" and isinstance(content, Mapping):
            return {str(k): config_to_plain(v, f"{what}.{k}", root, depth + 1) for k, v in content.items()}
        if kind == "ListConfig" and isinstance(content, (list, tuple)):
            return [config_to_plain(v, f"{what}[{i}]", root, depth + 1) for i, v in enumerate(content)]
        if kind in ("DictConfig", "ListConfig") and content is not None and not isinstance(content, str):
            raise ValueError(f"{what}: malformed {kind} content")
        return config_to_plain(content, what, root, depth + 1)
    if isinstance(value, str):
        match = _INTERPOLATION.match(value)
        if match is None:
            return value
        return config_to_plain(_lookup(root, match.group(1), what), what, root, depth + 1)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): config_to_plain(v, f"{what}.{k}", root, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [config_to_plain(v, what, root, depth + 1) for v in value]
    if isinstance(value, torch.Tensor) and value.numel() <= 64:
        return value.tolist()
    raise ValueError(f"{what} holds a {type(value).__name__}, which is not a plain configuration value")


def _lookup(root: Optional[ConfigStandIn], dotted: str, what: str) -> Any:
    node: Any = root
    for part in dotted.split("."):
        content = node.fields.get("_content") if isinstance(node, ConfigStandIn) else None
        if not isinstance(content, Mapping) or part not in content:
            raise ValueError(f"{what}: the interpolation ${{{dotted}}} cannot be resolved inside the stored config")
        node = content[part]
    return node


def _weight_shape(record: Optional[PersistentRecord], *names: str) -> Optional[tuple[int, ...]]:
    for name in names[:-1]:
        record = record.modules.get(name) if isinstance(record, PersistentRecord) else None
    params = record.state.get("_parameters") if isinstance(record, PersistentRecord) else None
    value = params.get(names[-1]) if isinstance(params, Mapping) else None
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def _record_attrs(record: Any, keys: tuple[str, ...], what: str) -> dict[str, Any]:
    """Configuration a non-Module record (synthesis.C / synthesis.V) resolved and stored on itself."""
    if not isinstance(record, PersistentRecord):
        return {}
    return {k: config_to_plain(record.state[k], f"{what}.{k}") for k in keys if k in record.state}


def _synthesis_kwargs(G: PersistentRecord, stored: dict, path: str) -> dict[str, Any]:
    synth = G.modules["synthesis"]
    out = dict(stored)
    for name, record_name, keys in (("camera_kwargs", "C", _CAMERA_KEYS), ("renderer_kwargs", "V", _RENDERER_KEYS)):
        merged = _record_attrs(synth.state.get(record_name), keys, f"synthesis.{record_name}")
        merged.update(out.get(name) or {})
        out[name] = merged
    if "rgb_out_dim" not in out:
        shape = _weight_shape(synth, "fg_nerf", "feat_out", "weight")
        if shape is not None:
            out["rgb_out_dim"] = shape[0]
    blocks = sorted((int(k[1:]), k) for k in synth.modules if re.fullmatch(r"b\d+", k))
    if "upsample_mode" not in out and blocks:
        adapter = _weight_shape(synth, blocks[0][1], "conv0", "adapter", "1", "weight")
        conv = _weight_shape(synth, blocks[0][1], "conv0", "weight")
        if adapter is None:
            out["upsample_mode"] = "default"
        elif conv is not None:
            out["upsample_mode"] = "pixelshuffle" if adapter[0] == 4 * conv[0] else "nn_cat"
    if "magnitude_ema_beta" not in out and blocks:
        conv1 = synth.modules[blocks[0][1]].modules.get("conv1")
        if isinstance(conv1, PersistentRecord) and "w_avg" in (conv1.state.get("_buffers") or {}):
            out["magnitude_ema_beta"] = conv1.state.get("magnitude_ema_beta", 0.999)
    if "kernel_size" not in out and blocks:
        shape = _weight_shape(synth, blocks[0][1], "conv1", "weight")
        if shape is not None:
            out["kernel_size"] = shape[-1]
    out.setdefault("module_name", "training.stylenerf.NeRFSynthesisNetwork")
    return out


def parse_stylenerf(G: PersistentRecord, key: str, path: str) -> ParsedCheckpoint:
    """A StyleNeRF generator record -> (architecture 'stylenerf', explicit init kwargs, state dict)."""
    try:
        stored = config_to_plain(G.state.get("_init_kwargs") or {}, "G._init_kwargs")
        if not isinstance(stored, dict):
            raise ValueError("G._init_kwargs is not a mapping")
        args = config_to_plain(G.state.get("_init_args") or (), "G._init_args")
        for name, value in zip(_TOP_KEYS, args):  # positional constructor arguments, if any
            stored.setdefault(name, value)
        kwargs: dict[str, Any] = {}
        for name in _TOP_KEYS:
            value = stored.get(name, config_to_plain(G.state.get(name), f"G.{name}"))
            if value is None:
                raise CheckpointError(path, f"the StyleNeRF generator record lacks {name}")
            kwargs[name] = value
        if stored.get("encoder_kwargs"):
            raise CheckpointError(path, "StyleNeRF generators with an image encoder are not supported")
        mapping = dict(stored.get("mapping_kwargs") or {})
        kwargs["mapping_kwargs"] = {k: v for k, v in mapping.items() if k in _MAPPING_KEYS}
        synth_stored = dict(stored.get("synthesis_kwargs") or {})
        kwargs["synthesis_kwargs"] = _synthesis_kwargs(G, synth_stored, path)
    except ValueError as exc:
        raise CheckpointError(path, f"unreadable StyleNeRF configuration: {exc}") from None
    state = flatten_state_dict(G, path)
    return ParsedCheckpoint(architecture="stylenerf", init_kwargs=kwargs, state_dict=state,
                            source=f"StyleNeRF pickle ({key})")
