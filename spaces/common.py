"""Helpers shared by the tabs: model choices with download state, and turning engine errors
into messages the user sees (gr.Error) while the app keeps serving."""
from __future__ import annotations

import functools
import inspect
import math
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Optional

import gradio as gr
import numpy as np
import torch
from PIL import Image

from stylecore import hub
from stylecore.engine import LoadedModel, ModelManager
from stylecore.generate import GenerationSettings, seeds_to_ws
from stylecore.latents import load_latents
from stylecore.zoo import ModelCard


def model_label(card: ModelCard) -> str:
    state = hub.download_state(card)
    arch = {"stylegan2": "StyleGAN2", "stylegan3": "StyleGAN3", "stylenerf": "StyleNeRF"}.get(card.architecture, "StyleGAN")
    size = f" {card.resolution}px" if card.resolution else ""
    return f"{card.title} ({arch}{size}) - {state}"


def model_choices(manager: ModelManager) -> list[tuple[str, str]]:
    """(label, id) pairs for a dropdown; the label says whether the file is already here."""
    return [(model_label(card), card.id) for card in manager.zoo.cards()]


def default_model(manager: ModelManager) -> str:
    """The first model usable without a download; the built-in demo when nothing is here."""
    cards = manager.zoo.cards()
    for card in cards:
        if card.format != "builtin" and hub.download_state(card) in ("downloaded", "local file"):
            return card.id
    for card in cards:
        if card.format == "builtin":
            return card.id
    return cards[0].id


def offline_banner() -> None:
    """At the top of a tab: say so when offline mode limits the models."""
    notice = offline_notice()
    if notice:
        gr.Markdown(notice)


def model_picker(manager: ModelManager, default: str, refresh_api_name: str,
                 choices: Optional[list[tuple[str, str]]] = None, label: str = "Model") -> gr.Dropdown:
    """The model dropdown (its labels say what is downloaded) with a button that refreshes them."""
    model = gr.Dropdown(choices=choices if choices is not None else model_choices(manager), value=default,
                        label=label, info="'not downloaded' models are fetched from the Hub on first use")
    refresh = gr.Button("Refresh download states", size="sm")
    refresh.click(lambda current: gr.update(choices=model_choices(manager), value=current), [model], [model],
                  api_name=refresh_api_name)
    return model


def offline_notice() -> str:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return ("**Offline mode** (HF_HUB_OFFLINE is set): only models already downloaded and the built-in "
                "demo network can be used.")
    return ""


USER_ERRORS = (ValueError, KeyError, TypeError, OSError, hub.ModelUnavailable)


def _as_gr_error(exc: BaseException) -> gr.Error:
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return gr.Error(str(message))


def user_errors(fn: Callable) -> Callable:
    """Show bad input and unavailable models as a message in the UI instead of a crash.

    Works for plain event functions and for generator events (streamed progress, Stop button).
    """
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except USER_ERRORS as exc:
                raise _as_gr_error(exc) from exc

        return generator_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except USER_ERRORS as exc:
            raise _as_gr_error(exc) from exc

    return wrapper


def parse_number(value: Any, name: str, integer: bool = False, lo: Optional[float] = None,
                 hi: Optional[float] = None) -> Optional[float]:
    """Numbers from the API arrive as anything: check them before they reach the engine.
    None or '' mean 'not given'; `lo`/`hi` (both or neither) bound the value."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if integer and number != int(number):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if lo is not None and hi is not None and not lo <= number <= hi:
        raise ValueError(f"{name} must be from {lo:g} to {hi:g}, got {number:g}")
    return int(number) if integer else number


def required_number(value: Any, name: str, lo: float, hi: float, integer: bool = False) -> float:
    """parse_number for a value that must be given."""
    number = parse_number(value, name, integer=integer, lo=lo, hi=hi)
    if number is None:
        raise ValueError(f"{name} must be given")
    return number


def required_int(value: Any, name: str, lo: int, hi: int) -> int:
    """A whole number that must be given, within [lo, hi]."""
    return int(required_number(value, name, lo, hi, integer=True))


def file_path(file: Any) -> Optional[str]:
    """A gr.File value (path string, dict or object with .name) as a path."""
    if file is None or file == "":
        return None
    if isinstance(file, dict):
        file = file.get("path") or file.get("name")
    return str(getattr(file, "name", file))


def code_from(model: LoadedModel, source: str, seed: Any, psi: Any, class_idx: Any, code_file: Any) -> torch.Tensor:
    """The W+ code [1, num_ws, w_dim] a tab works on: from a seed, or the first code of an .npz."""
    G = model.G
    if source == "file":
        path = file_path(code_file)
        if path is None:
            raise ValueError("choose an .npz code file (e.g. from the inversion tab), or use a seed")
        return load_latents(path, num_ws=G.num_ws, w_dim=G.w_dim)[:1].to(model.device)
    settings = GenerationSettings(
        truncation_psi=required_number(psi, "truncation psi", -2, 2),
        class_idx=required_int(class_idx, "class", 0, G.c_dim - 1) if G.c_dim else None)
    return seeds_to_ws(G, [required_int(seed, "seed", 0, 2 ** 32 - 1)], settings, model.device)


class SessionStopFlags:
    """One stop flag per browser session, so a Stop button ends only that session's run."""

    def __init__(self) -> None:
        self._flags: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, request: Optional[gr.Request]) -> threading.Event:
        with self._lock:
            return self._flags.setdefault(session_key(request), threading.Event())


def session_key(request: Optional[gr.Request]) -> str:
    """The browser session of a request; API calls without one share the key 'api'."""
    return getattr(request, "session_hash", None) or "api"


def progress_callback(progress: gr.Progress) -> Callable[[float, str], None]:
    return lambda fraction, message: progress(fraction, desc=message)


def save_png(image: np.ndarray, stem: str) -> str:
    """Write an image to a fresh temporary PNG that Gradio may serve for download."""
    folder = Path(tempfile.mkdtemp(prefix="stylecore-"))
    path = folder / f"{stem}.png"
    Image.fromarray(image).save(path)
    return str(path)
