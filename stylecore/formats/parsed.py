"""The one result type every checkpoint reader returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ParsedCheckpoint:
    """Architecture name, official init kwargs and a strict-loadable state dict of one generator."""

    architecture: str
    init_kwargs: dict
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict)
    source: str = ""
