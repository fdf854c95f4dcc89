"""Which model each tab opens on: a real network that suits a free CPU Space when the network is
there, the built-in demo network when it is not (and the tab then says why).

A model the user added and already has on this machine comes first (they asked for it); then the
tab's real default, when it can be downloaded or already is; then any downloaded built-in model of
the right architecture; last the demo network, which needs nothing.
"""
from __future__ import annotations

from typing import Optional

from stylecore.engine import hub
from stylecore.engine.reachability import Reachability
from stylecore.engine.zoo import BUILTIN_CARDS, ModelCard, Zoo

__all__ = ["TAB_DEFAULTS", "default_model_id", "default_cards"]

_BUILTIN_IDS = frozenset(card.id for card in BUILTIN_CARDS)
_FACES_1024 = "sg2-ffhq-1024-rosinality"  # the generator e4e, pSp and StyleCLIP's fs3.npy were made with
# tab -> (real default, demo default, architecture the tab needs or None)
TAB_DEFAULTS: dict[str, tuple[str, str, Optional[str]]] = {
    "generate": ("sg2-ffhq-512", "demo", None),
    "editing": (_FACES_1024, "demo", None),
    "inversion": (_FACES_1024, "demo", None),
    "styleclip": (_FACES_1024, "demo", None),
    "video": ("sg3-t-ffhqu-256", "demo-sg3", "stylegan3"),
    "video-compare": ("sg2-ffhq-256", "demo", "stylegan2"),
    "stylenerf": ("stylenerf-ffhq-256", "demo-nerf", "stylenerf"),
    "domains": (_FACES_1024, "demo", "stylegan2"),
    "retrieve": (_FACES_1024, "demo", "stylegan2"),
}
_NEEDS_DOMAINS = frozenset({"domains"})  # tabs whose model must have domain generators (StyleGAN-NADA)


def _here(card: ModelCard) -> bool:
    return not card.is_builtin and hub.download_state(card) in ("downloaded", "local file")


def _reachable(card: ModelCard, reach: Reachability) -> bool:
    """Whether the start-up probe reached the server this card downloads from (NVIDIA's, or the Hub)."""
    return reach.ngc if card.url else reach.hub


def default_model_id(zoo: Zoo, tab: str, reach: Reachability) -> str:
    """The id `tab` opens on, given what the start-up probe (`stylecore.engine.reachability.probe`) found."""
    real, demo, architecture = TAB_DEFAULTS[tab]
    fits = [card for card in zoo.cards() if (architecture is None or card.architecture == architecture)
            and not card.base and (tab not in _NEEDS_DOMAINS or zoo.domains_of(card.id))]
    for card in fits:
        if card.id not in _BUILTIN_IDS and _here(card):
            return card.id
    if real in zoo and (_here(zoo.get(real)) or _reachable(zoo.get(real), reach)):
        return real
    for card in fits:
        if _here(card):
            return card.id
    return demo if demo in zoo else zoo.cards()[0].id


def default_cards(zoo: Zoo) -> list[ModelCard]:
    """The real defaults of every tab (each once), for a Space to fetch right after launch."""
    ids = dict.fromkeys(real for real, _, _ in TAB_DEFAULTS.values() if real in zoo)
    return [zoo.get(i) for i in ids]
