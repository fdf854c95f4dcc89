"""A private view of a shared network: the same modules' structure, sharing every parameter and
buffer with the original except the ones a request replaces.

Why not torch.func.functional_call on the shared module: it swaps the tensors on the module object
itself for the duration of the call, so two requests running at once on one model (a Space serves
them from threads) would read each other's tuned weights or noise maps, and a plain generation
beside them would too. A structural copy costs milliseconds, is made once per request, and the
original module is never written to.
"""
from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping

import torch

__all__ = ["with_tensors"]


def with_tensors(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """A copy of `module` sharing all of its parameters and buffers, except those named in `tensors`
    (dotted names, as named_parameters/named_buffers give them), which the copy holds instead.
    An nn.Parameter given for a parameter stays trainable in the copy."""
    shared = {id(t): t for t in itertools.chain(module.parameters(), module.buffers())}
    view = copy.deepcopy(module, memo=shared)
    for name, tensor in tensors.items():
        owner_name, _, leaf = name.rpartition(".")
        try:
            owner = view.get_submodule(owner_name)
        except AttributeError:
            owner = torch.nn.Module()  # no such submodule: reported below
        if leaf in owner._parameters:
            owner._parameters[leaf] = tensor  # type: ignore[assignment]
        elif leaf in owner._buffers:
            owner._buffers[leaf] = tensor
        else:
            raise KeyError(f"{type(module).__name__} has no parameter or buffer named {name!r}")
    return view
