"""The layout of a training snapshot pickle, shared by NVIDIA's StyleGAN2-ADA / StyleGAN3 networks and
StyleNeRF's: a dict whose networks are persistence records, flattened here into `state_dict()` names."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from stylecore.formats.errors import CheckpointError
from stylecore.formats.safe_pickle import PersistentRecord

_MAX_DEPTH = 64


def is_official_pickle(obj: Any) -> bool:
    """True for the top-level dict of an official snapshot (any persistence record among its values)."""
    return isinstance(obj, Mapping) and any(isinstance(v, PersistentRecord) for v in obj.values())


def generator_record(obj: Any, path: str) -> tuple[str, PersistentRecord]:
    """The snapshot's generator: ('G_ema', record), else ('G', record)."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(path, f"an official network pickle holds a dict, got {type(obj).__name__}")
    key = next((k for k in ("G_ema", "G") if isinstance(obj.get(k), PersistentRecord)), None)
    if key is None:
        keys = ", ".join(repr(k) for k in list(obj)[:12])
        raise CheckpointError(path, f"the pickle holds no generator: neither 'G_ema' nor 'G' is a network "
                                    f"(keys: {keys or 'none'})")
    return key, obj[key]


def child_record(record: PersistentRecord, name: str, path: str) -> PersistentRecord:
    """The sub-network `name` of a record, or a clear error when the file lacks it."""
    child = record.modules.get(name)
    if not isinstance(child, PersistentRecord):
        raise CheckpointError(path, f"the {record.class_name} record has no '{name}' sub-network")
    return child


def flatten_state_dict(record: PersistentRecord, path: str) -> dict[str, torch.Tensor]:
    """Parameters then persistent buffers of each module, then its children: `G.state_dict()` names.

    Torch containers (`adapter`, `blocks`) are `TorchContainerRecord`s, walked like any record.
    """
    out: dict[str, torch.Tensor] = {}

    def tensors(mapping: Any, where: str) -> Mapping:
        if mapping is None:
            return {}
        if not isinstance(mapping, Mapping):
            raise CheckpointError(path, f"{where} is not a mapping")
        return mapping

    def visit(rec: PersistentRecord, prefix: str, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise CheckpointError(path, "network records are nested too deeply")
        where = prefix.rstrip(".") or rec.class_name
        skip = rec.state.get("_non_persistent_buffers_set") or set()
        for kind in ("_parameters", "_buffers"):
            for name, value in tensors(rec.state.get(kind), f"{where}.{kind}").items():
                if value is None or (kind == "_buffers" and name in skip):
                    continue
                if not isinstance(name, str) or not isinstance(value, torch.Tensor):
                    raise CheckpointError(path, f"{where}.{kind} holds a non-tensor entry {name!r}")
                out[prefix + name] = value
        for name, child in tensors(rec.state.get("_modules"), f"{where}._modules").items():
            if child is None:
                continue
            if not isinstance(child, PersistentRecord) or not isinstance(name, str):
                raise CheckpointError(path, f"sub-module {prefix}{name} is neither a persistence record "
                                            f"nor a torch container")
            visit(child, f"{prefix}{name}.", depth + 1)

    visit(record, "", 0)
    return out
