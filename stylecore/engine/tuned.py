"""Generators a session tuned (PTI, HyperStyle), kept so the Editing and StyleCLIP tabs draw that
session's codes with them.

A PTI or HyperStyle code only redraws its photo through its own tuned synthesis weights. The
Inversion tab keeps those weights under (kind, session, model, digest) in the model manager, and writes
the digest into the code's .npz ('tuned_weights'); a tab reading that code in the same session gets a
view of the shared generator holding the tuned weights (nothing shared is modified). The weights count
against the manager's memory budget, at most `SHARE` of it for all sessions together (the oldest are
dropped first), and a session's are dropped when it ends (the app's unload event).
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from typing import Hashable, Optional

import torch

from stylecore.engine.manager import LoadedModel, ModelManager
from stylecore.networks.private import with_tensors

__all__ = ["KIND", "SHARE", "TUNED_FIELD", "weights_digest", "keep_tuned", "tuned_model", "forget_session"]

KIND = "tuned"
SHARE = 0.25  # of the memory budget, for every session's tuned weights together
TUNED_FIELD = "tuned_weights"  # the .npz field naming a code's tuned weights by their digest


def weights_digest(weights: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (first 32 hex digits) over the names, shapes and float32 values of tuned weights."""
    digest = hashlib.sha256()
    for name in sorted(weights):
        values = weights[name].detach().to("cpu", torch.float32).contiguous()
        digest.update(f"{name}:{tuple(values.shape)};".encode())
        digest.update(values.numpy().tobytes())
    return digest.hexdigest()[:32]


def _key(session: str, model: LoadedModel, digest: str) -> tuple:
    return (KIND, session, model.shared.card.id, digest)


def _is_tuned(key: Hashable) -> bool:
    return isinstance(key, tuple) and len(key) == 4 and key[0] == KIND


def keep_tuned(manager: ModelManager, session: str, model: LoadedModel, weights: Mapping[str, torch.Tensor]) -> str:
    """Keep a session's tuned synthesis weights for `model`; returns their digest (the .npz's TUNED_FIELD)."""
    digest = weights_digest(weights)
    key = _key(session, model, digest)
    manager.resource(key, lambda: {name: w.detach().to(model.device) for name, w in weights.items()})
    kept = manager.kept_sizes(_is_tuned)
    total = sum(nbytes for _, nbytes in kept)
    for old, nbytes in kept:  # oldest first; the new entry stays
        if total <= SHARE * manager.memory_budget or old == key:
            break
        manager.evict(old)
        total -= nbytes
    return digest


def tuned_model(manager: ModelManager, session: str, model: LoadedModel, digest: str) -> Optional[LoadedModel]:
    """`model` drawing with the session's tuned weights `digest`, or None when they are not kept (another
    session's code, an ended session, or dropped for memory)."""
    weights = manager.kept(_key(session, model, digest))
    if weights is None:
        return None
    view = with_tensors(model.shared.G, {f"synthesis.{name}": w for name, w in weights.items()})
    return replace(model.shared, G=view, tuned_from=model.shared)


def forget_session(manager: ModelManager, session: str) -> int:
    """Drop every tuned generator of `session`; returns how many there were."""
    keys = [key for key, _ in manager.kept_sizes(lambda k: _is_tuned(k) and k[1] == session)]
    for key in keys:
        manager.evict(key)
    return len(keys)
