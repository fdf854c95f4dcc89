"""Write an official StyleGAN2 network as a legacy TensorFlow pickle, in the real on-disk layout.

The file is a pickled `(G, D, Gs)` tuple of `dnnlib.tflib.network.Network` objects (GLOBAL +
NEWOBJ + BUILD with the `__getstate__` dict of §1.7), whose variables are in TF layout: the exact
inverse of the reader's conversion table. The `dnnlib` modules exist only while pickling; numpy
functions are named as numpy 1.x named them, so the file carries exactly the TF5 globals of
reference/real_files.md §1.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import types
from typing import Any, Iterator, Optional, Union

import numpy as np
import torch

from .numpy1_pickle import dump

BUILD_MODULE_SRC = "# dummy TensorFlow network source: a reader must never execute or need this\nraise SystemExit(1)\n"


@contextlib.contextmanager
def _fake_dnnlib() -> Iterator[type]:
    """Register `dnnlib.tflib.network.Network` in sys.modules for pickling, then restore sys.modules."""
    names = ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network")
    saved = {n: sys.modules.get(n) for n in names}
    modules = {n: types.ModuleType(n) for n in names}

    class Network:
        """Pickles like the TF class: its state dict goes into BUILD."""

        def __init__(self, state: dict):
            self._state = state

        def __getstate__(self) -> dict:
            return self._state

    Network.__module__ = "dnnlib.tflib.network"
    Network.__qualname__ = "Network"
    modules["dnnlib.tflib.network"].Network = Network
    modules["dnnlib"].tflib = modules["dnnlib.tflib"]
    modules["dnnlib.tflib"].network = modules["dnnlib.tflib.network"]
    sys.modules.update(modules)
    try:
        yield Network
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def tf_kwargs_from_official(init_kwargs: dict) -> dict:
    """Official (flat) Generator kwargs -> TF `static_kwargs` names."""
    mk = dict(init_kwargs.get("mapping_kwargs") or {})
    out = {
        "latent_size": init_kwargs["z_dim"],
        "label_size": init_kwargs.get("c_dim", 0),
        "dlatent_size": init_kwargs["w_dim"],
        "resolution": init_kwargs["img_resolution"],
        "num_channels": init_kwargs.get("img_channels", 3),
        "fmap_base": init_kwargs.get("channel_base", 32768) // 2,
        "fmap_max": init_kwargs.get("channel_max", 512),
        "num_fp16_res": init_kwargs.get("num_fp16_res", 0),
        "conv_clamp": init_kwargs.get("conv_clamp", None),
        "architecture": init_kwargs.get("architecture", "skip"),
        "resample_kernel": list(init_kwargs.get("resample_filter", [1, 3, 3, 1])),
        "use_noise": init_kwargs.get("use_noise", True),
        "nonlinearity": init_kwargs.get("activation", "lrelu"),
        "mapping_layers": mk.get("num_layers", 8),
        "mapping_lrmul": mk.get("lr_multiplier", 0.01),
        "w_avg_beta": mk.get("w_avg_beta", 0.995),
        "truncation_psi": 0.5,  # a tolerated training-time kwarg, as real pickles carry
    }
    if mk.get("embed_features") is not None:
        out["label_fmaps"] = mk["embed_features"]
    if mk.get("layer_features") is not None:
        out["mapping_fmaps"] = mk["layer_features"]
    if mk.get("activation", "lrelu") != "lrelu":
        out["mapping_nonlinearity"] = mk["activation"]
    return out


def _noise_index(res: int, layer: str) -> int:
    if res == 4:
        return 0
    log2 = int(np.log2(res))
    return 2 * log2 - 5 if layer == "conv0" else 2 * log2 - 4


def tf_variables_from_official(state: dict[str, torch.Tensor]) -> tuple[list, list, list]:
    """(Gs own vars, mapping vars, synthesis vars) as (TF local name, float32 numpy) lists."""
    top, mapping, synthesis_noise, synthesis = [], [], [], []
    tf_layer = {"conv0": "Conv0_up", "conv1": "Conv1", "torgb": "ToRGB", "skip": "Skip"}
    for key, t in state.items():
        v = t.detach().cpu().numpy().astype(np.float32)
        if key.endswith("resample_filter"):
            continue
        if key == "mapping.w_avg":
            top.append(("dlatent_avg", v))
            continue
        m = re.fullmatch(r"mapping\.(embed|fc(\d+))\.(weight|bias)", key)
        if m:
            layer = "LabelEmbed" if m.group(1) == "embed" else f"Dense{m.group(2)}"
            mapping.append((f"{layer}/{m.group(3)}", v.T.copy() if m.group(3) == "weight" else v))
            continue
        if key == "synthesis.b4.const":
            synthesis.append(("4x4/Const/const", v[None]))
            continue
        m = re.fullmatch(r"synthesis\.b(\d+)\.(conv0|conv1|torgb|skip)\.(.+)", key)
        if not m:
            raise ValueError(f"no TF name for {key}")
        res, layer, param = int(m.group(1)), m.group(2), m.group(3)
        if param == "noise_const":
            synthesis_noise.append((_noise_index(res, layer), v[None, None]))
            continue
        name = f"{res}x{res}/{'Conv' if res == 4 and layer == 'conv1' else tf_layer[layer]}"
        if param == "weight":
            v = v.transpose(2, 3, 1, 0)  # OIHW -> HWIO
            if layer in ("conv0", "skip"):
                v = v[::-1, ::-1]
            synthesis.append((f"{name}/weight", np.ascontiguousarray(v)))
        elif param == "affine.weight":
            synthesis.append((f"{name}/mod_weight", v.T.copy()))
        elif param == "affine.bias":
            synthesis.append((f"{name}/mod_bias", v - 1))
        elif param in ("bias", "noise_strength"):
            synthesis.append((f"{name}/{param}", v))
        else:
            raise ValueError(f"no TF name for {key}")
    noises = [(f"noise{i}", v) for i, v in sorted(synthesis_noise, key=lambda p: p[0])]
    return top, mapping, noises + synthesis


def write_tf_pickle(path: Union[str, "os.PathLike[str]"], G_official: torch.nn.Module, init_kwargs: dict,
                    extra_kwargs: Optional[dict[str, Any]] = None) -> None:
    """Pickle `G_official` as a TF `(G, D, Gs)` tuple; `extra_kwargs` are added to Gs.static_kwargs."""
    static_kwargs = {**tf_kwargs_from_official(init_kwargs), **(extra_kwargs or {})}
    top, mapping_vars, synthesis_vars = tf_variables_from_official(G_official.state_dict())

    def network(cls: type, name: str, variables: list, components: Optional[dict] = None,
                func: str = "G_main") -> Any:
        return cls({
            "version": 4,
            "name": name,
            "static_kwargs": dict(static_kwargs),
            "components": components or {},
            "build_module_src": BUILD_MODULE_SRC,
            "build_func_name": func,
            "variables": variables,
        })

    with _fake_dnnlib() as Network:
        def generator(name: str, sign: float) -> Any:
            scale = lambda vs: [(n, v * sign) for n, v in vs]  # noqa: E731
            comps = {"mapping": network(Network, "G_mapping", scale(mapping_vars), func="G_mapping"),
                     "synthesis": network(Network, "G_synthesis", scale(synthesis_vars), func="G_synthesis_stylegan2")}
            return network(Network, name, scale(top), comps)

        G = generator("G", -1.0)  # the training generator differs from Gs, so using it would show
        D = network(Network, "D", [("4x4/Dense0/weight", np.zeros([8, 4], np.float32))], func="D_stylegan2")
        Gs = generator("Gs", 1.0)
        with open(path, "wb") as f:
            dump((G, D, Gs), f, protocol=3)
