"""Released pSp / e4e / ReStyle checkpoints on the Hugging Face Hub, fetched like generators.

Each entry is an ordinary `stylecore.engine.zoo.ModelCard` (format "rosinality": the file is a torch zip
whose `decoder.*` is a rosinality StyleGAN2, so the generator loader reads it too), listed under
``[[encoders]]`` in the built-in cards file (stylecore/engine/cards.toml) and kept in its own `Zoo`
so encoders never show up in the generator list. Downloads go through
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

from stylecore.engine.zoo import BUILTIN_ENCODERS, ModelCard, Zoo
from stylecore.progress import ByteProgress

if TYPE_CHECKING:  # keep `import stylecore.inversion.encoder_cards` free of torch
    import torch

    from stylecore.inversion.encoders import EncoderModel

__all__ = ["ENCODER_CARDS", "ENCODER_GENERATORS", "ENCODER_KINDS", "encoder_zoo", "fetch_encoder", "load_zoo_encoder"]

ENCODER_CARDS: tuple[ModelCard, ...] = tuple(card for card, _ in BUILTIN_ENCODERS)
ENCODER_KINDS: dict[str, str] = {card.id: kind for card, kind in BUILTIN_ENCODERS}
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


def fetch_encoder(model: Union[str, ModelCard], progress: ByteProgress = None, zoo: Optional[Zoo] = None,
                  refresh: bool = False) -> Path:
    """The encoder checkpoint as a local file (downloaded into the Hub cache on first use).

    `progress(bytes_done, bytes_total_or_None, message)` as in `stylecore.engine.hub.fetch`; failures are
    `stylecore.engine.remote.ModelUnavailable`, unknown ids `stylecore.engine.zoo.UnknownModelError`.
    """
    from stylecore.engine.hub import fetch

    return fetch(_card(model, zoo), progress=progress, refresh=refresh)


def load_zoo_encoder(model: Union[str, ModelCard], device: Union[str, torch.device] = "cpu",
                     progress: ByteProgress = None, zoo: Optional[Zoo] = None) -> EncoderModel:
    """fetch_encoder + load_encoder: a ready `stylecore.inversion.encoders.EncoderModel` for a card or id."""
    from stylecore.inversion.encoders import load_encoder

    return load_encoder(fetch_encoder(model, progress=progress, zoo=zoo), device=device)
