"""Write a StyleNeRF generator in the on-disk layout of the released StyleNeRF pickles (for tests).

Like official StyleGAN snapshots (see official_pickle.py), every network is a
`torch_utils.persistence` record with its module's source text and `__dict__`; StyleNeRF adds
OmegaConf containers as the stored constructor kwargs (DictConfig/ListConfig with AnyNode leaves,
Metadata/ContainerMetadata with OmegaConf >= 2.1's `resolver_cache = defaultdict(dict)`,
`typing.Any`) and non-Module persistent objects on the synthesis network (`C` CameraRay,
`V` VolumeRenderer, `U` Upsampler) holding configuration. The upsampler `adapter`s
(`torch.nn.Sequential`) and the NeRF `blocks` (`torch.nn.ModuleList`) are plain pickled torch
objects, not persistence records. Stand-in classes registered under the real module names make
the stream name exactly the real globals (the NERF19 set of reference/real_files.md §1;
reference/encoders_clip_nerf.md C.1). The embedded sources are placeholder text.
"""
from __future__ import annotations

import contextlib
import sys
import types
from collections import OrderedDict, defaultdict
from typing import Any, Iterator, Optional

import numpy as np
import torch

from .numpy1_pickle import dump
from .official_pickle import _fake_official_modules, _Persistent, _Writer

# Placeholder module sources, shaped like the openings of the real files; never executed.
SOURCES = {
    "networks": ("# Copyright (c) Facebook, Inc. and its affiliates. Placeholder text for tests.\n"
                 "# A reader must never execute this string.\n\nimport numpy as np\nimport torch\n"),
    "stylenerf": ("# Copyright (c) Facebook, Inc. and its affiliates. Placeholder text for tests.\n\n"
                  '"""StyleNeRF synthesis network (placeholder docstring)."""\n\nimport torch\n'
                  "raise SystemExit('this source must never run')\n"),
    "camera": "# Placeholder camera module source for tests.\nimport numpy as np\n",
}
_CLASS_SOURCE = {"NeRFSynthesisNetwork": "stylenerf", "NeRFBlock": "stylenerf", "Style2Layer": "stylenerf",
                 "CameraRay": "camera", "VolumeRenderer": "stylenerf", "Upsampler": "stylenerf"}


def _named(cls: type, module: str, name: str) -> type:
    cls.__module__, cls.__name__, cls.__qualname__ = module, name, name
    return cls


@contextlib.contextmanager
def _fake_omegaconf() -> Iterator[types.SimpleNamespace]:
    """Stand-ins for the OmegaConf classes a StyleNeRF pickle names, pickled as plain objects
    (NEWOBJ + BUILD with their `__dict__`), as OmegaConf's own `__getstate__` produces."""
    names = ("omegaconf", "omegaconf.dictconfig", "omegaconf.listconfig", "omegaconf.nodes", "omegaconf.base")
    saved = {n: sys.modules.get(n) for n in names}
    mods = {n: types.ModuleType(n) for n in names}

    class Metadata:
        def __init__(self, **fields: Any):
            self.__dict__.update(fields, resolver_cache=defaultdict(dict))  # OmegaConf >= 2.1

    class ContainerMetadata(Metadata):
        pass

    class Node:
        def __init__(self, **state: Any):
            self.__dict__.update(state)

    classes = {
        "Metadata": _named(Metadata, "omegaconf.base", "Metadata"),
        "ContainerMetadata": _named(ContainerMetadata, "omegaconf.base", "ContainerMetadata"),
        "AnyNode": _named(type("AnyNode", (Node,), {}), "omegaconf.nodes", "AnyNode"),
        "DictConfig": _named(type("DictConfig", (Node,), {}), "omegaconf.dictconfig", "DictConfig"),
        "ListConfig": _named(type("ListConfig", (Node,), {}), "omegaconf.listconfig", "ListConfig"),
    }
    for cls in classes.values():
        setattr(mods[cls.__module__], cls.__name__, cls)
    sys.modules.update(mods)
    try:
        yield types.SimpleNamespace(**classes)
    finally:
        for n, old in saved.items():
            if old is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = old


def to_omegaconf(oc: types.SimpleNamespace, value: Any, key: Any = None, parent: Any = None) -> Any:
    """A plain dict/list tree -> DictConfig/ListConfig/AnyNode stand-ins with parent links."""
    if isinstance(value, dict):
        node = oc.DictConfig(_metadata=oc.ContainerMetadata(ref_type=Any, object_type=dict, optional=True, key=key,
                                                            flags={}, flags_root=False, key_type=Any,
                                                            element_type=Any), _parent=parent)
        node._content = {k: to_omegaconf(oc, v, k, node) for k, v in value.items()}
        return node
    if isinstance(value, (list, tuple)):
        node = oc.ListConfig(_metadata=oc.ContainerMetadata(ref_type=Any, object_type=list, optional=True, key=key,
                                                            flags={}, flags_root=False, key_type=int,
                                                            element_type=Any), _parent=parent)
        node._content = [to_omegaconf(oc, v, i, node) for i, v in enumerate(value)]
        return node
    meta = oc.Metadata(ref_type=Any, object_type=None, optional=True, key=key, flags={}, flags_root=False)
    return oc.AnyNode(_metadata=meta, _parent=parent, _val=value)


class _NeRFWriter(_Writer):
    """Module records with per-class sources, OmegaConf kwargs and the C/V/U config records."""

    def __init__(self, fake: types.SimpleNamespace, oc: types.SimpleNamespace, synthesis_kwargs: dict,
                 mapping_kwargs: dict, top: dict, camera_attrs: Optional[dict] = None):
        super().__init__(fake, "sg3", SOURCES["networks"])
        self.oc = oc
        self.camera_attrs = camera_attrs
        self.synthesis_kwargs = synthesis_kwargs
        self.mapping_kwargs = mapping_kwargs
        self.top = top

    def record(self, module: torch.nn.Module, init_kwargs: Optional[dict] = None,
               extra_state: Optional[dict] = None) -> _Persistent:
        extra = dict(extra_state or {})
        if type(module).__name__ == "NeRFSynthesisNetwork":
            extra.update(self.config_records(module))
        rec = super().record(module, init_kwargs, extra)
        rec.meta["module_src"] = SOURCES[_CLASS_SOURCE.get(rec.meta["class_name"], "networks")]
        return rec

    def config_record(self, class_name: str, attrs: dict, init_args: tuple, init_kwargs: dict) -> _Persistent:
        state = dict(attrs, _init_args=init_args, _init_kwargs=init_kwargs)
        meta = {"type": "class", "version": 6, "module_src": SOURCES[_CLASS_SOURCE[class_name]],
                "class_name": class_name, "state": state}
        return _Persistent(self.fake.reconstruct, meta)

    def config_records(self, synth: torch.nn.Module) -> dict:
        syn = self.synthesis_kwargs
        cam = dict(syn.get("camera_kwargs") or {})
        block = {k: v for k, v in syn.items() if not k.endswith("_kwargs")}
        # CameraRay keeps the resolved settings as attributes; numpy floats as the original computes them.
        attrs = dict(self.camera_attrs if self.camera_attrs is not None else cam)
        cam_attrs = {k: (np.float64(v) if isinstance(v, float) else v) for k, v in attrs.items()
                     if not isinstance(v, (list, dict))}
        cam_attrs.update({k: [np.float64(x) for x in v] for k, v in attrs.items() if isinstance(v, list)})
        oc = lambda v: to_omegaconf(self.oc, v)  # noqa: E731
        return {
            "C": self.config_record("CameraRay", cam_attrs, (oc(cam),), block),
            "V": self.config_record("VolumeRenderer", dict(syn.get("renderer_kwargs") or {}),
                                    (oc(syn.get("renderer_kwargs") or {}),), {}),
            "U": self.config_record("Upsampler", {"block_resolutions": list(synth.block_resolutions)},
                                    (), {"upsampler_kwargs": oc(syn.get("upsampler_kwargs") or {})}),
        }

    def child_kwargs(self, parent: torch.nn.Module, name: str) -> Optional[dict]:
        if type(parent).__name__ != "Generator":
            return None
        if name == "mapping":
            return {"z_dim": self.top["z_dim"], "c_dim": self.top["c_dim"], "w_dim": self.top["w_dim"],
                    "num_ws": parent.num_ws, **self.mapping_kwargs}
        if name == "synthesis":  # `**synthesis_kwargs` of a DictConfig: leaves as values, branches as configs
            content = to_omegaconf(self.oc, self.synthesis_kwargs)._content
            return {"w_dim": self.top["w_dim"], "img_resolution": self.top["img_resolution"],
                    "img_channels": self.top["img_channels"],
                    **{k: (v if hasattr(v, "_content") else v._val) for k, v in content.items()}}
        return None


def write_stylenerf_pickle(path: Any, G: torch.nn.Module, init_kwargs: dict, inject: Optional[dict] = None,
                           protocol: int = 4, camera_attrs: Optional[dict] = None) -> None:
    """Write `G` (a stylecore StyleNeRF Generator) as G and G_ema of a StyleNeRF snapshot.

    `init_kwargs` is the stored `Generator(...)` kwargs tree (as in the parity json); the mapping
    and synthesis kwargs are stored as OmegaConf DictConfigs. `inject` adds entries to the stored
    synthesis kwargs as they are (for hostile tests); `camera_attrs` are the settings the camera
    record holds, when they should differ from the stored camera kwargs.
    """
    top = {k: v for k, v in init_kwargs.items() if not k.endswith("_kwargs")}
    syn = dict(init_kwargs.get("synthesis_kwargs") or {})
    mapping = dict(init_kwargs.get("mapping_kwargs") or {})
    with _fake_official_modules() as fake, _fake_omegaconf() as oc:
        w = _NeRFWriter(fake, oc, syn, mapping, top, camera_attrs)
        syn_conf = to_omegaconf(oc, syn)
        if inject:
            syn_conf._content.update(inject)
        stored = dict(top, mapping_kwargs=to_omegaconf(oc, mapping), synthesis_kwargs=syn_conf)
        data = OrderedDict()  # the training loop stores dict(training_set_kwargs): no EasyDict in NERF19
        data["training_set_kwargs"] = dict(class_name="training.dataset.ImageFolderDataset", path="ffhq.zip",
                                           resolution=int(G.img_resolution), use_labels=False, xflip=True)
        data["G"] = w.record(G, stored)
        data["D"] = w.discriminator()
        data["G_ema"] = w.record(G, stored)
        data["augment_pipe"] = None
        with open(path, "wb") as f:
            dump(dict(data), f, protocol=protocol)
