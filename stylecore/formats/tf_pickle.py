"""Legacy TensorFlow StyleGAN2 pickles -> official PyTorch StyleGAN2 kwargs and state dict.

The pickle holds `(G, D, Gs)` `dnnlib.tflib.network.Network` objects. The safe unpickler turns
each into a dict-like stub carrying the pickled state (version, name, static_kwargs, components,
variables, build_module_src, ...). Only `static_kwargs` and `variables` are read here; the
embedded TensorFlow source (`build_module_src`) is never looked at, let alone run.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Optional, Sequence

import numpy as np
import torch

from stylecore.formats.errors import CheckpointError
from stylecore.formats.parsed import ParsedCheckpoint

# TF kwargs that describe training or graph building only; they do not change the weights' meaning.
IGNORED_TF_KWARGS = frozenset(
    {"truncation_psi", "truncation_cutoff", "style_mixing_prob", "structure", "conditioning", "fused_modconv"}
)
# Variables that carry no weights (progressive-growing level of detail).
IGNORED_TF_VARIABLES = frozenset({"lod", "synthesis/lod"})

_BLOCK_RE = re.compile(r"^synthesis/(\d+)x\1/(Const|Conv|Conv0_up|Conv1|ToRGB|Skip)/(\w+)$")
_LAYER_NAMES = {"Conv": "conv1", "Conv0_up": "conv0", "Conv1": "conv1", "ToRGB": "torgb", "Skip": "skip"}
_LAYER_PARAMS = {"bias": "bias", "noise_strength": "noise_strength", "mod_weight": "affine.weight",
                 "mod_bias": "affine.bias", "weight": "weight"}


def _net_state(net: Any, what: str) -> Mapping:
    """The pickled state of a Network stub, whatever dict-like form the unpickler gave it."""
    if isinstance(net, Mapping) and "variables" in net:
        return net
    attrs = getattr(net, "__dict__", None)
    if isinstance(attrs, Mapping) and "variables" in attrs:
        return attrs
    state = getattr(net, "state", None)
    if isinstance(state, Mapping) and "variables" in state:
        return state
    raise CheckpointError(f"{what} is not a TensorFlow Network record (no 'variables'): {type(net).__name__}")


def _collect_variables(state: Mapping, prefix: str, out: dict[str, np.ndarray], what: str) -> None:
    """Flatten own variables, then components', with `component_key/` prefixes (as legacy.py does)."""
    for name, value in state.get("variables") or []:
        out[prefix + str(name)] = np.asarray(value)
    for key, component in (state.get("components") or {}).items():
        sub = _net_state(component, f"{what} component {key!r}")
        _collect_variables(sub, f"{prefix}{key}/", out, what)


def _filter_list(value: Any, path: str) -> list[float]:
    """resample_kernel as a plain list of floats (TF stores a list or a numpy array)."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1:
        raise CheckpointError(path, f"unsupported resample_kernel of shape {list(arr.shape)}: only 1-D FIR kernels")
    return [float(x) for x in arr]


def official_kwargs_from_tf(tf_kwargs: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """Map TF `static_kwargs` to explicit official (flat, SG3-codebase) Generator kwargs.

    Defaults are the TF ones, because a TF pickle only stores kwargs that differed from them;
    unknown kwargs are refused since they might change what the weights mean.
    """
    known: set[str] = set(IGNORED_TF_KWARGS)

    def get(name: str, default: Any) -> Any:
        known.add(name)
        value = tf_kwargs.get(name, default)
        return value.item() if isinstance(value, np.generic) else value

    w_avg_beta = get("w_avg_beta", 0.995)
    kwargs: dict[str, Any] = {
        "z_dim": int(get("latent_size", 512)),
        "c_dim": int(get("label_size", 0)),
        "w_dim": int(get("dlatent_size", 512)),
        "img_resolution": int(get("resolution", 1024)),
        "img_channels": int(get("num_channels", 3)),
        "channel_base": int(get("fmap_base", 16384)) * 2,
        "channel_max": int(get("fmap_max", 512)),
        "num_fp16_res": int(get("num_fp16_res", 0)),
        "conv_clamp": get("conv_clamp", None),
        "architecture": str(get("architecture", "skip")),
        "resample_filter": _filter_list(get("resample_kernel", [1, 3, 3, 1]), path),
        "use_noise": bool(get("use_noise", True)),
        "activation": str(get("nonlinearity", "lrelu")),
        "mapping_kwargs": {
            "num_layers": int(get("mapping_layers", 8)),
            "embed_features": get("label_fmaps", None),
            "layer_features": get("mapping_fmaps", None),
            "activation": str(get("mapping_nonlinearity", "lrelu")),
            "lr_multiplier": float(get("mapping_lrmul", 0.01)),
            "w_avg_beta": 1.0 if w_avg_beta is None else float(w_avg_beta),
        },
    }
    unknown = sorted(set(tf_kwargs) - known)
    if unknown:
        raise CheckpointError(
            path, f"unknown TensorFlow generator kwarg(s) {unknown}; refusing to guess what they change "
            f"(understood: {sorted(known)})"
        )
    if kwargs["architecture"] not in ("orig", "skip", "resnet"):
        raise CheckpointError(path, f"unsupported TensorFlow architecture {kwargs['architecture']!r}")
    if kwargs["conv_clamp"] is not None:
        kwargs["conv_clamp"] = float(kwargs["conv_clamp"])
    for key in ("embed_features", "layer_features"):
        if kwargs["mapping_kwargs"][key] is not None:
            kwargs["mapping_kwargs"][key] = int(kwargs["mapping_kwargs"][key])
    return kwargs


def filter_buffer(resample_filter: Sequence[float]) -> torch.Tensor:
    """The official `resample_filter` buffer: 1-D taps -> normalised 2-D outer product."""
    f = torch.as_tensor(list(resample_filter), dtype=torch.float32)
    if f.ndim == 1 and f.numel() < 8:
        f = f.ger(f)
    return f / f.sum()


def sg2_filter_buffers(img_resolution: int, architecture: str,
                       resample_filter: Sequence[float]) -> dict[str, torch.Tensor]:
    """All `resample_filter` buffers of an official StyleGAN2 synthesis network (recomputed, never read)."""
    f = filter_buffer(resample_filter)
    out: dict[str, torch.Tensor] = {}
    res = 4
    while res <= img_resolution:
        names = ["", "conv1."] if res == 4 else ["", "conv0.", "conv1."]
        if res > 4 and architecture == "resnet":
            names.append("skip.")
        for name in names:
            out[f"synthesis.b{res}.{name}resample_filter"] = f.clone()
        res *= 2
    return out


def _noise_target(index: int) -> str:
    """TF `synthesis/noise{i}` -> official noise_const owner (layer 0 is b4.conv1)."""
    if index == 0:
        return "synthesis.b4.conv1"
    res = 2 ** ((index + 1) // 2 + 2)
    return f"synthesis.b{res}.{'conv0' if index % 2 == 1 else 'conv1'}"


def _convert_variable(name: str, value: np.ndarray) -> Optional[tuple[str, np.ndarray]]:
    """One TF generator variable -> (official name, array in official layout); None if unknown."""
    if name == "dlatent_avg":
        return "mapping.w_avg", value
    m = re.fullmatch(r"mapping/(Dense(\d+)|LabelEmbed)/(weight|bias)", name)
    if m:
        layer = "embed" if m.group(1) == "LabelEmbed" else f"fc{m.group(2)}"
        return f"mapping.{layer}.{m.group(3)}", value.T if m.group(3) == "weight" else value
    m = re.fullmatch(r"synthesis/noise(\d+)", name)
    if m:
        return f"{_noise_target(int(m.group(1)))}.noise_const", value[0, 0]
    m = _BLOCK_RE.fullmatch(name)
    if not m:
        return None
    res, layer, param = int(m.group(1)), m.group(2), m.group(3)
    if layer == "Const":
        return (f"synthesis.b{res}.const", value[0]) if param == "const" else None
    allowed = ("Conv", "ToRGB") if res == 4 else ("Conv0_up", "Conv1", "ToRGB", "Skip")
    if layer not in allowed or param not in _LAYER_PARAMS:
        return None
    target = f"synthesis.b{res}.{_LAYER_NAMES[layer]}.{_LAYER_PARAMS[param]}"
    if param == "weight":
        if layer in ("Conv0_up", "Skip"):
            value = value[::-1, ::-1]  # TF upsampling convs are true convolutions; official keeps them unflipped
        return target, value.transpose(3, 2, 0, 1)
    if param == "mod_weight":
        return target, value.T
    if param == "mod_bias":
        return target, value + 1  # TF adds the +1 at run time; official stores it in the bias
    return target, value


def convert_tf_variables(tf_vars: Mapping[str, np.ndarray], path: str = "") -> dict[str, torch.Tensor]:
    """All generator variables -> official tensors; unknown variables are an error, not skipped."""
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for name, value in tf_vars.items():
        if name in IGNORED_TF_VARIABLES:
            continue
        converted = _convert_variable(name, np.asarray(value, dtype=np.float32))
        if converted is None:
            unknown.append(name)
            continue
        key, arr = converted
        out[key] = torch.from_numpy(np.array(arr, dtype=np.float32, order="C"))  # keeps 0-dim shapes
    if unknown:
        hint = " (progressive-growing ToRGB_lod networks are not supported)" if any("lod" in n for n in unknown) else ""
        raise CheckpointError(path, f"unexpected TensorFlow generator variable(s) {unknown[:6]}{hint}")
    return out


def parse_tf_pickle(obj: Any, path: str) -> ParsedCheckpoint:
    """Read the EMA generator `Gs` of an unpickled `(G, D, Gs)` tuple into official form."""
    if not isinstance(obj, (tuple, list)) or len(obj) != 3:
        raise CheckpointError(path, f"a TensorFlow StyleGAN pickle holds a (G, D, Gs) tuple, got {type(obj).__name__}")
    gs = _net_state(obj[2], f"{path}: Gs")
    version = gs.get("version", 0)
    if not isinstance(version, int) or version < 4:
        raise CheckpointError(path, f"TensorFlow network version {version!r} is too old (StyleGAN2 pickles are >= 4)")
    static_kwargs = dict(gs.get("static_kwargs") or {})
    kwargs = official_kwargs_from_tf(static_kwargs, path)

    tf_vars: dict[str, np.ndarray] = {}
    _collect_variables(gs, "", tf_vars, f"{path}: Gs")
    state = convert_tf_variables(tf_vars, path)
    if "mapping.w_avg" not in state:
        raise CheckpointError(path, "Gs has no dlatent_avg variable")
    if f"synthesis.b{kwargs['img_resolution']}.torgb.weight" not in state:
        raise CheckpointError(path, f"no ToRGB layer at the declared resolution {kwargs['img_resolution']}")
    state.update(sg2_filter_buffers(kwargs["img_resolution"], kwargs["architecture"], kwargs["resample_filter"]))
    name = gs.get("name", "Gs")
    return ParsedCheckpoint(
        architecture="stylegan2",
        init_kwargs=kwargs,
        state_dict=state,
        source=f"legacy TensorFlow pickle {path} (network {name!r}, version {version}); converted to official names",
    )
