"""Where editing data comes from and where it is kept: a small registry of Hub-hosted editing files
(fetched lazily through stylecore.engine.hub, so they share its cache, offline mode and error messages) and
the per-model cache folder for what the editing methods compute (PCA, k-means parts).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from stylecore.engine import hub
from stylecore.formats.cache import atomic_write, cache_dir
from stylecore.engine.zoo import ModelCard

__all__ = ["EditingAsset", "EDITING_ASSETS", "asset", "fetch_file", "fetch_asset", "editing_cache_dir",
           "model_cache_key", "atomic_write"]

Progress = Optional[Callable[[int, Optional[int], str], None]]


@dataclass(frozen=True)
class EditingAsset:
    """One editing file on the Hub and which generator it was made for."""

    id: str
    title: str
    repo_id: str
    filename: str
    repo_type: str = "model"
    revision: Optional[str] = None
    kind: str = "interfacegan"  # what reads it: "interfacegan" (a direction in W)
    fits: str = ""  # the generator whose W space it lives in
    license: str = ""


_IFG_SPACE = "ybelkada/interfacegan_pp"
_IFG_REV = "4d6b877a367cccdc695a18148a78017a5d92ec5b"  # the Space's commit that added the boundaries
_IFG_FITS = "StyleGAN2 FFHQ 1024 (config-f), W space, w_dim 512"
_IFG_LICENSE = "InterFaceGAN code MIT; boundaries as hosted in the Space (license not stated there)"

# reference/hub_models.md, "Editing data": seen in the Space's file listing, [1, 512] float arrays.
EDITING_ASSETS: tuple[EditingAsset, ...] = tuple(
    EditingAsset(id=f"interfacegan-{name.lower()}", title=f"InterFaceGAN: {label}", repo_id=_IFG_SPACE,
                 filename=f"boundaries/stylegan2_ffhq/boundary_{name}.npy", repo_type="space", revision=_IFG_REV,
                 fits=_IFG_FITS, license=_IFG_LICENSE)
    for name, label in (("Bald", "bald"), ("Eyeglasses", "eyeglasses"), ("Hat", "hat"),
                        ("Mustache", "mustache"), ("Smiling", "smile"), ("Young", "age (young)"))
)


def asset(asset_id: str) -> EditingAsset:
    """The registered asset with this id; the error lists the ids there are."""
    for item in EDITING_ASSETS:
        if item.id == asset_id:
            return item
    raise KeyError(f"unknown editing asset {asset_id!r}; known: {', '.join(a.id for a in EDITING_ASSETS)}")


def fetch_file(repo_id: str, filename: str, repo_type: str = "model", revision: Optional[str] = None,
               progress: Progress = None, label: Optional[str] = None) -> Path:
    """A Hub file as a local path, through the same cache, offline handling and errors as model files."""
    ident = label or re.sub(r"[^a-z0-9._-]+", "-", f"{repo_id}-{filename}".lower()).strip("-._") or "file"
    card = ModelCard(id=ident, title=ident, repo_id=repo_id, filename=filename, repo_type=repo_type,
                     revision=revision)
    return hub.fetch(card, progress=progress)


def fetch_asset(item: EditingAsset, progress: Progress = None) -> Path:
    """Download (once) and return a registered editing file."""
    return fetch_file(item.repo_id, item.filename, item.repo_type, item.revision, progress, label=item.id)


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
