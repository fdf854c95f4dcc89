"""Helpers shared by the tabs: model choices with download state, and turning engine errors
into messages the user sees (gr.Error) while the app keeps serving."""
from __future__ import annotations

import functools
import inspect
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

import gradio as gr
import numpy as np
from PIL import Image

from stylecore import hub
from stylecore.engine import ModelManager
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


def parse_number(value: Any, name: str, integer: bool = False) -> Optional[float]:
    """Numbers from the API arrive as anything: check them before they reach the engine.
    None or '' mean 'not given'."""
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
    return int(number) if integer else number


def progress_callback(progress: gr.Progress) -> Callable[[float, str], None]:
    return lambda fraction, message: progress(fraction, desc=message)


def save_png(image: np.ndarray, stem: str) -> str:
    """Write an image to a fresh temporary PNG that Gradio may serve for download."""
    folder = Path(tempfile.mkdtemp(prefix="stylecore-"))
    path = folder / f"{stem}.png"
    Image.fromarray(image).save(path)
    return str(path)
