"""Which HyperStyle serves which generator, loaded once and kept by the model manager.

The released HyperStyle (two files of trysem/DualStyleGANplus, pinned in the built-in cards file's
[[files]]) was trained on StyleGAN2 FFHQ 1024 config-f, so it is offered for the cards that are that
network (the rosinality copy it embeds, and NVIDIA's pickles of config-f; the comparison's note says
whether the weights really match). The demo StyleGAN2 gets an untrained HyperStyle of small widths, so
the method can be tried offline; its note says it is untrained.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from stylecore.engine.zoo import builtin_file
from stylecore.progress import Progress, from_bytes

if TYPE_CHECKING:
    from stylecore.engine.manager import LoadedModel, ModelManager
    from stylecore.inversion.hyperstyle import HyperStyleModel

__all__ = ["RELEASED_FILES", "RELEASED", "HYPERSTYLE_GENERATORS", "UNTRAINED_FOR", "has_hyperstyle", "check_hyperstyle",
           "managed_hyperstyle"]

RELEASED_FILES = ("hyperstyle-ffhq", "hyperstyle-faces-w-encoder")  # the hypernetwork, its W encoder
RELEASED = tuple(builtin_file(file_id) for file_id in RELEASED_FILES)  # their pinned cards
HYPERSTYLE_GENERATORS = ("sg2-ffhq-1024-rosinality", "sg2-ffhq-1024", "sg2-ffhq-1024-tf", "sg2-ffhq-1024-tf-hub")
UNTRAINED_FOR = ("demo",)  # built-in networks that get an untrained HyperStyle


def has_hyperstyle(model_id: str) -> bool:
    return model_id in HYPERSTYLE_GENERATORS or model_id in UNTRAINED_FOR


def check_hyperstyle(model_id: str) -> None:
    """Refuse a model HyperStyle was not made for, before anything is downloaded."""
    if not has_hyperstyle(model_id):
        raise ValueError(f"HyperStyle's released model fits StyleGAN2 FFHQ 1024 (config-f) only: choose "
                         f"{' or '.join(HYPERSTYLE_GENERATORS[:2])}, or the demo network (an untrained HyperStyle); "
                         f"{model_id!r} is another network")


def _released(progress: Progress, device) -> HyperStyleModel:
    from stylecore.engine.assets import fetch_asset
    from stylecore.inversion.hyperstyle import load_hyperstyle

    hyper_card, w_card = RELEASED
    hyper_path = fetch_asset(hyper_card, from_bytes(progress, 0.0, 0.8))
    w_path = fetch_asset(w_card, from_bytes(progress, 0.8, 0.95))
    return load_hyperstyle(hyper_path, w_path, device)


def managed_hyperstyle(manager: ModelManager, model: LoadedModel, progress: Progress = None) -> HyperStyleModel:
    """The HyperStyle for `model`, downloaded and loaded on first use, then kept under the memory budget."""
    check_hyperstyle(model.card.id)
    if model.card.id in UNTRAINED_FOR:
        from stylecore.inversion.hyperstyle_random import random_hyperstyle

        return manager.resource(("hyperstyle", "untrained", model.card.id), lambda: random_hyperstyle(model.G))
    return manager.resource(("hyperstyle", RELEASED_FILES[0], str(model.device)),
                            lambda: _released(progress, model.device))
