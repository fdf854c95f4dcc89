"""Model cards: which checkpoint a model id means, where it lives and what it is.

A card only *describes* a model; nothing here touches the network or the disk beyond reading a
user's models file (downloads are `stylecore.engine.hub`, reading checkpoints is `stylecore.formats.loader`).

Built-in cards cover the checkpoints of reference/hub_models.md whose Hub repo has been seen
in a file listing. Users add or override cards without editing code:

* a models file, ``--models FILE`` or ``STYLECORE_MODELS=FILE[:FILE...]`` (``os.pathsep``),
  JSON (a list of objects, or ``{"models": [...]}``) or TOML (``[[models]]`` tables)::

      [[models]]
      id = "sg3-t-ffhq-1024"                       # a new id adds a card
      title = "StyleGAN3-T FFHQ 1024"
      architecture = "stylegan3"
      repo_id = "someone/stylegan3-mirror"          # any repo you trust
      filename = "stylegan3-t-ffhq-1024x1024.pkl"
      revision = "a1b2c3..."                        # optional: branch, tag or commit (default main)
      resolution = 1024
      domain = "faces"

      [[models]]
      id = "sg2-ffhq-512"                           # an existing id overrides fields of that card
      local_path = "/data/stylegan2-ffhq-512x512.pkl"

  Keys are the `ModelCard` fields, plus ``spec`` (see below) as a shorthand for the source.
  Relative ``local_path`` values are relative to the models file. Overriding merges: the fields
  given replace the card's; giving ``local_path`` drops the Hub source and vice versa.
* a one-off spec (``--model SPEC`` / `Zoo.add_spec`): ``hf://owner/repo/path/file.pkl[@revision]``
  (``hf://datasets/...`` and ``hf://spaces/...`` for other repo types), an ``https://`` URL on an
  allowed host (NVIDIA's by default; a models file adds hosts with a top-level
  ``allowed_hosts = ["host"]``), or a local path; prefix ``my-id=`` to choose the id.

NVIDIA's official networks (reference/real_files.md section 2) are built in with their https URLs
(`OFFICIAL_CARDS`): all StyleGAN3 T/R and StyleGAN2 pickles on NGC, the StyleGAN2-ADA and the
StyleGAN2 TensorFlow pickles; `stylecore.engine.downloads` fetches and verifies them. The rosinality-format
domain-adapted generators of ``rinong/stylegan-nada-models`` (``hf://rinong/stylegan-nada-models/pixar.pt``
...) load through a spec.
"""
from __future__ import annotations

import difflib
import json
import os
import re
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, packaged as tomli
    try:
        import tomli as tomllib
    except ImportError:  # pragma: no cover - only without the optional package
        tomllib = None  # type: ignore[assignment]

__all__ = [
    "ModelCard", "Zoo", "UnknownModelError", "ModelsFileError", "BUILTIN_CARDS", "ENV_VAR",
    "ARCHITECTURES", "FORMATS", "parse_spec", "read_models_file",
]

ENV_VAR = "STYLECORE_MODELS"
ARCHITECTURES = ("stylegan2", "stylegan3", "stylenerf", "auto")
FORMATS = ("nvidia-pickle", "tf-pickle", "rosinality", "builtin", "auto")
REPO_TYPES = ("model", "dataset", "space")
_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
_EXT_FORMAT = {".pkl": "nvidia-pickle", ".pt": "rosinality", ".pth": "rosinality"}

PathLike = Union[str, "os.PathLike[str]"]


class UnknownModelError(KeyError):
    """An id no card has; the message lists the ids that exist so the user can pick one."""

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0]) if self.args else ""


class ModelsFileError(ValueError):
    """A user models file (or spec) that cannot be used; says which file and which entry."""


@dataclass(frozen=True)
class ModelCard:
    """Everything the app needs to know about a checkpoint before it is downloaded.

    `architecture`/`format` may be "auto" (decided when the file is read: the loader sniffs the
    content) and `resolution` 0 (unknown until loaded). Exactly one source: `repo_id` +
    `filename` (Hub), `url` (https, e.g. NVIDIA's NGC) or `local_path`; "builtin" cards need none.
    `sha256` and `size` (bytes), when known, are what the published file must be: a download that
    differs is refused, so a changed upstream file never loads silently.
    """

    id: str
    title: str = ""
    architecture: str = "auto"
    format: str = "auto"
    resolution: int = 0
    domain: str = ""
    repo_id: Optional[str] = None
    filename: Optional[str] = None
    revision: Optional[str] = None
    repo_type: str = "model"
    local_path: Optional[str] = None
    url: Optional[str] = None
    sha256: Optional[str] = None
    size: int = 0
    license: str = ""
    c_dim: int = 0
    notes: str = ""
    force_fp32: bool = False

    def __post_init__(self) -> None:
        problems = card_problems(self)
        if problems:
            raise ValueError(f"model card {self.id!r}: " + "; ".join(problems))
        if not self.title:
            object.__setattr__(self, "title", self.id)

    @property
    def is_builtin(self) -> bool:
        return self.format == "builtin"

    @property
    def source(self) -> str:
        """Where the file comes from, as a user would write it (a spec or a path)."""
        if self.is_builtin:
            return "built-in"
        if self.local_path:
            return self.local_path
        if self.url:
            return self.url
        prefix = "" if self.repo_type == "model" else f"{self.repo_type}s/"
        rev = f"@{self.revision}" if self.revision else ""
        return f"hf://{prefix}{self.repo_id}/{self.filename}{rev}"


def card_problems(card: ModelCard) -> list[str]:
    """Every reason a card is unusable (empty when it is fine); shared by the dataclass and file checks."""
    out: list[str] = []
    if not isinstance(card.id, str) or not _ID_RE.fullmatch(card.id):
        out.append(f"id {card.id!r} must be lower-case letters, digits, '.', '_' or '-'")
    if card.architecture not in ARCHITECTURES:
        out.append(f"architecture {card.architecture!r} is not one of {', '.join(ARCHITECTURES)}")
    if card.format not in FORMATS:
        out.append(f"format {card.format!r} is not one of {', '.join(FORMATS)}")
    if card.repo_type not in REPO_TYPES:
        out.append(f"repo_type {card.repo_type!r} is not one of {', '.join(REPO_TYPES)}")
    for name in ("resolution", "c_dim", "size"):
        value = getattr(card, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            out.append(f"{name} must be a whole number >= 0, not {value!r}")
    if card.sha256 is not None and not (isinstance(card.sha256, str) and re.fullmatch(r"[0-9a-f]{64}", card.sha256)):
        out.append(f"sha256 {card.sha256!r} must be 64 lower-case hex digits")
    if card.format != "builtin":
        if card.url is not None:
            if not re.fullmatch(r"https?://[^/\s]+/\S*", str(card.url)):
                out.append(f"url {card.url!r} must be an http(s) address such as https://host/path/file.pkl")
            if card.repo_id or card.filename:
                out.append("give either url or repo_id/filename, not both")
        elif card.repo_id and not card.filename:
            out.append("repo_id is set but filename is missing")
        elif card.filename and not card.repo_id and not card.local_path:
            out.append("filename is set but repo_id is missing")
        elif not (card.repo_id and card.filename) and not card.local_path:
            out.append("needs a source: repo_id and filename (a Hub file), url or local_path")
        if card.repo_id and not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", card.repo_id):
            out.append(f"repo_id {card.repo_id!r} must look like 'owner/name'")
    return out


def _card(id: str, title: str, arch: str, fmt: str, res: int, domain: str, repo: str, filename: str,
          license: str, notes: str = "", **kw: Any) -> ModelCard:
    return ModelCard(id=id, title=title, architecture=arch, format=fmt, resolution=res, domain=domain,
                     repo_id=repo, filename=filename, license=license, notes=notes, **kw)


_NV = "NVIDIA Source Code License-NC (non-commercial)"
_NV_ADA = _NV + "; StyleGAN2-ADA release"
_UNSTATED = "not stated on the repo: check it before use beyond research"
_HUMAN = "StyleGAN-Human: research and non-commercial use only (see its repo)"
_SNERF = "CC BY-NC 4.0 (model card); FFHQ images CC BY-NC-SA 4.0"
_DG, _ZLP, _ZL = "DragGan/DragGan-Models", "ZeqiangLai/StyleGAN2-pkl", "ZeqiangLai/StyleGAN2"
# Commits of the Hub repos at which the files below were seen (reference/real_files.md section 3).
_DG_REV = "87f7e5149260af3f7ca87ef12e527d6300bc44c7"
_ZLP_REV = "422f40439ddaa6d041cf698347f08e9bdf9f6036"
_ZL_REV = "bb4e00dc8ac0afbb9e0a5b6f72754c679673ee2e"
_HUMAN_REV = "2ffc51649a4967b850584a751cc3070cbf78741e"
_SNERF_REV = "ff1f82bb8abd58fcc16f8d1f14f8539c21beb208"
_ROSI_NOTE = "rosinality-format .pt; converted to the official network when loaded"
_HUB_COPY = "Hub copy of NVIDIA's file (pinned, SHA-256 checked)"

# NVIDIA's own servers (reference/real_files.md section 2): public, no login, no published checksum.
_NGC = "https://api.ngc.nvidia.com/v2/models/nvidia/research/{family}/versions/1/files/{name}"
_NVLABS = "https://nvlabs-fi-cdn.nvidia.com/{folder}/{name}"
# dataset key -> (title, domain, dataset license)
_DATASETS = {
    "ffhq": ("FFHQ", "faces", "FFHQ images CC BY-NC-SA 4.0"),
    "ffhqu": ("FFHQ-U (unaligned)", "faces", "FFHQ images CC BY-NC-SA 4.0"),
    "metfaces": ("MetFaces", "art", "MetFaces images CC BY-NC 2.0"),
    "metfacesu": ("MetFaces-U (unaligned)", "art", "MetFaces images CC BY-NC 2.0"),
    "afhqv2": ("AFHQv2 (cats, dogs, wild animals)", "animals", "AFHQ images CC BY-NC 4.0"),
    "afhqcat": ("AFHQ Cat", "animals", "AFHQ images CC BY-NC 4.0"),
    "afhqdog": ("AFHQ Dog", "animals", "AFHQ images CC BY-NC 4.0"),
    "afhqwild": ("AFHQ Wild", "animals", "AFHQ images CC BY-NC 4.0"),
    "brecahad": ("BreCaHAD (histology)", "medical", "BreCaHAD images CC BY 4.0"),
    "cifar10": ("CIFAR-10 (10 classes)", "objects", "CIFAR-10 images: see its site"),
    "celebahq": ("CelebA-HQ", "faces", "CelebA images: non-commercial research only"),
    "lsundog": ("LSUN Dog", "animals", "LSUN images: see its site"),
    "car": ("LSUN Car", "cars", "LSUN images: see its site"),
    "cat": ("LSUN Cat", "animals", "LSUN images: see its site"),
    "church": ("LSUN Church", "buildings", "LSUN images: see its site"),
    "horse": ("LSUN Horse", "animals", "LSUN images: see its site"),
}
_CONDITIONAL = {"cifar10": 10}


def _official(id: str, title: str, arch: str, key: str, res: int, url: str, fmt: str = "nvidia-pickle",
              notes: str = "") -> ModelCard:
    name, domain, data_license = _DATASETS[key]
    c_dim = _CONDITIONAL.get(key, 0)
    extra = f"conditional: pick one of {c_dim} classes" if c_dim else ""
    return ModelCard(id=id, title=f"{title} {name} {res}", architecture=arch, format=fmt, resolution=res,
                     domain=domain, url=url, license=f"{_NV}; {data_license}", c_dim=c_dim,
                     notes="; ".join(n for n in ("NVIDIA's official network", extra, notes) if n))


_SG3_FILES = (("ffhq", 1024), ("ffhqu", 1024), ("ffhqu", 256), ("metfaces", 1024), ("metfacesu", 1024),
              ("afhqv2", 512))
_SG2_FILES = (("ffhq", 256), ("ffhq", 512), ("ffhq", 1024), ("ffhqu", 256), ("ffhqu", 1024), ("metfaces", 1024),
              ("metfacesu", 1024), ("afhqv2", 512), ("afhqcat", 512), ("afhqdog", 512), ("afhqwild", 512),
              ("brecahad", 512), ("cifar10", 32), ("celebahq", 256), ("lsundog", 256))
_ADA_FILES = (("ffhq", 1024), ("metfaces", 1024), ("afhqcat", 512), ("afhqdog", 512), ("afhqwild", 512),
              ("brecahad", 512), ("cifar10", 32))
_TF_FILES = (("ffhq", 1024, ""), ("car", 512, "images are 512x384"), ("cat", 256, ""), ("church", 256, ""),
             ("horse", 256, ""))

OFFICIAL_CARDS: tuple[ModelCard, ...] = (
    *(_official(f"sg3-{cfg}-{key}-{res}", f"StyleGAN3-{cfg.upper()}", "stylegan3", key, res,
                _NGC.format(family="stylegan3", name=f"stylegan3-{cfg}-{key}-{res}x{res}.pkl"))
      for cfg in ("t", "r") for key, res in _SG3_FILES),
    *(_official(f"sg2-{key}-{res}", "StyleGAN2", "stylegan2", key, res,
                _NGC.format(family="stylegan2", name=f"stylegan2-{key}-{res}x{res}.pkl"))
      for key, res in _SG2_FILES),
    *(_official(f"sg2ada-{key}-{res}", "StyleGAN2-ADA", "stylegan2", key, res,
                _NVLABS.format(folder="stylegan2-ada-pytorch/pretrained", name=f"{key}.pkl"))
      for key, res in _ADA_FILES),
    *(_official(f"sg2-{key}-{res}-tf", "StyleGAN2 config-f (TensorFlow pickle)", "stylegan2", key, res,
                _NVLABS.format(folder="stylegan2/networks", name=f"stylegan2-{key}-config-f.pkl"), fmt="tf-pickle",
                notes="; ".join(n for n in ("legacy TensorFlow pickle, converted when loaded", extra) if n))
      for key, res, extra in _TF_FILES),
)

BUILTIN_CARDS: tuple[ModelCard, ...] = (
    ModelCard(id="demo", title="Built-in demo network (random weights, untrained)", architecture="stylegan2",
              format="builtin", resolution=64, domain="demo", license="MIT (part of this project)",
              notes="untrained demo network, built from a seed; needs no download"),
    ModelCard(id="demo-sg3", title="Built-in StyleGAN3 demo network (random weights, untrained)",
              architecture="stylegan3", format="builtin", resolution=64, domain="demo",
              license="MIT (part of this project)",
              notes="untrained demo network for trying translate and rotate; needs no download"),
    ModelCard(id="demo-nerf", title="Built-in StyleNeRF demo network (random weights, untrained)",
              architecture="stylenerf", format="builtin", resolution=64, domain="demo",
              license="MIT (part of this project)",
              notes="untrained 3-D-aware demo network for trying the camera controls; needs no download"),
    *OFFICIAL_CARDS,
    # Hub copies of official NVIDIA pickles, and other StyleGAN2 / StyleGAN2-ADA pickles on the Hub
    _card("sg2-ffhq-512-hub", "StyleGAN2 FFHQ 512 (Hub copy)", "stylegan2", "nvidia-pickle", 512, "faces", _DG,
          "stylegan2-ffhq-512x512.pkl", _NV + "; FFHQ images CC BY-NC-SA 4.0", _HUB_COPY, revision=_DG_REV,
          sha256="d2b1c92f41ce8a64c55f7a75ef06c4c0eef9e17b1eb29aae8c10fb37b3e60478"),
    _card("sg2-afhqcat-512-hub", "StyleGAN2 AFHQ Cat 512 (Hub copy)", "stylegan2", "nvidia-pickle", 512, "animals",
          _DG, "stylegan2-afhqcat-512x512.pkl", _NV + "; AFHQ images CC BY-NC 4.0", _HUB_COPY, revision=_DG_REV,
          sha256="17a83abee464242f8bb40dc6363d33c2fb087066b68fc0147677fdbf21f7a7a9"),
    _card("sg2ada-afhqdog-512-hub", "StyleGAN2-ADA AFHQ Dog 512 (Hub copy)", "stylegan2", "nvidia-pickle", 512,
          "animals", _ZLP, "ada/afhqdog.pkl", _NV_ADA, _HUB_COPY, revision=_ZLP_REV,
          sha256="f124ff3f23206052473a7212cbc1f4e095a73c231500411e9c3b81a11eac3662"),
    _card("sg2-lhq-256", "StyleGAN2 LHQ landscapes 256", "stylegan2", "nvidia-pickle", 256, "landscapes", _DG,
          "stylegan2-lhq-256x256.pkl", _UNSTATED, revision=_DG_REV,
          sha256="ae2c33d456ff3f274d472da9849c9bb515b7f0032af0d713d0d2d7f42b7942dc"),
    _card("sg2-dogs-1024", "StyleGAN2 dogs 1024 (Self-Distilled StyleGAN)", "stylegan2", "nvidia-pickle", 1024,
          "animals", _DG, "stylegan2_dogs_1024_pytorch.pkl", _UNSTATED, revision=_DG_REV, size=381630441,
          sha256="c9e93090d02916165a602c728c0e37458fc0c58fbc58e4d75bcd096bb81c7e8c"),
    _card("sg2-horses-256", "StyleGAN2 horses 256 (Self-Distilled StyleGAN)", "stylegan2", "nvidia-pickle", 256,
          "animals", _DG, "stylegan2_horses_256_pytorch.pkl", _UNSTATED, revision=_DG_REV, size=357336721,
          sha256="f100dc32e2731a293f3b31a9038416f72aa5cc30555b3315a82e19c065f81b0c"),
    _card("sg2ada-metfaces-1024-hub", "StyleGAN2-ADA MetFaces 1024 (Hub copy)", "stylegan2", "nvidia-pickle", 1024,
          "art", _ZLP, "ada/metfaces.pkl", _NV_ADA + "; MetFaces images CC BY-NC 2.0", _HUB_COPY, revision=_ZLP_REV,
          sha256="880a460d011a3696c088f58f5844b44271b17903963f2671f96f72dfbce5f76f"),
    _card("sg2ada-brecahad-512-hub", "StyleGAN2-ADA BreCaHAD 512 (Hub copy)", "stylegan2", "nvidia-pickle", 512,
          "medical", _ZLP, "ada/brecahad.pkl", _NV_ADA, _HUB_COPY, revision=_ZLP_REV,
          sha256="f9f0c2766187aff4c3424c4a5a67d52c503672f28cf08eab645382523b7a5161"),
    _card("sg2-human-1024", "StyleGAN-Human v2 1024x512 (full body)", "stylegan2", "nvidia-pickle", 1024, "humans",
          "public-data/StyleGAN-Human", "models/stylegan_human_v2_1024.pkl", _HUMAN,
          "call with force_fp32=True; images are 1024x512; mirror: " + _ZLP + "/human/stylegan_human_v2_1024.pkl",
          force_fp32=True, revision=_HUMAN_REV),
    _card("sg2-human-512", "StyleGAN-Human v2 512x256 (full body)", "stylegan2", "nvidia-pickle", 512, "humans",
          _ZLP, "human/stylegan_human_v2_512.pkl", _HUMAN, "call with force_fp32=True; images are 512x256",
          force_fp32=True, revision=_ZLP_REV, size=352745981,
          sha256="7af33f638e3b3aba7bf99456eec3e9d4a022d8a7dd67683a3605a7dd37665a3b"),
    # Hub copies of the legacy TensorFlow pickles (config-f)
    _card("sg2-ffhq-1024-tf-hub", "StyleGAN2 FFHQ 1024 (config-f, TensorFlow pickle, Hub copy)", "stylegan2",
          "tf-pickle", 1024, "faces", _ZLP, "stylegan2/stylegan2-ffhq-config-f.pkl",
          _NV + "; FFHQ images CC BY-NC-SA 4.0", "legacy TensorFlow pickle; converted when loaded; " + _HUB_COPY,
          revision=_ZLP_REV, size=381673535, sha256="adf127ea7bb8a7788c8bdeda3c9937f7310b669b09ecf799ca53a631ff46948d"),
    _card("sg2-car-512-tf-hub", "StyleGAN2 LSUN Car 512x384 (config-f, TensorFlow pickle, Hub copy)", "stylegan2",
          "tf-pickle", 512, "cars", _DG, "stylegan2-car-config-f.pkl", _NV,
          "legacy TensorFlow pickle; images are 512x384; " + _HUB_COPY, revision=_DG_REV),
    _card("sg2-cat-256-tf-hub", "StyleGAN2 LSUN Cat 256 (config-f, TensorFlow pickle, Hub copy)", "stylegan2",
          "tf-pickle", 256, "animals", _DG, "stylegan2-cat-config-f.pkl", _NV,
          "legacy TensorFlow pickle; " + _HUB_COPY, revision=_DG_REV, size=357418027,
          sha256="08940fd616cfaf6bc7b0286b5d1a0b3f70febb26e136d64716c8d3f5e9bd3883"),
    # StyleGAN3
    _card("sg3-t-lhq-256", "StyleGAN3-T LHQ landscapes 256 (Justin Pinkney)", "stylegan3", "nvidia-pickle", 256,
          "landscapes", "justinpinkney/stylegan3-t-lhq-256", "lhq-256-stylegan3-t-25Mimg.pkl", "MIT (repo card)",
          revision="bc80be416c3660d93e8a7421bc451a6d31a8a1ae", size=343475703,
          sha256="cdf396b1e68a7da77faa292b3360e97bab42d12f0817016616a2146b8ed4a10a"),
    # StyleNeRF (facebookresearch), StyleGAN2-ADA-style pickles with OmegaConf configuration
    *(_card(f"stylenerf-ffhq-{res}", f"StyleNeRF FFHQ {res}", "stylenerf", "nvidia-pickle", res, "faces",
            "facebook/stylenerf-ffhq-config-basic", f"ffhq_{res}.pkl", _SNERF,
            "3-D-aware: camera yaw, pitch and field of view in the StyleNeRF tab", revision=_SNERF_REV)
      for res in (256, 512, 1024)),
    # rosinality-format StyleGAN2 (.pt)
    _card("sg2-ffhq-1024-rosinality", "StyleGAN2 FFHQ 1024 (config-f, rosinality .pt)", "stylegan2", "rosinality",
          1024, "faces", "akhaliq/OneshotCLIP-stylegan2-ffhq", "stylegan2-ffhq-config-f.pt",
          _NV + " (converted weights)", _ROSI_NOTE + "; the generator e4e, pSp and StyleCLIP's fs3.npy were made "
          "with; mirror: " + _ZL + "/stylegan2-ffhq-config-f.pt",
          revision="024390a9508cb2d124dfaa8ec1caee3ad1a9da59", size=381462551,
          sha256="bae494ef77e32a9cd1792a81a3c167692a0e64f6bcd8b06592ff42917e2ed46e"),
    _card("sg2-car-512-rosinality", "StyleGAN2 LSUN Car 512x384 (config-f, rosinality .pt)", "stylegan2",
          "rosinality", 512, "cars", _ZL, "stylegan2-car-config-f.pt", _NV + " (converted weights)", _ROSI_NOTE,
          revision=_ZL_REV, size=123949595, sha256="c69f161fd576801027cbaa8b09142b5dd9f508034b2d0f4a2a0cdcbc1d587c9c"),
    _card("sg2-cat-256-rosinality", "StyleGAN2 LSUN Cat 256 (config-f, rosinality .pt)", "stylegan2", "rosinality",
          256, "animals", _ZL, "stylegan2-cat-config-f.pt", _NV + " (converted weights)", _ROSI_NOTE,
          revision=_ZL_REV, size=120878283, sha256="ff1036877c8964ba7c9e84316e67ea26bea64bbfcf6bd6c645f45589d248727f"),
    _card("sg2-church-256-rosinality", "StyleGAN2 LSUN Church 256 (config-f, rosinality .pt)", "stylegan2",
          "rosinality", 256, "buildings", _ZL, "stylegan2-church-config-f.pt", _NV + " (converted weights)",
          _ROSI_NOTE, revision=_ZL_REV),
    _card("sg2-horse-256-rosinality", "StyleGAN2 LSUN Horse 256 (config-f, rosinality .pt)", "stylegan2",
          "rosinality", 256, "animals", _ZL, "stylegan2-horse-config-f.pt", _NV + " (converted weights)",
          _ROSI_NOTE, revision=_ZL_REV),
    _card("sg2-ada-ffhq-1024-rosinality", "StyleGAN2-ADA FFHQ (rosinality .pt)", "stylegan2", "rosinality", 1024,
          "faces", _ZL, "ada/ffhq.pt", _NV_ADA + " (converted weights)",
          _ROSI_NOTE + "; resolution as in the official ADA release, checked when loaded", revision=_ZL_REV,
          sha256="1a0c25c17013e0bb99bd3de4e80ea52cb3efc2b71224ff902e0a29bafac9c531"),
    *(_card(f"sg2-ada-{key}-{res}-rosinality", f"StyleGAN2-ADA {_DATASETS[key][0]} {res} (rosinality .pt)",
            "stylegan2", "rosinality", res, _DATASETS[key][1], _ZL, f"ada/{key}.pt", _NV_ADA + " (converted weights)",
            _ROSI_NOTE, revision=_ZL_REV)
      for key, res in (("metfaces", 1024), ("afhqcat", 512), ("afhqdog", 512), ("afhqwild", 512), ("brecahad", 512))),
    _card("sg2-human-512-rosinality", "StyleGAN-Human v2 512x256 (rosinality .pt)", "stylegan2", "rosinality", 512,
          "humans", _ZL, "human/v2_512.pt", _HUMAN, _ROSI_NOTE + "; call with force_fp32=True", force_fp32=True,
          revision=_ZL_REV),
    _card("sg2-human-1024-rosinality", "StyleGAN-Human v2 1024x512 (rosinality .pt)", "stylegan2", "rosinality",
          1024, "humans", _ZL, "human/v2_1024.pt", _HUMAN, _ROSI_NOTE + "; call with force_fp32=True",
          force_fp32=True, revision=_ZL_REV, sha256="4ed850f82c8a1bd8ee904e94c38de29c2e9a8680b93ae66be115f52ea167c330"),
)


# ---------------------------------------------------------------------------------------------
# specs


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return slug or "model"


def guess_format(filename: str) -> str:
    """Format from the file extension; "auto" (the loader sniffs) when the extension says nothing."""
    return _EXT_FORMAT.get(Path(filename).suffix.lower(), "auto")


def parse_spec(spec: str, base_dir: Optional[PathLike] = None) -> dict[str, Any]:
    """`hf://[datasets/|spaces/]owner/repo/path/file[@revision]`, an https URL or a local path -> card fields.

    The id is not included (the caller picks one); relative local paths resolve against
    `base_dir` (default: the current folder).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ModelsFileError(f"empty model spec {spec!r}: write hf://owner/repo/file.pkl[@revision] or a path")
    spec = spec.strip()
    if spec.startswith("hf://"):
        rest = spec[len("hf://"):]
        repo_type = "model"
        for plural, kind in (("datasets/", "dataset"), ("spaces/", "space"), ("models/", "model")):
            if rest.startswith(plural):
                repo_type, rest = kind, rest[len(plural):]
                break
        parts = rest.split("/", 2)
        if len(parts) < 3 or not all(parts):
            raise ModelsFileError(f"model spec {spec!r}: expected hf://owner/repo/path/to/file.pkl[@revision]")
        repo_id, path = f"{parts[0]}/{parts[1]}", parts[2]
        filename, at, revision = path.partition("@")  # revisions may hold '/' (refs/pr/1), filenames rarely '@'
        if not filename or filename.endswith("/") or (at and not revision):
            raise ModelsFileError(f"model spec {spec!r}: expected hf://owner/repo/path/to/file.pkl[@revision]")
        return {"repo_id": repo_id, "filename": filename, "revision": revision or None, "repo_type": repo_type,
                "format": guess_format(filename), "architecture": "auto"}
    if spec.startswith(("https://", "http://")):
        if not re.fullmatch(r"https?://[^/\s]+/\S*[^/]", spec):
            raise ModelsFileError(f"model spec {spec!r}: expected https://host/path/to/file.pkl")
        name = Path(spec.split("?", 1)[0]).name
        return {"url": spec, "format": guess_format(name), "architecture": "auto"}
    if "://" in spec:
        raise ModelsFileError(f"model spec {spec!r}: only hf:// and https:// addresses and local paths are supported")
    path = Path(os.path.expandvars(spec)).expanduser()
    if not path.is_absolute():
        path = Path(base_dir or os.getcwd()) / path
    return {"local_path": str(path), "format": guess_format(path.name), "architecture": "auto"}


# ---------------------------------------------------------------------------------------------
# models files

_FIELDS = {f.name: f for f in fields(ModelCard)}
_STR_FIELDS = {"id", "title", "architecture", "format", "domain", "repo_type", "license", "notes"}
_OPT_STR_FIELDS = {"repo_id", "filename", "revision", "local_path", "url", "sha256"}
_SOURCE_FIELDS = ("repo_id", "filename", "revision", "repo_type", "local_path", "url")


def _entry_name(index: int, entry: Any) -> str:
    ident = entry.get("id") if isinstance(entry, dict) else None
    return f"entry {index + 1}" + (f" (id {ident!r})" if isinstance(ident, str) else "")


def _check_entry(entry: Any, where: str) -> dict[str, Any]:
    """Type- and key-check one raw entry; returns it with `spec` expanded and paths resolved later."""
    if not isinstance(entry, dict):
        raise ModelsFileError(f"{where}: expected a table/object of card fields, got {type(entry).__name__}")
    allowed = set(_FIELDS) | {"spec"}
    for key in entry:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ModelsFileError(f"{where}: unknown key {key!r}{hint}; known keys: {', '.join(sorted(allowed))}")
    if "id" not in entry:
        raise ModelsFileError(f"{where}: missing 'id' (a short name such as \"sg2-ffhq-512\")")
    for key, value in entry.items():
        if key in _STR_FIELDS or key == "spec":
            ok = isinstance(value, str)
            want = "a string"
        elif key in _OPT_STR_FIELDS:
            ok = value is None or isinstance(value, str)
            want = "a string"
        elif key in ("resolution", "c_dim", "size"):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            want = "a whole number >= 0"
        elif key == "force_fp32":
            ok = isinstance(value, bool)
            want = "true or false"
        else:  # pragma: no cover - every field is listed above
            ok, want = True, ""
        if not ok:
            raise ModelsFileError(f"{where}: {key!r} must be {want}, not {value!r}")
    if not _ID_RE.fullmatch(entry["id"]):
        raise ModelsFileError(f"{where}: id {entry['id']!r} must be lower-case letters, digits, '.', '_' or '-'")
    return dict(entry)


def _checked_hosts(path: Path, hosts: Any) -> list[str]:
    """A models file's `allowed_hosts`: more https hosts model URLs may be downloaded from."""
    if not isinstance(hosts, list) or not all(isinstance(h, str) and re.fullmatch(r"[A-Za-z0-9.-]+", h)
                                              for h in hosts):
        raise ModelsFileError(f"models file {path}: allowed_hosts must be a list of host names such as "
                              "[\"download.example.org\"]")
    return hosts


def _load_raw(path: Path) -> tuple[list[Any], list[str]]:
    """The raw entries of a models file and the hosts it allows."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ModelsFileError(f"models file {path} does not exist") from None
    except OSError as exc:
        raise ModelsFileError(f"models file {path} cannot be read: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".toml":
        if tomllib is None:
            raise ModelsFileError(f"models file {path}: reading TOML on Python 3.10 needs the 'tomli' package "
                                  "(pip install tomli), or write the file as JSON")
        try:
            data: Any = tomllib.loads(text.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ModelsFileError(f"models file {path} is not valid TOML: {exc}") from None
        if not isinstance(data.get("models"), list):
            raise ModelsFileError(f"models file {path}: expected [[models]] tables (found keys: "
                                  f"{', '.join(data) or 'none'})")
        extra = sorted(set(data) - {"models", "allowed_hosts"})
        if extra:
            raise ModelsFileError(f"models file {path}: unknown top-level key {extra[0]!r}; only [[models]] and "
                                  "allowed_hosts are read")
        return data["models"], _checked_hosts(path, data.get("allowed_hosts", []))
    if suffix == ".json":
        try:
            data = json.loads(text.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelsFileError(f"models file {path} is not valid JSON: {exc}") from None
        if isinstance(data, dict) and {"models"} <= set(data) <= {"models", "allowed_hosts"} \
                and isinstance(data["models"], list):
            return data["models"], _checked_hosts(path, data.get("allowed_hosts", []))
        if isinstance(data, list):
            return data, []
        raise ModelsFileError(f"models file {path}: expected a JSON list of model objects or "
                              "{\"models\": [...], \"allowed_hosts\": [...]}")
    raise ModelsFileError(f"models file {path}: unknown extension {path.suffix!r}; use .toml or .json")


def read_models_file(path: PathLike) -> list[dict[str, Any]]:
    """Checked card fields from a TOML/JSON models file, one dict per entry (sources resolved).

    Returns partial field dicts, not cards, because an entry may override only some fields
    of an existing card; `Zoo.load_file` merges them.
    """
    path = Path(os.path.expandvars(os.fspath(path))).expanduser()
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    raw_entries, hosts = _load_raw(path)
    for index, raw in enumerate(raw_entries):
        where = f"models file {path}, {_entry_name(index, raw)}"
        entry = _check_entry(raw, where)
        if entry["id"] in seen:
            raise ModelsFileError(f"{where}: id {entry['id']!r} appears twice in this file")
        seen.add(entry["id"])
        spec = entry.pop("spec", None)
        if spec is not None:
            if any(k in entry for k in ("repo_id", "filename", "local_path", "url")):
                raise ModelsFileError(f"{where}: give either 'spec' or repo_id/filename/url/local_path, not both")
            try:
                parsed = parse_spec(spec, base_dir=path.parent)
            except ModelsFileError as exc:
                raise ModelsFileError(f"{where}: {exc}") from None
            entry = {**parsed, **entry}
        elif entry.get("local_path"):
            local = Path(os.path.expandvars(entry["local_path"])).expanduser()
            entry["local_path"] = str(local if local.is_absolute() else path.parent / local)
        entry["_where"] = where
        out.append(entry)
    from stylecore.engine.downloads import allow_hosts

    allow_hosts(hosts)  # only once the whole file was read without error
    return out


def _source_name(values: Mapping[str, Any]) -> str:
    """The file name a card's source ends in (for guessing its format)."""
    url = (values.get("url") or "").split("?", 1)[0]
    return values.get("filename") or values.get("local_path") or Path(url).name or ""


def _merge(base: Optional[ModelCard], entry: dict[str, Any]) -> ModelCard:
    where = entry.pop("_where", f"model {entry.get('id')!r}")
    if base is None:
        values = dict(entry)
        if "format" not in values:
            values["format"] = guess_format(_source_name(values))
    else:
        values = {f: getattr(base, f) for f in _FIELDS}
        hub = {"repo_id": None, "filename": None, "revision": None, "repo_type": "model"}
        if any(entry.get(k) for k in ("local_path", "url", "repo_id", "filename")):
            # a new source replaces the card's: what was known about the old file no longer applies
            values.update(sha256=None, size=0)
        if entry.get("local_path") and not entry.get("repo_id"):
            values.update(hub, url=None)
        elif entry.get("url"):
            values.update(hub, local_path=None)
        elif entry.get("repo_id") or entry.get("filename"):
            values.update(local_path=None, url=None)
        if base.is_builtin and "format" not in entry and any(entry.get(k) for k in _SOURCE_FIELDS):
            values["format"] = guess_format(_source_name(entry))
        values.update(entry)
    try:
        return ModelCard(**values)
    except ValueError as exc:
        raise ModelsFileError(f"{where}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# the zoo


class Zoo:
    """The model cards this run knows, by id, in display order (built-ins first)."""

    def __init__(self, cards: Optional[Iterable[ModelCard]] = None):
        self._cards: dict[str, ModelCard] = {}
        for card in BUILTIN_CARDS if cards is None else cards:
            self.add(card)

    @classmethod
    def from_sources(cls, models_file: Union[PathLike, Sequence[PathLike], None] = None,
                     environ: Optional[Mapping[str, str]] = None) -> "Zoo":
        """Built-ins, then files named by $STYLECORE_MODELS, then `--models` (later files win)."""
        zoo = cls()
        env = os.environ if environ is None else environ
        for item in (env.get(ENV_VAR) or "").split(os.pathsep):
            if item.strip():
                zoo.load_file(item.strip())
        if models_file is not None:
            files = [models_file] if isinstance(models_file, (str, os.PathLike)) else list(models_file)
            for item in files:
                zoo.load_file(item)
        return zoo

    def load_file(self, path: PathLike) -> list[ModelCard]:
        """Add or override cards from a models file; returns the resulting cards."""
        return [self._apply(entry) for entry in read_models_file(path)]

    def _apply(self, entry: dict[str, Any]) -> ModelCard:
        card = _merge(self._cards.get(entry["id"]), entry)
        self._cards[card.id] = card
        return card

    def add(self, card: ModelCard) -> ModelCard:
        """Add a card, replacing any card with the same id."""
        self._cards[card.id] = card
        return card

    def add_spec(self, spec: str, id: Optional[str] = None, **fields_: Any) -> ModelCard:
        """Add a one-off model from `hf://owner/repo/file.pkl[@rev]`, an https URL, a local path, or
        `my-id=<any of these>`.

        Adding a spec that is already known returns the existing card; a new spec whose
        derived id is taken gets a numbered id.
        """
        text = spec.strip() if isinstance(spec, str) else spec
        if id is None and isinstance(text, str) and "=" in text and not Path(text).exists():
            head, _, tail = text.partition("=")
            if _ID_RE.fullmatch(head):
                id, text = head, tail
        values = {**parse_spec(text), **fields_}
        if id is None:
            for card in self._cards.values():
                if not card.is_builtin and all(getattr(card, k) == values.get(k, getattr(card, k))
                                               for k in ("repo_id", "filename", "revision", "repo_type",
                                                         "local_path", "url")):
                    return card
            name = _source_name(values) or "model"
            stem = _slug(Path(name).stem)
            if values.get("revision"):
                stem = f"{stem}-{_slug(values['revision'])[:12]}"
            id, n = stem, 2
            while id in self._cards:
                id, n = f"{stem}-{n}", n + 1
        values.setdefault("title", f"{Path(_source_name(values)).name} (added)")
        try:
            card = ModelCard(id=id, **values)
        except ValueError as exc:
            raise ModelsFileError(f"model spec {spec!r}: {exc}") from None
        return self.add(card)

    def get(self, model_id: str) -> ModelCard:
        """The card for `model_id`; an `UnknownModelError` listing the known ids otherwise."""
        try:
            return self._cards[model_id]
        except (KeyError, TypeError):
            close = difflib.get_close_matches(str(model_id), list(self._cards), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownModelError(f"Unknown model {model_id!r}.{hint} Known models: {', '.join(self._cards)}. "
                                    "Add others with --models FILE, $STYLECORE_MODELS or a spec "
                                    "(hf://owner/repo/file.pkl or a local path).") from None

    def cards(self) -> list[ModelCard]:
        return list(self._cards.values())

    def ids(self) -> list[str]:
        return list(self._cards)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._cards

    def __iter__(self) -> Iterator[ModelCard]:
        return iter(list(self._cards.values()))

    def __len__(self) -> int:
        return len(self._cards)
