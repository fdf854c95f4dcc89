"""Where editing data comes from and where it is kept: the editing files among the built-in
`RemoteFile`s (fetched lazily through stylecore.engine.hub, so they share its cache, offline mode and
error messages), any other Hub file by name, and the per-model cache folder for what the editing
methods compute (PCA, k-means parts).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Optional

from stylecore.engine import hub
from stylecore.engine.remote import FileRole, RemoteFile
from stylecore.engine.zoo import BUILTIN_FILES
from stylecore.formats.cache import atomic_write, cache_dir
from stylecore.progress import ByteProgress

__all__ = ["EDITING_ASSETS", "asset", "fetch_file", "fetch_asset", "editing_cache_dir", "model_cache_key",
           "atomic_write"]

# InterFaceGAN's boundaries for StyleGAN2 FFHQ 1024 (W space), as listed in the built-in cards file.
EDITING_ASSETS: tuple[RemoteFile, ...] = tuple(f for f in BUILTIN_FILES if f.id.startswith("interfacegan-"))


def asset(asset_id: str) -> RemoteFile:
    """The editing file with this id; the error lists the ids there are."""
    for item in EDITING_ASSETS:
        if item.id == asset_id:
            return item
    raise KeyError(f"unknown editing asset {asset_id!r}; known: {', '.join(a.id for a in EDITING_ASSETS)}")


def fetch_file(repo_id: str, filename: str, repo_type: str = "model", revision: Optional[str] = None,
               progress: ByteProgress = None, role: Optional[FileRole] = None) -> Path:
    """A Hub file named by hand as a local path, through the same cache, offline handling and errors as
    model files (`role`: what the file is for, see `stylecore.engine.hub.fetch`)."""
    ident = re.sub(r"[^a-z0-9._-]+", "-", f"{repo_id}-{filename}".lower()).strip("-._") or "file"
    file = RemoteFile(id=ident, repo_id=repo_id, filename=filename, repo_type=repo_type, revision=revision)
    return hub.fetch(file, progress=progress, role=role)


def fetch_asset(item: RemoteFile, progress: ByteProgress = None, role: Optional[FileRole] = None) -> Path:
    """Download (once) and return a built-in file (`role`: what it is for, see `stylecore.engine.hub.fetch`)."""
    return hub.fetch(item, progress=progress, role=role)


def editing_cache_dir(model_key: str) -> Path:
    """The folder for one model's computed editing data, beside the converted-checkpoint cache."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", model_key):
        raise ValueError(f"cache key {model_key!r} may only hold letters, digits, '.', '_' and '-'")
    return cache_dir().parent / "editing" / model_key


def model_cache_key(model: Any) -> str:
    """Cache key of a LoadedModel: its checkpoint's SHA-256, or the card id for built-in networks."""
    sha = (getattr(model, "info", None) or {}).get("sha256")
    if isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha):
        return sha
    card = model.card
    if card.format == "builtin":
        return f"builtin-{card.id}"
    return "source-" + hashlib.sha256(card.source.encode()).hexdigest()[:32]
