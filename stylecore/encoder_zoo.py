"""Released pSp / e4e / ReStyle checkpoints on the Hugging Face Hub, fetched like generators.

Each entry is an ordinary `stylecore.zoo.ModelCard` (format "rosinality": the file is a torch zip
whose `decoder.*` is a rosinality StyleGAN2, so the generator loader reads it too), kept in its
own `Zoo` so encoders never show up in the generator list. Downloads go through
`stylecore.hub.fetch` (cache, offline mode, honest errors); `load_encoder` tells the kind from the
file itself, `ENCODER_KINDS` only says what a built-in entry is expected to be.

ReStyle-pSp has no confirmed Hub copy: add one with a spec, e.g.
``encoder_zoo(["restyle-psp-ffhq=hf://<owner>/<repo>/restyle_psp_ffhq_encode.pt"])`` or a local
path ``encoder_zoo(["restyle-psp-ffhq=/data/restyle_psp_ffhq_encode.pt"])``.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

from stylecore.zoo import ModelCard, Zoo

if TYPE_CHECKING:  # keep `import stylecore.encoder_zoo` free of torch
    import torch

    from stylecore.encoders import EncoderModel
    from stylecore.hub import Progress

__all__ = ["ENCODER_CARDS", "ENCODER_KINDS", "encoder_zoo", "fetch_encoder", "load_zoo_encoder"]

_LICENSE = ("weights: no license stated (code MIT); trained on FFHQ / LSUN images (FFHQ CC BY-NC-SA 4.0) "
            "over NVIDIA StyleGAN2 weights (non-commercial terms): research use")


def _enc(id: str, title: str, kind: str, res: int, domain: str, repo: str, filename: str, notes: str = ""
         ) -> tuple[ModelCard, str]:
    card = ModelCard(id=id, title=title, architecture="stylegan2", format="rosinality", resolution=res,
                     domain=domain, repo_id=repo, filename=filename, license=_LICENSE,
                     notes=f"{kind} encoder; {notes or 'inputs: aligned 256x256 images'}")
    return card, kind


_E4E, _PSP, _RESTYLE_E4E = "public-data/e4e", "trysem/pixel2style2pixel", "trysem/restyle-e4e-ffhq"
_ENTRIES = (
    _enc("e4e-ffhq", "e4e FFHQ 1024 (encoder4editing)", "e4e", 1024, "faces", _E4E, "e4e_ffhq_encode.pt",
         "faces aligned as FFHQ, 256x256"),
    _enc("e4e-cars", "e4e cars 512", "e4e", 512, "cars", _E4E, "e4e_cars_encode.pt",
         "inputs resized to 192x256; outputs are rows 64:448 of the 512 image"),
    _enc("e4e-church", "e4e LSUN church 256", "e4e", 256, "churches", _E4E, "e4e_church_encode.pt",
         "inputs resized to 256x256"),
    _enc("e4e-horse", "e4e LSUN horse 256", "e4e", 256, "horses", _E4E, "e4e_horse_encode.pt",
         "inputs resized to 256x256"),
    _enc("psp-ffhq", "pSp FFHQ 1024 inversion (pixel2style2pixel)", "psp", 1024, "faces", _PSP,
         "psp_ffhq_encode.pt", "faces aligned as FFHQ, 256x256"),
    _enc("psp-ffhq-frontalization", "pSp FFHQ 1024 frontalization", "psp", 1024, "faces", _PSP,
         "psp_ffhq_frontalization.pt", "faces aligned as FFHQ; outputs a frontal view"),
    _enc("psp-celebs-super-resolution", "pSp CelebA-HQ super-resolution", "psp", 1024, "faces", _PSP,
         "psp_celebs_super_resolution.pt", "a low-resolution aligned face, resized to 256x256"),
    _enc("restyle-e4e-ffhq", "ReStyle-e4e FFHQ 1024", "restyle_e4e", 1024, "faces", _RESTYLE_E4E,
         "restyle_e4e_ffhq.pt", "faces aligned as FFHQ, 256x256; 5 iterations by default"),
)
ENCODER_CARDS: tuple[ModelCard, ...] = tuple(card for card, _ in _ENTRIES)
ENCODER_KINDS: dict[str, str] = {card.id: kind for card, kind in _ENTRIES}


def encoder_zoo(specs: Iterable[str] = ()) -> Zoo:
    """The built-in encoder cards plus user specs (`[id=]hf://owner/repo/file.pt[@rev]` or a local path)."""
    zoo = Zoo(ENCODER_CARDS)
    for spec in specs:
        zoo.add_spec(spec, format="rosinality", architecture="stylegan2")
    return zoo


def _card(model: Union[str, ModelCard], zoo: Optional[Zoo]) -> ModelCard:
    return model if isinstance(model, ModelCard) else (zoo or encoder_zoo()).get(model)


def fetch_encoder(model: Union[str, ModelCard], progress: Optional[Progress] = None, zoo: Optional[Zoo] = None,
                  refresh: bool = False) -> Path:
    """The encoder checkpoint as a local file (downloaded into the Hub cache on first use).

    `progress(bytes_done, bytes_total_or_None, message)` as in `stylecore.hub.fetch`; failures are
    `stylecore.hub.ModelUnavailable`, unknown ids `stylecore.zoo.UnknownModelError`.
    """
    from stylecore.hub import fetch

    return fetch(_card(model, zoo), progress=progress, refresh=refresh)


def load_zoo_encoder(model: Union[str, ModelCard], device: Union[str, torch.device] = "cpu",
                     progress: Optional[Progress] = None, zoo: Optional[Zoo] = None) -> EncoderModel:
    """fetch_encoder + load_encoder: a ready `stylecore.encoders.EncoderModel` for a card or id."""
    from stylecore.encoders import load_encoder

    return load_encoder(fetch_encoder(model, progress=progress, zoo=zoo), device=device)
