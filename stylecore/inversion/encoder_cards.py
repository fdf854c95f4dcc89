"""Released pSp / e4e / ReStyle checkpoints on the Hugging Face Hub, fetched like generators.

Each entry is an ordinary `stylecore.engine.zoo.ModelCard` (format "rosinality": the file is a torch zip
whose `decoder.*` is a rosinality StyleGAN2, so the generator loader reads it too), kept in its
own `Zoo` so encoders never show up in the generator list. Downloads go through
`stylecore.engine.hub.fetch` (cache, offline mode, honest errors); `load_encoder` tells the kind from the
file itself, `ENCODER_KINDS` only says what a built-in entry is expected to be.

The StyleGAN2 ReStyle encoders (`restyle_e4e_ffhq_encode.pt`, `restyle_psp_ffhq_encode.pt`) have no
confirmed Hub copy, so no card is built in: `trysem/restyle-e4e-ffhq/restyle_e4e_ffhq.pt` is the
*StyleGAN3* ReStyle-e4e of stylegan3-editing (reference/real_files.md section 4), which the loader
refuses by name. Add a StyleGAN2 ReStyle file with a spec, e.g.
``encoder_zoo(["restyle-e4e-ffhq=hf://<owner>/<repo>/restyle_e4e_ffhq_encode.pt"])`` or a local
path ``encoder_zoo(["restyle-e4e-ffhq=/data/restyle_e4e_ffhq_encode.pt"])``.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

from stylecore.engine.zoo import ModelCard, Zoo

if TYPE_CHECKING:  # keep `import stylecore.inversion.encoder_cards` free of torch
    import torch

    from stylecore.inversion.encoders import EncoderModel
    from stylecore.engine.hub import Progress

__all__ = ["ENCODER_CARDS", "ENCODER_GENERATORS", "ENCODER_KINDS", "encoder_zoo", "fetch_encoder", "load_zoo_encoder"]

_LICENSE = ("weights: no license stated (code MIT); trained on FFHQ / LSUN images (FFHQ CC BY-NC-SA 4.0) "
            "over NVIDIA StyleGAN2 weights (non-commercial terms): research use")


def _enc(id: str, title: str, kind: str, res: int, domain: str, repo: str, filename: str, notes: str = "",
         size: int = 0, sha256: Optional[str] = None) -> tuple[ModelCard, str]:
    card = ModelCard(id=id, title=title, architecture="stylegan2", format="rosinality", resolution=res,
                     domain=domain, repo_id=repo, filename=filename, revision={_E4E: _E4E_REV, _PSP: _PSP_REV}[repo],
                     license=_LICENSE, notes=f"{kind} encoder; {notes or 'inputs: aligned 256x256 images'}",
                     size=size, sha256=sha256)
    return card, kind


# Repos and the commits the files were seen at (reference/real_files.md section 3; the pSp commit
# resolved from its Hub file pages: dd4308f holds all four pSp files).
_E4E, _PSP = "public-data/e4e", "trysem/pixel2style2pixel"
_E4E_REV = "fdd18714fc6b639487adbd901f16f67eb24ba786"
_PSP_REV = "dd4308f2149943e240c2c7e963b3e2f294eefb02"
_ENTRIES = (
    _enc("e4e-ffhq", "e4e FFHQ 1024 (encoder4editing)", "e4e", 1024, "faces", _E4E, "e4e_ffhq_encode.pt",
         "faces aligned as FFHQ, 256x256", size=1201649680,
         sha256="2ace1d9a8c05c10a399bcd500b8dda118f759ff1aac89dbdab7435f2136a0999"),
    _enc("e4e-cars", "e4e cars 512", "e4e", 512, "cars", _E4E, "e4e_cars_encode.pt",
         "inputs resized to 192x256; outputs are rows 64:448 of the 512 image", size=1077493298,
         sha256="f1743d4a9fe701643916062d7c40a4ec3d5daaa153de1ef941285d3ed3758330"),
    _enc("e4e-church", "e4e LSUN church 256", "e4e", 256, "churches", _E4E, "e4e_church_encode.pt",
         "inputs resized to 256x256"),
    _enc("e4e-horse", "e4e LSUN horse 256", "e4e", 256, "horses", _E4E, "e4e_horse_encode.pt",
         "inputs resized to 256x256"),
    _enc("psp-ffhq", "pSp FFHQ 1024 inversion (pixel2style2pixel)", "psp", 1024, "faces", _PSP,
         "psp_ffhq_encode.pt", "faces aligned as FFHQ, 256x256",
         sha256="f786ac5cf18fcdbc5c57c9f3f12cbedca69381fbdf5694dd132294e3133749d7"),
    _enc("psp-ffhq-frontalization", "pSp FFHQ 1024 frontalization", "psp", 1024, "faces", _PSP,
         "psp_ffhq_frontalization.pt", "faces aligned as FFHQ; outputs a frontal view"),
    _enc("psp-celebs-super-resolution", "pSp CelebA-HQ super-resolution", "psp", 1024, "faces", _PSP,
         "psp_celebs_super_resolution.pt", "a low-resolution aligned face, resized to 256x256"),
)
ENCODER_CARDS: tuple[ModelCard, ...] = tuple(card for card, _ in _ENTRIES)
ENCODER_KINDS: dict[str, str] = {card.id: kind for card, kind in _ENTRIES}
# The generator card each built-in encoder was trained with: its embedded decoder is that network.
ENCODER_GENERATORS: dict[str, str] = {
    **{card.id: "sg2-ffhq-1024-rosinality" for card in ENCODER_CARDS if card.domain == "faces"},
    "e4e-cars": "sg2-car-512-rosinality", "e4e-church": "sg2-church-256-rosinality",
    "e4e-horse": "sg2-horse-256-rosinality",
}


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

    `progress(bytes_done, bytes_total_or_None, message)` as in `stylecore.engine.hub.fetch`; failures are
    `stylecore.engine.hub.ModelUnavailable`, unknown ids `stylecore.engine.zoo.UnknownModelError`.
    """
    from stylecore.engine.hub import fetch

    return fetch(_card(model, zoo), progress=progress, refresh=refresh)


def load_zoo_encoder(model: Union[str, ModelCard], device: Union[str, torch.device] = "cpu",
                     progress: Optional[Progress] = None, zoo: Optional[Zoo] = None) -> EncoderModel:
    """fetch_encoder + load_encoder: a ready `stylecore.inversion.encoders.EncoderModel` for a card or id."""
    from stylecore.inversion.encoders import load_encoder

    return load_encoder(fetch_encoder(model, progress=progress, zoo=zoo), device=device)
