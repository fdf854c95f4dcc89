"""CLIP for text-driven editing: open_clip models with weights fetched through stylecore.engine.hub.

Weights come from open_clip's Hub format (`open_clip_model.safetensors`, e.g. OpenAI's ViT-B/32 at
`timm/vit_base_patch32_clip_224.openai`), so they share the hub cache, offline mode and error
messages of the generators; nothing is fetched by open_clip itself. The tokenizer's BPE vocabulary
ships inside open_clip, so text encoding works offline.

Image preprocessing is CLIP's own (resize the short side bicubic, centre crop, OpenAI mean/std),
done on tensors so that gradients reach the generator's code (latent optimisation). The model is
chosen by id (CLIP_MODELS), by `hf-hub:owner/repo[@revision]` (open_clip's Hub layout: its
open_clip_config.json and open_clip_model.safetensors), by `ARCH@hf://owner/repo/file.safetensors`,
or by the STYLECORE_CLIP environment variable.
"""
from __future__ import annotations

import json
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from stylecore.engine.remote import FileRole
from stylecore.engine.zoo import builtin_file
from stylecore.progress import ByteProgress

__all__ = ["ClipSpec", "CLIP_MODELS", "CLIP_ROLE", "DEFAULT_CLIP", "ENV_CLIP", "MAX_PROMPT_CHARS", "ClipModel",
           "resolve_clip", "build_clip", "load_clip", "clean_prompt"]

ENV_CLIP = "STYLECORE_CLIP"
# CLIP weights cannot be replaced by a local file: the way round a failed download is another CLIP, or no CLIP.
CLIP_ROLE = FileRole("CLIP model", f"choose a CLIP model that is already downloaded in the StyleCLIP tab's 'CLIP "
                     f"model' box (or with the {ENV_CLIP} environment variable), or use the 'Latent mapper' method, "
                     "which needs no CLIP")
MAX_PROMPT_CHARS = 1000  # CLIP reads 77 tokens; far longer text is a mistake, not a prompt
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ClipSpec:
    """One CLIP model: open_clip architecture name and the Hub file holding its weights."""

    id: str
    arch: Optional[str]  # open_clip config name (OpenAI weights need QuickGELU); None: the repo's open_clip_config.json
    repo_id: str
    filename: str = "open_clip_model.safetensors"
    revision: Optional[str] = None
    title: str = ""


def _builtin_clip(clip_id: str, arch: str) -> ClipSpec:
    """A built-in CLIP: its weights are the built-in file "clip-<id>" (stylecore/engine/cards.toml)."""
    weights = builtin_file(f"clip-{clip_id}")
    return ClipSpec(clip_id, arch, weights.repo_id, weights.filename, weights.revision, weights.title)


CLIP_MODELS: dict[str, ClipSpec] = {s.id: s for s in (
    _builtin_clip("openai-vit-b-32", "ViT-B-32-quickgelu"),
    _builtin_clip("openai-vit-b-16", "ViT-B-16-quickgelu"),
    _builtin_clip("openai-vit-l-14", "ViT-L-14-quickgelu"),
)}
DEFAULT_CLIP = "openai-vit-b-32"


def resolve_clip(name: Optional[str] = None) -> ClipSpec:
    """A registered id, 'hf-hub:owner/repo[@revision]' or 'ARCH@hf://owner/repo/file[@revision]';
    None means $STYLECORE_CLIP or the default."""
    name = (name or os.environ.get(ENV_CLIP) or DEFAULT_CLIP).strip()
    if name in CLIP_MODELS:
        return CLIP_MODELS[name]
    if name.startswith("hf-hub:"):
        repo, _, revision = name[len("hf-hub:"):].partition("@")
        if repo.count("/") == 1 and all(repo.split("/")):
            return ClipSpec(name, None, repo, revision=revision or None, title=name)
    arch, sep, url = name.partition("@")
    if sep and url.startswith("hf://"):
        rest, _, revision = url[len("hf://"):].partition("@")
        parts = rest.split("/")
        if len(parts) >= 3 and all(parts):
            return ClipSpec(name, arch, "/".join(parts[:2]), "/".join(parts[2:]), revision or None, title=name)
    raise ValueError(f"unknown CLIP model {name!r}: use one of {', '.join(CLIP_MODELS)} or "
                     "'ARCH@hf://owner/repo/open_clip_model.safetensors' (ARCH an open_clip model name)")


def clean_prompt(text: object, what: str = "prompt") -> str:
    """A prompt fit for CLIP: text, not empty, not absurdly long; control characters dropped.

    Emoji and other Unicode are kept (CLIP's byte-level BPE encodes them); text beyond CLIP's 77
    tokens is cut by the tokenizer, as in CLIP itself.
    """
    if not isinstance(text, str):
        raise ValueError(f"the {what} must be text, got {type(text).__name__}")
    cleaned = "".join(c for c in text if unicodedata.category(c)[0] != "C" or c in "\t\n").strip()
    if not cleaned:
        raise ValueError(f"the {what} is empty: describe the edit, e.g. 'a smiling face with curly hair'")
    if len(cleaned) > MAX_PROMPT_CHARS:
        raise ValueError(f"the {what} has {len(cleaned)} characters; CLIP reads about 60 words, so keep it "
                         f"under {MAX_PROMPT_CHARS} characters")
    return cleaned


class ClipModel(torch.nn.Module):
    """An open_clip model with its tokenizer; encodes text and [-1, 1] image tensors to unit vectors.

    A module so that moving it moves everything and the model manager can count its memory."""

    def __init__(self, model: torch.nn.Module, tokenizer: Callable, name: str = "clip"):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name
        size = getattr(model.visual, "image_size", 224)
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        mean = getattr(model.visual, "image_mean", None) or OPENAI_MEAN
        std = getattr(model.visual, "image_std", None) or OPENAI_STD
        device = next(model.parameters()).device
        self.register_buffer("mean", torch.tensor(mean, device=device).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, device=device).view(1, 3, 1, 1), persistent=False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1])

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] in [-1, 1] -> CLIP's input: short side resized (bicubic, antialiased) to the
        model's size, centre crop, OpenAI normalisation. Differentiable."""
        x = (images.float() + 1) / 2
        h, w = x.shape[-2:]
        s = self.image_size
        if (h, w) != (s, s):
            scale = s / min(h, w)
            size = (max(s, round(h * scale)), max(s, round(w * scale)))
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
            top, left = (x.shape[-2] - s) // 2, (x.shape[-1] - s) // 2
            x = x[..., top:top + s, left:left + s]
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-length image embeddings [N, D] of generator output in [-1, 1] (keeps gradients)."""
        return F.normalize(self.model.encode_image(self.preprocess(images.to(self.device))).float(), dim=-1)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Unit-length text embeddings [N, D]."""
        out = []
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenizer(list(texts[start:start + batch_size])).to(self.device)
            out.append(F.normalize(self.model.encode_text(tokens).float(), dim=-1))
        return torch.cat(out)


def _model_from_config(config: dict) -> tuple[torch.nn.Module, Callable]:
    """A plain CLIP (no timm / Hugging Face towers) from an open_clip_config.json, with its tokenizer."""
    import open_clip
    from open_clip.tokenizer import SimpleTokenizer

    cfg = dict(config.get("model_cfg", config))
    if "timm_model_name" in cfg.get("vision_cfg", {}) or "hf_model_name" in cfg.get("text_cfg", {}) \
            or cfg.get("custom_text") or "multimodal_cfg" in cfg:
        raise ValueError("only plain open_clip CLIP models (ViT image and text towers) are supported here")
    cfg.pop("custom_text", None)
    model = open_clip.CLIP(**cfg)
    return model, SimpleTokenizer(context_length=cfg.get("text_cfg", {}).get("context_length", 77))


def build_clip(arch: Optional[str] = "ViT-B-32-quickgelu", weights: Optional[str] = None,
               device: Union[str, torch.device] = "cpu", seed: int = 0, config: Optional[dict] = None,
               **model_kwargs: object) -> ClipModel:
    """An open_clip model: random weights (deterministic by `seed`; tests, benchmarks) or a local
    safetensors / state-dict file. The architecture is an open_clip name or, with `config`, an
    open_clip_config.json's content; `model_kwargs` override it (e.g. smaller widths)."""
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if config is not None:
            model, tokenizer = _model_from_config({**config.get("model_cfg", config), **model_kwargs})
        else:
            model = open_clip.create_model(str(arch), pretrained=None, **model_kwargs)
            tokenizer = open_clip.get_tokenizer(str(arch))
    if weights is not None:
        if str(weights).endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(str(weights))
        else:
            state = torch.load(str(weights), map_location="cpu", weights_only=True)
            state = state.get("state_dict", state)
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if k != "logit_bias"]
        if missing or unexpected:
            raise ValueError(f"{weights}: not {arch} CLIP weights (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return ClipModel(model.to(device), tokenizer, name=str(arch or "clip"))


def load_clip(name: Optional[str] = None, device: Union[str, torch.device] = "cpu",
              progress: ByteProgress = None) -> ClipModel:
    """A fresh CLIP model `name` (see resolve_clip) on `device`, its files downloaded once into the hub
    cache. Callers keep it (the app: through ModelManager.resource)."""
    from stylecore.engine.assets import fetch_file

    spec = resolve_clip(name)
    config = None
    if spec.arch is None:
        config_path = fetch_file(spec.repo_id, "open_clip_config.json", revision=spec.revision, role=CLIP_ROLE)
        try:
            config = json.loads(Path(config_path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{spec.repo_id}: unreadable open_clip_config.json ({exc})") from None
    path = fetch_file(spec.repo_id, spec.filename, revision=spec.revision, progress=progress, role=CLIP_ROLE)
    clip = build_clip(spec.arch, str(path), device, config=config)
    clip.name = spec.id
    return clip
