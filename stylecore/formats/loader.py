"""load_generator: any supported checkpoint file -> ready-to-run generator, safely and fast.

The format is sniffed from the content, never the extension. The converted copy is cached, the
network is built on the meta device (no random init of weights that are overwritten anyway)
and its tensors are assigned from the checkpoint with a strict name/shape check.
"""
from __future__ import annotations

import os
import pickle
import struct
import time
import zipfile
from pathlib import Path
from typing import Union

import torch

from stylecore.formats import cache
from stylecore.formats.errors import CheckpointError
from stylecore.formats.parsed import ParsedCheckpoint

__all__ = ["load_generator", "read_checkpoint", "build_from_parsed", "describe_mismatch"]

SUPPORTED = ("official StyleGAN2-ADA / StyleGAN3 network pickle (.pkl), StyleNeRF network pickle (.pkl), "
             "legacy TensorFlow StyleGAN2 pickle (.pkl), rosinality / pSp / e4e torch checkpoint (.pt)")
_LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_CORRUPT = (EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, TypeError, KeyError, IndexError,
            AttributeError, OverflowError, MemoryError, RecursionError, UnicodeError, struct.error, RuntimeError)


def _parse_pickle(path: str) -> ParsedCheckpoint:
    from stylecore.formats.nvidia_pickle import parse_official_pickle
    from stylecore.formats.safe_pickle import TFNetworkStub, safe_load_pickle
    from stylecore.formats.snapshot import generator_record, is_official_pickle
    from stylecore.formats.stylenerf_pickle import is_stylenerf, parse_stylenerf

    obj = safe_load_pickle(path)
    if is_official_pickle(obj) or (isinstance(obj, dict) and ("G_ema" in obj or "G" in obj or "D" in obj)):
        key, G = generator_record(obj, path)  # StyleNeRF's snapshots share the layout
        return parse_stylenerf(G, key, path) if is_stylenerf(G) else parse_official_pickle(obj, path)
    if isinstance(obj, tuple) and any(isinstance(x, TFNetworkStub) for x in obj):
        from stylecore.formats.tf_pickle import parse_tf_pickle

        return parse_tf_pickle(obj, path)
    if type(obj) is int and obj == _LEGACY_TORCH_MAGIC:  # pre-1.6 torch.save (non-zip) file, e.g. an old rosinality .pt
        return _parse_torch(path)
    if isinstance(obj, dict):
        keys = ", ".join(repr(k) for k in list(obj)[:8])
        raise CheckpointError(path, f"a pickle holding a dict with keys {keys} is not a generator checkpoint; "
                                    f"supported: {SUPPORTED}")
    raise CheckpointError(path, f"a pickle holding a {type(obj).__name__} is not a generator checkpoint; "
                                f"supported: {SUPPORTED}")


def _parse_torch(path: str) -> ParsedCheckpoint:
    from stylecore.formats.rosinality import parse_torch_checkpoint

    return parse_torch_checkpoint(path)


def read_checkpoint(path: Union[str, "os.PathLike[str]"]) -> ParsedCheckpoint:
    """Sniff the format from the first bytes and run the matching reader (nothing cached)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise CheckpointError(path, f"cannot read the file ({exc.strerror or exc})") from None
    if not head:
        raise CheckpointError(path, f"the file is empty; expected one of: {SUPPORTED}")
    try:
        if head[:1] == b"\x80":
            return _parse_pickle(path)
        if head == b"PK\x03\x04":
            return _parse_torch(path)
    except CheckpointError:
        raise
    except ImportError as exc:  # a reader module missing from this install
        raise CheckpointError(path, f"no reader available for this format ({exc})") from None
    except _CORRUPT as exc:
        raise CheckpointError(path, f"corrupt or truncated checkpoint ({type(exc).__name__}: {exc})") from None
    raise CheckpointError(path, f"unrecognised file format (starts with {head!r}); supported: {SUPPORTED}")


def describe_mismatch(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str:
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: file {list(state[k].shape)} vs network {list(expected[k].shape)}"
              for k in expected if k in state and state[k].shape != expected[k].shape]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            more = f" (+{len(items) - 8} more)" if len(items) > 8 else ""
            parts.append(f"{label}: {', '.join(items[:8])}{more}")
    return "; ".join(parts)


def _construct(parsed: ParsedCheckpoint, path: str) -> torch.nn.Module:
    from stylecore.networks import build_generator

    try:
        with torch.device("meta"):
            return build_generator(parsed.architecture, dict(parsed.init_kwargs))
    except Exception:  # a constructor that needs real data: build normally (slower, same result)
        pass
    try:
        return build_generator(parsed.architecture, dict(parsed.init_kwargs))
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(path, f"cannot build a {parsed.architecture} generator from the stored "
                                    f"configuration {parsed.init_kwargs}: {exc}") from None


def build_from_parsed(parsed: ParsedCheckpoint, path: str, device: Union[str, torch.device] = "cpu") -> torch.nn.Module:
    """Construct the network, assign the checkpoint tensors (strict), recompute constants, move."""
    G = _construct(parsed, path)
    expected = G.state_dict()
    problems = describe_mismatch(expected, parsed.state_dict)
    if problems:
        raise CheckpointError(path, f"the checkpoint does not match the {parsed.architecture} network "
                                    f"built from its configuration: {problems}")
    state = {k: v.to(expected[k].dtype) if v.dtype != expected[k].dtype else v for k, v in parsed.state_dict.items()}
    try:
        G.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise CheckpointError(path, f"the checkpoint does not load into the network: {exc}") from None
    if callable(getattr(G, "init_constants", None)):
        G.init_constants()
    left = [n for n, t in [*G.named_parameters(), *G.named_buffers()] if t.is_meta]
    if left:
        raise CheckpointError(path, f"the network left tensors uninitialised after loading: {left[:8]}")
    return G.to(device).eval().requires_grad_(False)


def load_generator(path: Union[str, "os.PathLike[str]"], device: Union[str, torch.device] = "cpu") -> torch.nn.Module:
    """Load a generator from any supported checkpoint file; nothing stored in the file is executed.

    The converted copy is cached by content hash; `G.checkpoint_info` tells where it came from.
    """
    start = time.perf_counter()
    path = os.fspath(Path(path).expanduser())
    if not os.path.exists(path):
        raise CheckpointError(path, "no such file")
    if not os.path.isfile(path):
        raise CheckpointError(path, "not a regular file")
    try:
        key = cache.file_sha256(path)
    except OSError as exc:
        raise CheckpointError(path, f"cannot read the file ({exc.strerror or exc})") from None
    parsed = cache.load_cached(key)
    cached = parsed is not None
    if parsed is not None:
        try:
            G = build_from_parsed(parsed, path, device)
        except CheckpointError:  # an entry from an older reader that no longer fits: rebuild it
            parsed, cached = None, False
    if parsed is None:
        parsed = read_checkpoint(path)
        G = build_from_parsed(parsed, path, device)
        cache.store(key, parsed)
    G.checkpoint_info = {
        "path": path,
        "sha256": key,
        "architecture": parsed.architecture,
        "source": parsed.source,
        "cached": cached,
        "load_seconds": time.perf_counter() - start,
    }
    return G
