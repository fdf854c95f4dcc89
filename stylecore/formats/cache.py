"""Converted-copy cache: safetensors + json per checkpoint content hash, so the second load is fast.

Entries are written atomically (temp file + os.replace, json last as the commit marker); a cache
that cannot be written only costs speed, and a corrupt entry is discarded and rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import warnings
from pathlib import Path
from typing import Any, Optional, Union

import torch

from stylecore.formats.parsed import ParsedCheckpoint

__all__ = ["CACHE_FORMAT_VERSION", "cache_dir", "file_sha256", "load_cached", "store", "entry_paths", "atomic_write"]

CACHE_FORMAT_VERSION = 1
_INDEX_NAME = "index.json"
_CHUNK = 1 << 20
_MAX_INDEX_ENTRIES = 1000


def cache_dir() -> Path:
    """$STYLECORE_CACHE, else ~/.cache/stylecore/converted."""
    env = os.environ.get("STYLECORE_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "stylecore" / "converted"


def entry_paths(key: str) -> tuple[Path, Path]:
    """(tensors, metadata) file paths of one cache entry."""
    root = cache_dir()
    return root / f"{key}.safetensors", root / f"{key}.json"


def _warn(message: str) -> None:
    warnings.warn(f"stylecore cache: {message}", RuntimeWarning, stacklevel=3)


def atomic_write(target: Path, write: Any) -> None:
    """Write via a temp file in the same folder, then os.replace; never leaves a partial file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # honours the umask, unlike mkstemp
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read_index() -> dict[str, Any]:
    try:
        data = json.loads((cache_dir() / _INDEX_NAME).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def file_sha256(path: Union[str, "os.PathLike[str]"]) -> str:
    """SHA-256 of the file's content, memoised by (path, size, mtime_ns) so reloads skip rehashing."""
    path = Path(path).resolve()
    st = path.stat()
    stamp = [st.st_size, st.st_mtime_ns]
    index = _read_index()
    hit = index.get(str(path))
    if isinstance(hit, dict) and hit.get("stamp") == stamp and isinstance(hit.get("sha256"), str):
        return hit["sha256"]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    key = digest.hexdigest()
    index[str(path)] = {"stamp": stamp, "sha256": key}
    if len(index) > _MAX_INDEX_ENTRIES:  # keep the newest entries (dicts keep insertion order)
        index = dict(list(index.items())[-_MAX_INDEX_ENTRIES:])
    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        payload = json.dumps(index, indent=0)
        atomic_write(cache_dir() / _INDEX_NAME, lambda tmp: Path(tmp).write_text(payload, encoding="utf-8"))
    except OSError as exc:
        _warn(f"could not update the hash index in {cache_dir()} ({exc}); continuing without it")
    return key


def _discard(key: str, why: str) -> None:
    _warn(f"discarding corrupt entry {key[:12]}… ({why}); the checkpoint will be re-read")
    for p in entry_paths(key):
        try:
            p.unlink()
        except OSError:
            pass


def load_cached(key: str) -> Optional[ParsedCheckpoint]:
    """The cached conversion for this content hash, or None (absent, outdated or corrupt)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    tensors_path, meta_path = entry_paths(key)
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("cache_format") != CACHE_FORMAT_VERSION:
            return None  # written by another version: re-read and overwrite, not an error
        keys = meta["keys"]
        if tensors_path.stat().st_size != meta["tensors_bytes"]:
            raise ValueError("tensor file size differs from the recorded one")
        tensors = load_file(str(tensors_path))
        if sorted(tensors) != sorted(keys):
            raise ValueError("tensor names differ from the recorded ones")
        return ParsedCheckpoint(architecture=str(meta["architecture"]), init_kwargs=dict(meta["init_kwargs"]),
                                state_dict={k: tensors[k] for k in keys}, source=str(meta["source"]))
    except (OSError, ValueError, KeyError, TypeError, SafetensorError, RuntimeError) as exc:
        _discard(key, f"{type(exc).__name__}: {exc}")
        return None


def _own_contiguous(t: torch.Tensor) -> torch.Tensor:
    """A contiguous tensor that owns exactly its storage (safetensors refuses shared memory)."""
    t = t.detach().to("cpu").contiguous()
    if t.untyped_storage().nbytes() != t.nbytes or t.storage_offset() != 0:
        t = t.clone()
    return t


def store(key: str, parsed: ParsedCheckpoint) -> bool:
    """Write the entry atomically; on failure (read-only, disk full…) warn once and return False."""
    from safetensors.torch import save_file

    tensors_path, meta_path = entry_paths(key)
    try:
        tensors_path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: _own_contiguous(v) for k, v in parsed.state_dict.items()}
        atomic_write(tensors_path, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
        meta = {
            "cache_format": CACHE_FORMAT_VERSION,
            "architecture": parsed.architecture,
            "init_kwargs": parsed.init_kwargs,
            "source": parsed.source,
            "keys": list(parsed.state_dict),
            "tensors_bytes": tensors_path.stat().st_size,
        }
        payload = json.dumps(meta, indent=1, allow_nan=True)
        atomic_write(meta_path, lambda tmp: Path(tmp).write_text(payload, encoding="utf-8"))
        return True
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        try:  # the json is the commit marker; without it the tensors file is just garbage
            if not meta_path.exists():
                tensors_path.unlink()
        except OSError:
            pass
        _warn(f"could not write a converted copy to {cache_dir()} ({type(exc).__name__}: {exc}); "
              f"loading without the cache")
        return False
