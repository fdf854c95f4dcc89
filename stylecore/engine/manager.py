"""Load-on-demand model manager: device choice, one LRU of everything loaded (generators and the
auxiliary networks and tables techniques need: encoders, CLIP, LPIPS, identity networks, cached
statistics) bounded by one memory budget, and one lock per entry so concurrent requests never load
the same thing twice.

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
from typing import Any, Callable, Hashable, Optional, TypeVar, Union

import numpy as np
import torch

from stylecore.engine import hub
from stylecore.engine.demo import DEMO_KWARGS, build_demo_domain, build_demo_generator
from stylecore.networks.layers import reduced_precision
from stylecore.engine.reachability import UNPROBED, BackgroundProbe, Reachability
from stylecore.engine.zoo import ModelCard, Zoo

from stylecore.progress import Progress, from_bytes, report

T = TypeVar("T")

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


def object_bytes(value: Any) -> int:
    """Memory held by a network, tensor, array, or a dataclass / container of them (anything else: 0)."""
    if isinstance(value, torch.nn.Module):
        return module_bytes(value)
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, dict):
        return sum(object_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(object_bytes(v) for v in value)
    if hasattr(value, "__dataclass_fields__"):
        return sum(object_bytes(getattr(value, name)) for name in value.__dataclass_fields__)
    return 0


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
    tuned_from: Optional["LoadedModel"] = None  # the shared model whose synthesis weights a session tuned

    @property
    def untrained(self) -> bool:
        return self.card.format == "builtin"

    @property
    def shared(self) -> "LoadedModel":
        """The model every session shares: what per-model tables (PCA, style statistics, parts) are built from."""
        return self.tuned_from or self


class ModelManager:
    """Hands out loaded generators by id, and any other network or table by key (`resource`),
    building each at most once and evicting the least recently used when the memory budget is
    exceeded: one LRU and one budget over everything loaded.

    Under concurrent requests: the entries kept (`used_bytes()`) never add up to more than the budget
    whenever anyone looks, unless a single entry is larger than it (then only that one is kept); an
    entry is never built by two threads at once. Not counted: loads in flight (at most one per key)
    and evicted entries that running requests still hold."""

    def __init__(self, zoo: Zoo, device: str = "auto", memory_budget: Optional[int] = None):
        self.zoo = zoo
        self.device = resolve_device(device)
        self.memory_budget = memory_budget if memory_budget is not None else default_budget(self.device)
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()  # key -> (value, bytes)
        self._locks: dict[Hashable, threading.Lock] = {}
        self._state_lock = threading.Lock()
        self.load_count: dict[Hashable, int] = {}
        self._reachability: Union[Reachability, BackgroundProbe] = UNPROBED

    @property
    def reachability(self) -> Reachability:
        """What the app's start-up probe found: PROBING while it still runs, UNPROBED when there is none
        (a manager outside the app), which the tab defaults read as "open on the demo networks"."""
        source = self._reachability
        return source.result() if isinstance(source, BackgroundProbe) else source

    @reachability.setter
    def reachability(self, value: Union[Reachability, BackgroundProbe]) -> None:
        """The probe's answer, or the probe itself while it runs in the background."""
        self._reachability = value

    def settled_reachability(self) -> Reachability:
        """`reachability` once a probe still running has answered (waiting at most as long as it may take)."""
        source = self._reachability
        return source.result(None) if isinstance(source, BackgroundProbe) else source

    def _key_lock(self, key: Hashable) -> threading.Lock:
        with self._state_lock:
            return self._locks.setdefault(key, threading.Lock())

    def loaded_ids(self) -> list[str]:
        """The generators kept, least recently used first."""
        with self._state_lock:
            return [k for k in self._entries if isinstance(k, str)]

    def resource_keys(self) -> list[Hashable]:
        """The other networks and tables kept, least recently used first."""
        with self._state_lock:
            return [k for k in self._entries if not isinstance(k, str)]

    def used_bytes(self) -> int:
        with self._state_lock:
            return sum(nbytes for _, nbytes in self._entries.values())

    def get(self, model_id: str, progress: Progress = None) -> LoadedModel:
        """The loaded generator `model_id`, downloading and converting it on first use."""
        card = self.zoo.get(model_id)
        return self._kept(model_id, lambda: self._load(card, progress), lambda model: model.nbytes)

    def resource(self, key: tuple, build: Callable[[], T]) -> T:
        """The network or table `key` (a tuple naming its kind first, e.g. ("clip", "ViT-B/32")),
        built by `build()` on first use and kept under the memory budget with the generators."""
        if not isinstance(key, tuple) or not key:
            raise TypeError("resource keys are tuples that start with the kind, e.g. ('lpips', 'vgg')")
        return self._kept(key, build, object_bytes)

    def _kept(self, key: Hashable, build: Callable[[], T], size: Callable[[T], int]) -> T:
        with self._state_lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
        with self._key_lock(key):
            with self._state_lock:
                if key in self._entries:  # another thread built it while this one waited
                    self._entries.move_to_end(key)  # this request uses it too: most recent
                    return self._entries[key][0]
            value = build()
            with self._state_lock:
                self._entries[key] = (value, size(value))
                self.load_count[key] = self.load_count.get(key, 0) + 1
                self._evict_over_budget(keep=key)
            return value

    def kept(self, key: Hashable) -> Optional[Any]:
        """The entry `key` if it is kept (it becomes the most recently used), else None; nothing is built."""
        with self._state_lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key][0]

    def kept_sizes(self, select: Callable[[Hashable], bool]) -> list[tuple[Hashable, int]]:
        """(key, bytes) of the kept entries `select` picks, least recently used first."""
        with self._state_lock:
            return [(k, nbytes) for k, (_, nbytes) in self._entries.items() if select(k)]

    def evict(self, key: Hashable) -> None:
        with self._state_lock:
            self._entries.pop(key, None)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _evict_over_budget(self, keep: Hashable) -> None:
        total = sum(nbytes for _, nbytes in self._entries.values())
        for victim in [k for k in self._entries if k != keep]:
            if total <= self.memory_budget:
                break
            total -= self._entries.pop(victim)[1]

    def _load(self, card: ModelCard, progress: Progress) -> LoadedModel:
        start = time.perf_counter()
        if card.format == "builtin":
            G = build_demo_domain(card.id) if card.base else \
                build_demo_generator(card.architecture if card.architecture in DEMO_KWARGS else "stylegan2")
            G = G.to(self.device).eval().requires_grad_(False)
            info = {"source": "built-in demo network with random weights (untrained)"}
        else:
            from stylecore.formats.loader import load_generator

            path = hub.fetch(card, progress=from_bytes(progress, 0.0, 0.9))
            report(progress, 0.9, f"reading {path.name}")
            G = load_generator(path, device=self.device)
            info = dict(getattr(G, "checkpoint_info", {}))
        force_fp32 = card.force_fp32 or reduced_precision(self.device) is None
        with torch.no_grad():  # warm-up: first-call allocations happen here, not in a request
            z = torch.zeros([1, G.z_dim], device=self.device)
            c = torch.zeros([1, G.c_dim], device=self.device) if G.c_dim else None
            G.synthesis(G.mapping(z, c), noise_mode="const", force_fp32=force_fp32)
        report(progress, 1.0, f"{card.id} ready")
        return LoadedModel(card=card, G=G, device=self.device, force_fp32=force_fp32, nbytes=module_bytes(G),
                           load_seconds=time.perf_counter() - start, info=info)
