"""A fingerprint of a synthesis network's weights, to tell whether two loaded networks draw the same images.

An encoder's codes only reproduce its target through the decoder it was trained with; whether a
generator picked in the app is that decoder is a question of weights, not of names or file paths
(the same network is published in several formats). Only the synthesis network counts: W+ codes
never pass through the mapping network, so its weights (and w_avg) cannot change the image.
"""
from __future__ import annotations

import hashlib
import threading
import weakref

import torch

__all__ = ["synthesis_digest"]

_CACHE: "weakref.WeakKeyDictionary[torch.nn.Module, str]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def synthesis_digest(G: torch.nn.Module) -> str:
    """SHA-256 over the names, shapes and float32 values of `G.synthesis`'s state dict (cached per module)."""
    synthesis = G.synthesis
    with _LOCK:
        cached = _CACHE.get(synthesis)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    for name, tensor in synthesis.state_dict().items():
        values = tensor.detach().to("cpu", torch.float32).contiguous()
        digest.update(f"{name}:{tuple(values.shape)};".encode())
        digest.update(values.numpy().tobytes())
    result = digest.hexdigest()
    with _LOCK:
        _CACHE[synthesis] = result
    return result
