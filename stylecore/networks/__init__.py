"""Generator networks with the official parameter names, and one builder for all of them."""
from __future__ import annotations

import importlib
from typing import Any

import torch

ARCHITECTURES = {
    "stylegan2": "stylecore.networks.stylegan2",
    "stylegan3": "stylecore.networks.stylegan3",
    "stylenerf": "stylecore.networks.stylenerf.generator",
}


def build_generator(architecture: str, init_kwargs: dict[str, Any]) -> torch.nn.Module:
    """Construct an untrained generator from its architecture name and official init kwargs.

    `init_kwargs` are the keyword arguments of the official `Generator` constructor, as official
    pickles store them (`G_ema._init_kwargs`) and as the converted-model cache writes them.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown generator architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
    module = importlib.import_module(ARCHITECTURES[architecture])
    return module.Generator(**init_kwargs)
