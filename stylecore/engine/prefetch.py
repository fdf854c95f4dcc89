"""Fetch the default models in the background right after a Space starts, and say how far it got.

A Space's cache starts empty, so without this the first visitor of each tab waits for a download
of hundreds of megabytes. Here one thread fetches the files one after another (never inside a
request, never inside ZeroGPU time); `status()` is what the page shows while it runs. Failures
are reported, not raised: the tabs still work, and each fetches on first use as usual.
"""
from __future__ import annotations

import threading
from typing import Optional, Sequence

from stylecore.engine import hub
from stylecore.engine.remote import ModelUnavailable
from stylecore.engine.zoo import ModelCard

__all__ = ["Prefetch"]


def _size(n: Optional[int]) -> str:
    return "?" if not n else f"{n / 1e6:,.0f} MB"


class Prefetch:
    """Downloads `cards` in order on one daemon thread; `status()` is a Markdown summary of each."""

    def __init__(self, cards: Sequence[ModelCard]):
        self.cards = list(cards)
        self._state = {card.id: "waiting" for card in self.cards}
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "Prefetch":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="stylecore-prefetch", daemon=True)
            self._thread.start()
        return self

    def join(self, timeout: Optional[float] = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def _set(self, card: ModelCard, text: str) -> None:
        with self._lock:
            self._state[card.id] = text

    def _run(self) -> None:
        for card in self.cards:
            def report(done: int, total: Optional[int], message: str, card: ModelCard = card) -> None:
                if total:
                    self._set(card, f"downloading: {100 * done / total:.0f}% of {_size(total)}")
                else:
                    self._set(card, f"downloading: {_size(done)} so far" if done else f"starting: {message}")

            try:
                hub.fetch(card, progress=report)
            except ModelUnavailable as exc:
                later = "tried again on first use" if exc.kind == "offline" else "fetched on first use"
                self._set(card, f"not available ({exc.reason}); it will be {later}")
            except Exception as exc:  # a background thread must never take the app down
                self._set(card, f"failed ({type(exc).__name__}: {exc}); it will be fetched on first use")
            else:
                self._set(card, "ready")

    def status(self) -> str:
        """Markdown: one line per model, and whether the whole set is ready."""
        with self._lock:
            lines = [f"- {card.title}: {self._state[card.id]}" for card in self.cards]
        head = ("**Default models are ready.**" if self.done and all(self._state[c.id] == "ready" for c in self.cards)
                else "**Preparing the default models** (first start of this Space; the demo networks work meanwhile):")
        return "\n".join([head, *lines])
