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

from typing import Optional

import torch

__all__ = ["synthesis_digest", "decoder_match_note"]

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


def decoder_match_note(encoder_name: str, decoder: Optional[torch.nn.Module], G: torch.nn.Module) -> str:
    """Whether G, which renders an encoder's codes, is the decoder the encoder was trained with
    (compared by the synthesis weights' SHA-256); '' when the encoder does not say."""
    if decoder is None:
        return ""
    if synthesis_digest(decoder) == synthesis_digest(G):
        return f"{encoder_name}: rendered with the same weights as the encoder's own decoder (SHA-256 match)"
    return (f"{encoder_name}: this generator is NOT the one the encoder was trained with (its weights differ from "
            "the encoder's decoder), so its codes are drawn by another network: expect a poor reconstruction; "
            "pick the encoder's own generator for a faithful result")
