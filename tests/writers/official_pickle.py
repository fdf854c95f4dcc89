"""Write a network in the exact on-disk layout of an official StyleGAN snapshot pickle (for tests).

The real files are written by `torch_utils.persistence`: every network is a REDUCE of
`torch_utils.persistence._reconstruct_persistent_obj(meta)` with the module's source text and
its `__dict__`, tensors pickled by plain `pickle.dump` (legacy storage blobs). We reproduce that
with temporary stand-in modules registered in `sys.modules` while pickling, and numpy functions
named as numpy 1.x named them, so the stream names exactly the globals of a real file
(reference/real_files.md §1; tests/test_real_globals.py checks it). Torch containers inside a
network are plain pickled torch objects, as in the real files. See reference/stylegan_formats.md §1.1-1.4.
"""
from __future__ import annotations

import contextlib
import sys
import types
from collections import OrderedDict
from typing import Any, Iterator, Literal, Optional, Sequence

import numpy as np
import torch

from .numpy1_pickle import dump

# Dummy module sources: our own placeholder text, shaped like the real files' openings so the
# reader's docstring-based identification (§1.5 item 2) sees what it would see in a real file.
ADA_NETWORKS_SRC = (
    "\ufeff# Copyright (c) 2021, placeholder. Test fixture text, not network code.\n"
    "#\n# A reader must never execute this string.\n\n"
    "import numpy as np\nimport torch\n\n# ... network classes would follow ...\n"
)
SG3_STYLEGAN2_SRC = (
    "# Copyright (c) 2021, placeholder. Test fixture text, not network code.\n\n"
    '"""Network architectures from the paper\n'
    '"Analyzing and Improving the Image Quality of StyleGAN".\n'
    'Placeholder docstring for tests."""\n\n'
    "import numpy as np\nimport torch\n"
)
SG3_STYLEGAN3_SRC = (
    "# Copyright (c) 2021, placeholder. Test fixture text, not network code.\n\n"
    '"""Generator architecture from the paper\n'
    '"Alias-Free Generative Adversarial Networks"."""\n\n'
    "import numpy as np\nimport torch\n"
)

Flavour = Literal["ada", "sg3"]

# Attributes only the StyleGAN3 code base stores (§1.3, §1.6); an ADA file lacks them.
_SG3_ONLY_ATTRS = {
    "SynthesisNetwork": {"num_fp16_res"},
    "SynthesisBlock": {"fused_modconv_default"},
    "SynthesisLayer": {"in_channels", "out_channels", "w_dim"},
    "ToRGBLayer": {"in_channels", "out_channels", "w_dim"},
    "FullyConnectedLayer": {"in_features", "out_features"},
}
# torch 1.7 (ADA era) nn.Module bookkeeping keys besides training/_parameters/_buffers/_modules.
_TORCH17_HOOKS = ("_backward_hooks", "_forward_hooks", "_forward_pre_hooks", "_state_dict_hooks",
                  "_load_state_dict_pre_hooks")
_MODULE_KEYS = {"training", "_parameters", "_buffers", "_non_persistent_buffers_set", "_modules"}
# torch classes are not persistent: real files hold these as plain pickled torch objects (NERF19 names two).
_CONTAINERS = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)


@contextlib.contextmanager
def _fake_official_modules() -> Iterator[types.SimpleNamespace]:
    """Register stand-ins for torch_utils.persistence and dnnlib.util so pickle names them."""
    names = ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")
    saved = {n: sys.modules.get(n) for n in names}
    mods = {n: types.ModuleType(n) for n in names}

    def _reconstruct_persistent_obj(meta: dict) -> Any:  # never called: we only write
        raise RuntimeError("test stand-in; not for loading")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"

    class EasyDict(dict):
        def __getattr__(self, name: str) -> Any:
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None

    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"
    mods["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj
    mods["torch_utils"].persistence = mods["torch_utils.persistence"]
    mods["dnnlib.util"].EasyDict = EasyDict
    mods["dnnlib"].util = mods["dnnlib.util"]
    sys.modules.update(mods)
    try:
        yield types.SimpleNamespace(reconstruct=_reconstruct_persistent_obj, EasyDict=EasyDict)
    finally:
        for n, old in saved.items():
            if old is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = old


class _Persistent:
    """Pickles as REDUCE(_reconstruct_persistent_obj, (meta,)), exactly like persistence does."""

    def __init__(self, reconstruct: Any, meta: dict):
        self.reconstruct = reconstruct
        self.meta = meta

    def __reduce__(self) -> Any:
        return (self.reconstruct, (self.meta,))


def _is_plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (np.generic, np.ndarray)):
        return value.dtype != object
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    return False


class _Writer:
    def __init__(self, fake: types.SimpleNamespace, flavour: Flavour, module_src: str):
        self.fake = fake
        self.flavour = flavour
        self.src = module_src

    def hooks(self, module: torch.nn.Module) -> dict[str, Any]:
        if self.flavour == "ada":
            return {k: OrderedDict() for k in _TORCH17_HOOKS}
        out = {}
        for k, v in module.__dict__.items():
            if "hook" in k:
                out[k] = None if v is None else (OrderedDict() if isinstance(v, dict) else v)
        return out

    def module_state(self, module: torch.nn.Module) -> dict[str, Any]:
        """The nn.Module bookkeeping of `module.__dict__`, children written by `child`."""
        skip = module._non_persistent_buffers_set
        state: dict[str, Any] = {"training": False}
        state["_parameters"] = OrderedDict(
            (k, None if v is None else torch.nn.Parameter(v.detach().clone(), requires_grad=False))
            for k, v in module._parameters.items())
        state["_buffers"] = OrderedDict((k, None if v is None else v.detach().clone())
                                        for k, v in module._buffers.items() if k not in skip)
        state["_non_persistent_buffers_set"] = set()
        state.update(self.hooks(module))
        state["_modules"] = OrderedDict((k, self.child(module, k, v)) for k, v in module._modules.items())
        return state

    def child(self, parent: torch.nn.Module, name: str, module: Optional[torch.nn.Module]) -> Any:
        if module is None:
            return None
        if isinstance(module, _CONTAINERS):
            return self.container(module)
        return self.record(module, self.child_kwargs(parent, name))

    def container(self, module: torch.nn.Module) -> torch.nn.Module:
        """A torch container as torch pickles it: NEWOBJ of the real class, BUILD with its `__dict__`.

        An empty instance of the real class carries the written state, so the stream names
        `torch.nn.modules.container.<Class>` and nothing else; no torch code runs when it is read.
        """
        plain = type(module).__new__(type(module))
        plain.__dict__.update(self.module_state(module))
        return plain

    def record(self, module: torch.nn.Module, init_kwargs: Optional[dict] = None,
               extra_state: Optional[dict] = None) -> _Persistent:
        cls = type(module).__name__
        drop = _SG3_ONLY_ATTRS.get(cls, set()) if self.flavour == "ada" else set()
        state = self.module_state(module)
        for k, v in module.__dict__.items():
            if k in _MODULE_KEYS or k.startswith("_") or k in drop or k in state:
                continue
            if _is_plain(v):
                state[k] = v
        state["_init_args"] = ()
        state["_init_kwargs"] = init_kwargs if init_kwargs is not None else {}
        if extra_state:
            state.update(extra_state)
        meta = {"type": "class", "version": 6, "module_src": self.src, "class_name": cls, "state": state}
        return _Persistent(self.fake.reconstruct, meta)

    def child_kwargs(self, parent: torch.nn.Module, name: str) -> Optional[dict]:
        kwargs = getattr(self, "_top_kwargs", None)
        if type(parent).__name__ != "Generator" or kwargs is None:
            return None
        if name == "mapping":
            return {"z_dim": parent.z_dim, "c_dim": parent.c_dim, "w_dim": parent.w_dim, "num_ws": parent.num_ws,
                    **kwargs.get("mapping_kwargs", {})}
        if name == "synthesis":
            syn = dict(kwargs.get("synthesis_kwargs", {}))
            syn.update({k: v for k, v in kwargs.items()
                        if k not in ("z_dim", "c_dim", "mapping_kwargs", "synthesis_kwargs")})
            return syn
        return None

    def generator(self, G: torch.nn.Module, init_kwargs: dict, extra_state: Optional[dict] = None) -> _Persistent:
        E = self.fake.EasyDict
        kwargs = {k: (E(v) if isinstance(v, dict) else v) for k, v in init_kwargs.items()}
        self._top_kwargs = kwargs
        try:
            return self.record(G, kwargs, extra_state)
        finally:
            self._top_kwargs = None

    def discriminator(self) -> _Persistent:
        g = torch.Generator().manual_seed(0)
        state = {"training": False,
                 "_parameters": OrderedDict(weight=torch.nn.Parameter(torch.randn(4, 3, generator=g),
                                                                       requires_grad=False)),
                 "_buffers": OrderedDict(scale=torch.ones([])), "_non_persistent_buffers_set": set(),
                 "_modules": OrderedDict(), "_init_args": (), "_init_kwargs": {"c_dim": 0}}
        meta = {"type": "class", "version": 6, "module_src": self.src, "class_name": "Discriminator", "state": state}
        return _Persistent(self.fake.reconstruct, meta)


def nest_ada_kwargs(init_kwargs: dict) -> dict:
    """Flat (SG3 code base) Generator kwargs -> ADA form with synthesis kwargs nested."""
    top = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")
    out = {k: v for k, v in init_kwargs.items() if k in top}
    nested = dict(init_kwargs.get("synthesis_kwargs", {}))
    nested.update({k: v for k, v in init_kwargs.items() if k not in top and k != "synthesis_kwargs"})
    out["synthesis_kwargs"] = nested
    return out


def write_official_pickle(
    path: Any,
    G: torch.nn.Module,
    init_kwargs: dict,
    flavour: Flavour,
    module_src: Optional[str] = None,
    extra_keys: bool = False,
    G_raw: Optional[torch.nn.Module] = None,
    keys: Sequence[str] = ("training_set_kwargs", "G", "D", "G_ema", "augment_pipe"),
    inject: Optional[dict] = None,
    protocol: Optional[int] = None,
) -> None:
    """Write `G` as G_ema (and `G_raw or G` as G) of an official snapshot of the given flavour.

    `init_kwargs` are stored as given (pass ADA's nested form for 'ada', see `nest_ada_kwargs`);
    `keys` selects which standard entries appear; `inject` adds entries to G_ema's state (for
    hostile tests); `extra_keys` adds entries that forks write.

    The protocol decides whether the modules' empty `_non_persistent_buffers_set` names a global:
    protocol 3 (Python 3.7's default, NVIDIA's own ADA release) pickles a set as a call of
    `builtins.set` (the ADA9 set of reference/real_files.md §1); protocol 4 (Python 3.8+, the
    default here for 'sg3') has set opcodes, so an 'ada' file written with it carries ADA8.
    """
    if module_src is None:
        if flavour == "ada":
            module_src = ADA_NETWORKS_SRC
        else:
            module_src = SG3_STYLEGAN3_SRC if hasattr(G.synthesis, "layer_names") else SG3_STYLEGAN2_SRC
    if protocol is None:
        protocol = 3 if flavour == "ada" else 4  # Python 3.7 vs 3.8+ default protocols
    order = (("training_set_kwargs", "G", "D", "G_ema", "augment_pipe") if flavour == "ada"
             else ("G", "D", "G_ema", "augment_pipe", "training_set_kwargs"))
    with _fake_official_modules() as fake:
        w = _Writer(fake, flavour, module_src)
        values = {
            "training_set_kwargs": {"class_name": "training.dataset.ImageFolderDataset", "path": "data.zip",
                                    "use_labels": False, "max_size": 1000, "xflip": False,
                                    "resolution": int(G.img_resolution), "random_seed": 0},
            "G": lambda: w.generator(G_raw if G_raw is not None else G, init_kwargs),
            "D": w.discriminator,
            "G_ema": lambda: w.generator(G, init_kwargs, inject),
            "augment_pipe": None,
        }
        data: dict[str, Any] = {}
        for key in order:
            if key in keys:
                value = values[key]
                data[key] = value() if callable(value) else value
        if extra_keys:
            data["progress"] = {"cur_nimg": 123456, "batch_idx": 7}
            data["fork_note"] = "written by a fork that adds keys"
            data["metrics"] = [np.float64(3.5), np.array([1, 2], dtype=np.int64)]
        with open(path, "wb") as f:
            dump(data, f, protocol=protocol)
