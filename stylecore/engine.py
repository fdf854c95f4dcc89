"""Load-on-demand model manager: device choice, an LRU of loaded models bounded by a memory
budget, and one lock per model so concurrent requests never load the same model twice.

Inference needs no lock: loaded networks are used read-only (StyleGAN3's input transform is
passed per call), so requests on the same model run side by side.
"""
from __future__ import annotations

import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from stylecore import hub
from stylecore.demo import DEMO_KWARGS, build_demo_generator
from stylecore.networks.layers import reduced_precision
from stylecore.reachability import UNPROBED, Reachability
from stylecore.zoo import ModelCard, Zoo

Progress = Optional[Callable[[float, str], None]]

def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when a GPU is usable, else the CPU; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA GPU is usable here; use --device cpu or auto")
    return device


def parse_bytes(text: str) -> int:
    """'8GB', '512 MiB', '1e9' -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([KMGT]?i?B?)?\s*", text or "", re.IGNORECASE)
    if not m:
        raise ValueError(f"cannot read memory size {text!r}: write e.g. '8GB' or '512MiB'")
    unit = (m.group(2) or "").upper().replace("I", "").rstrip("B")
    return int(float(m.group(1)) * 1024 ** "_KMGT".index(unit or "_"))


def default_budget(device: torch.device) -> int:
    """Half the machine's memory on CPU, 80% of the GPU's; STYLECORE_MEMORY_BUDGET overrides."""
    if os.environ.get("STYLECORE_MEMORY_BUDGET"):
        return parse_bytes(os.environ["STYLECORE_MEMORY_BUDGET"])
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory * 0.8)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 8 * 1024 ** 3


def module_bytes(module: torch.nn.Module) -> int:
    """Memory held by a module's parameters and buffers."""
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


@dataclass
class LoadedModel:
    """A generator ready for requests, and what the UI shows about it."""

    card: ModelCard
    G: torch.nn.Module
    device: torch.device
    force_fp32: bool
    nbytes: int
    load_seconds: float
    info: dict = field(default_factory=dict)

    @property
    def untrained(self) -> bool:
        return self.card.format == "builtin"


class ModelManager:
    """Hands out loaded models by id, loading each at most once and evicting the least recently
    used when the memory budget is exceeded.

    Under concurrent requests: the models kept (`used_bytes()`) never add up to more than the budget
    whenever anyone looks, unless a single model is larger than it (then only that one is kept); a
    model is never loaded by two threads at once. Not counted: loads in flight (at most one per
    model) and evicted models that running requests still hold."""

    def __init__(self, zoo: Zoo, device: str = "auto", memory_budget: Optional[int] = None):
        self.zoo = zoo
        self.device = resolve_device(device)
        self.memory_budget = memory_budget if memory_budget is not None else default_budget(self.device)
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._state_lock = threading.Lock()
        self.load_count: dict[str, int] = {}
        self.reachability: Reachability = UNPROBED  # the app sets what its start-up probe found

    def _model_lock(self, model_id: str) -> threading.Lock:
        with self._state_lock:
            return self._locks.setdefault(model_id, threading.Lock())

    def loaded_ids(self) -> list[str]:
        with self._state_lock:
            return list(self._loaded)

    def used_bytes(self) -> int:
        with self._state_lock:
            return sum(m.nbytes for m in self._loaded.values())

    def get(self, model_id: str, progress: Progress = None) -> LoadedModel:
        """The loaded model `model_id`, downloading and converting it on first use."""
        card = self.zoo.get(model_id)
        with self._state_lock:
            if model_id in self._loaded:
                self._loaded.move_to_end(model_id)
                return self._loaded[model_id]
        with self._model_lock(model_id):
            with self._state_lock:
                if model_id in self._loaded:  # another thread loaded it while this one waited
                    self._loaded.move_to_end(model_id)  # this request uses it too: most recent
                    return self._loaded[model_id]
            model = self._load(card, progress)
            with self._state_lock:
                self._loaded[model_id] = model
                self.load_count[model_id] = self.load_count.get(model_id, 0) + 1
                self._evict_over_budget(keep=model_id)
            return model

    def evict(self, model_id: str) -> None:
        with self._state_lock:
            self._loaded.pop(model_id, None)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _evict_over_budget(self, keep: str) -> None:
        total = sum(m.nbytes for m in self._loaded.values())
        for victim in [k for k in self._loaded if k != keep]:
            if total <= self.memory_budget:
                break
            total -= self._loaded.pop(victim).nbytes

    def _load(self, card: ModelCard, progress: Progress) -> LoadedModel:
        start = time.perf_counter()
        if card.format == "builtin":
            G = build_demo_generator(card.architecture if card.architecture in DEMO_KWARGS else "stylegan2")
            G = G.to(self.device).eval().requires_grad_(False)
            info = {"source": "built-in demo network with random weights (untrained)"}
        else:
            from stylecore.formats import load_generator

            def on_bytes(done: int, total: Optional[int], message: str) -> None:
                if progress is not None:
                    progress(0.9 * done / total if total else 0.0, message)

            path = hub.fetch(card, progress=on_bytes)
            if progress is not None:
                progress(0.9, f"reading {path.name}")
            G = load_generator(path, device=self.device)
            info = dict(getattr(G, "checkpoint_info", {}))
        force_fp32 = card.force_fp32 or reduced_precision(self.device) is None
        with torch.no_grad():  # warm-up: first-call allocations happen here, not in a request
            z = torch.zeros([1, G.z_dim], device=self.device)
            c = torch.zeros([1, G.c_dim], device=self.device) if G.c_dim else None
            G.synthesis(G.mapping(z, c), noise_mode="const", force_fp32=force_fp32)
        if progress is not None:
            progress(1.0, f"{card.id} ready")
        return LoadedModel(card=card, G=G, device=self.device, force_fp32=force_fp32, nbytes=module_bytes(G),
                           load_seconds=time.perf_counter() - start, info=info)
