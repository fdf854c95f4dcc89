"""Helpers shared by the tabs: model choices with download state, and turning engine errors
into messages the user sees while the app keeps serving: in the browser a toast and a status line
with every earlier result left in place (`listen`), through the API an error (gr.Error)."""
from __future__ import annotations

import functools
from dataclasses import dataclass
import inspect
import logging
import math
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import gradio as gr
import numpy as np
import torch
from PIL import Image

from stylecore.engine import hub
from stylecore.engine.defaults import default_model_id
from stylecore.engine.threads import request_threads
from stylecore.engine.manager import LoadedModel, ModelManager
from stylecore.codes.generate import GenerationSettings, settings_ws
from stylecore.codes.latents import code_text, load_latents, parse_seeds
from stylecore.edit.result import EditResult
from stylecore.engine.reachability import PROBING, UNPROBED
from stylecore.engine.remote import ModelUnavailable
from stylecore.engine.tuned import TUNED_FIELD, tuned_model
from stylecore.engine.zoo import ModelCard


def model_label(card: ModelCard) -> str:
    """Name (with the architecture and size when the name lacks them: labels stay short enough to read in
    the dropdown) and download state; a model that is not downloaded says so with what is
    known to stop its download now ("not downloaded, Hub unreachable"), so none is offered as if it would work."""
    state = hub.download_state(card)
    blocker = hub.fetch_blocker(card) if state == "not downloaded" else ""
    names = {"stylegan2": "StyleGAN2", "stylegan3": "StyleGAN3", "stylenerf": "StyleNeRF"}
    arch = names.get(card.architecture, "StyleGAN")
    kind = "" if arch in card.title else f" ({arch}{f' {card.resolution}px' if card.resolution else ''})"
    return f"{card.title}{kind} · {state}" + (f", {blocker}" if blocker else "")


def model_choices(manager: ModelManager) -> list[tuple[str, str]]:
    """(label, id) pairs for a dropdown; the label says whether the file is already here, or cannot be fetched now.
    Domain generators (StyleGAN-NADA) are listed in the Domains tab, beside their generator."""
    return [(model_label(card), card.id) for card in manager.zoo.cards() if not card.base]


def default_model(manager: ModelManager, tab: str) -> str:
    """The model `tab` opens on (stylecore.engine.defaults): real when the network allows, else the demo network."""
    return default_model_id(manager.zoo, tab, manager.reachability)


def offline_banner(manager: ModelManager) -> None:
    """At the top of a tab: say so when the tabs open on the demo networks, and why. The start-up probe runs
    in the background, so each page load fills the banner in (waiting for the probe while it runs)."""
    notice = offline_notice(manager)
    banner = gr.Markdown(notice, visible=bool(notice))

    def on_load() -> dict:
        manager.settled_reachability()
        text = offline_notice(manager)
        return gr.update(value=text, visible=bool(text))

    gr.on(None, on_load, outputs=[banner], api_visibility="private", queue=False, show_progress="hidden")


def card_details(manager: ModelManager, model_id: Optional[str]) -> str:
    """What a visitor should know about a model before using it: size, domain, classes, license, source."""
    if not model_id or model_id not in manager.zoo:
        return ""
    card = manager.zoo.get(model_id)
    facts = [f"{card.resolution} px" if card.resolution else "", card.domain,
             f"conditional: {card.c_dim} classes" if card.c_dim else ""]
    where = card.source if card.is_builtin or not card.repo_id else \
        f"{card.source.split('@')[0]} @ {card.revision[:12] if card.revision else 'main (unpinned)'}"
    checked = " (SHA-256 checked)" if card.sha256 else ""
    lines = [f"**{card.title}**: " + ", ".join(f for f in facts if f) + ".",
             f"License: {card.license or 'not stated'}.", f"Source: {where}{checked}"]
    if card.notes:
        lines.append(f"Notes: {card.notes}.")
    return "  \n".join(lines)


def model_card_panel(manager: ModelManager, dropdown: gr.Dropdown) -> gr.Markdown:
    """A small panel under a model dropdown with the chosen card's details, kept in step with it."""
    panel = gr.Markdown(card_details(manager, dropdown.value), elem_classes=["model-card"])
    dropdown.change(lambda model_id: card_details(manager, model_id), [dropdown], [panel],
                    api_visibility="private")
    return panel


def model_picker(manager: ModelManager, default: str, refresh_api_name: str,
                 choices: Optional[list[tuple[str, str]]] = None, label: str = "Model") -> gr.Dropdown:
    """The model dropdown (its labels say what is downloaded, and what cannot be fetched now) with a button
    that refreshes them and the chosen card's details beneath. Each page load refreshes the labels once
    the start-up probe has answered, since what it found decides the wording."""
    listed = [model_id for _, model_id in (choices if choices is not None else model_choices(manager))]

    def labelled() -> list[tuple[str, str]]:
        return [(model_label(manager.zoo.get(model_id)), model_id) for model_id in listed]

    def info() -> str:
        if any(hub.fetch_blocker(manager.zoo.get(model_id)) for model_id in listed):
            return ("models marked 'unreachable' or 'offline mode' cannot be downloaded now: the demo networks "
                    "and the downloaded models work")
        return "'not downloaded' models are fetched on first use (Hub or NVIDIA)"

    def on_load() -> dict:
        manager.settled_reachability()
        return gr.update(choices=labelled(), info=info())

    model = gr.Dropdown(choices=labelled(), value=default, label=label, info=info())
    model_card_panel(manager, model)
    refresh = gr.Button("Refresh download states", size="sm")
    refresh.click(lambda current: gr.update(choices=labelled(), value=current, info=info()), [model], [model],
                  api_name=refresh_api_name)
    gr.on(None, on_load, outputs=[model], api_visibility="private", queue=False, show_progress="hidden")
    return model


def offline_notice(manager: ModelManager) -> str:
    """The banner's Markdown: why the tabs open on the demo networks and what still works; empty when the
    network is up, nothing was probed, or the probe has not answered yet."""
    reach = manager.reachability
    if reach.online or reach in (UNPROBED, PROBING):
        return ""
    unreachable = (" Models that would need a download are marked 'unreachable' in the model lists; choosing "
                   "one fails at once (the servers are not asked again for a while).") if reach.detail else ""
    return (f"**Demo networks**: the tabs open on the built-in demo networks (untrained, random weights: their "
            f"images are noise by design) because {reach.reason}. Every control works on them, and models "
            f"already downloaded can still be picked.{unreachable}")


USER_ERRORS = (ValueError, KeyError, TypeError, OSError, ModelUnavailable)
SEED_MAX = 2 ** 32 - 1  # one seed range in every tab: numpy's RandomState takes 0 .. 2**32 - 1
SEED_INFO = f"any whole number from 0 to {SEED_MAX}; the same seed always gives the same image"
Arguments = dict[str, Any]


def request_number(arguments: Arguments, name: str, fallback: float) -> float:
    """A number from a request's arguments for sizing its GPU time; bad values fall back (the event
    itself rejects them with a proper message)."""
    try:
        value = float(arguments.get(name))
    except (TypeError, ValueError):
        return fallback
    return value if math.isfinite(value) and value >= 0 else fallback


def count_seeds(text: Any, max_count: int) -> int:
    """How many seeds a request names (the most allowed when it cannot be read), for sizing GPU time."""
    try:
        return len(parse_seeds(str(text if text is not None else "0"), max_count=max_count))
    except ValueError:
        return max_count


def on_gpu(manager: ModelManager, default: str, seconds: Callable[[Arguments], float],
           prepare: Optional[Callable[[Arguments], None]] = None) -> Callable[[Callable], Callable]:
    """ZeroGPU done right: the event's model (its `model_id`, blank meaning `default`) is downloaded,
    converted and loaded, and `prepare(arguments)` fetches any other file, all BEFORE the GPU is taken;
    then the event runs under `spaces.GPU` for `seconds(arguments)` (bounded to 10-600 s). Without
    ZeroGPU, `spaces.GPU` changes nothing and this only front-loads the downloads."""
    from spaces import GPU

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)

        def arguments_of(args: tuple, kwargs: dict) -> Arguments:
            bound = signature.bind_partial(*args, **kwargs)
            bound.apply_defaults()
            return dict(bound.arguments)

        def duration(*args: Any, **kwargs: Any) -> int:
            return int(min(600, max(10, seconds(arguments_of(args, kwargs)))))

        gpu_fn = GPU(duration=duration)(fn)

        @user_errors
        def fetch_first(arguments: Arguments) -> None:
            progress = arguments.get("progress")
            report = progress_callback(progress) if isinstance(progress, gr.Progress) else None
            manager.get(str(arguments.get("model_id") or default), progress=report)
            if prepare is not None:
                prepare(arguments)

        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def run_generator(*args: Any, **kwargs: Any) -> Any:
                fetch_first(arguments_of(args, kwargs))
                steps = gpu_fn(*args, **kwargs)
                try:
                    while True:
                        with request_threads():  # per step: Gradio may resume a generator on another thread
                            try:
                                item = next(steps)
                            except StopIteration:
                                return
                        yield item
                finally:
                    steps.close()  # Stop closes this generator: close the work too

            return run_generator

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            fetch_first(arguments_of(args, kwargs))
            with request_threads():  # concurrent requests share the cores instead of oversubscribing them
                return gpu_fn(*args, **kwargs)

        return run

    return decorate


log = logging.getLogger("stylecore.app")


def _as_gr_error(exc: BaseException) -> gr.Error:
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return gr.Error(str(message), print_exception=False)  # ordinary input: no traceback in the console


def user_errors(fn: Callable) -> Callable:
    """Bad input and unavailable models become gr.Error with the message, not a crash (and not a
    console traceback); real faults pass through untouched.

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


_EVENT = "_stylecore_event"


def keep_results(fn: Callable, outputs: Sequence[Any], status: Optional[Any] = None) -> Callable:
    """`fn` (already wrapped by user_errors) for a browser event: a user error becomes a toast and,
    when `status` is one of `outputs`, a line there, while every other output keeps its value (no
    red badges, nothing wiped). API callers (no triggering component) still get the error itself.
    Each user error is logged as one line."""
    outputs = list(outputs)
    signature = inspect.signature(fn)
    event_param = inspect.Parameter(_EVENT, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
    params = list(signature.parameters.values())
    index = next((i for i, p in enumerate(params) if p.kind in (p.VAR_POSITIONAL, p.KEYWORD_ONLY, p.VAR_KEYWORD)),
                 len(params))
    params.insert(index, event_param)

    def split(args: tuple, kwargs: dict) -> tuple[Any, tuple, dict]:
        if _EVENT in kwargs:
            return kwargs.pop(_EVENT), args, kwargs
        if len(args) > index:
            return args[index], args[:index] + args[index + 1:], kwargs
        return None, args, kwargs

    def reported(event: Any, error: gr.Error) -> Any:
        log.warning("user error in %s: %s", getattr(fn, "__name__", "event"), error.message)
        if getattr(event, "target", None) is None:  # an API call: the caller gets the error
            raise error
        gr.Warning(error.message)
        values = [f"**Could not do that:** {error.message}" if o is status else gr.skip() for o in outputs]
        return values[0] if len(values) == 1 else tuple(values)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def run_generator(*args: Any, **kwargs: Any) -> Any:
            event, args, kwargs = split(args, kwargs)
            try:
                yield from fn(*args, **kwargs)
            except gr.Error as error:
                yield reported(event, error)
        wrapper = run_generator
    else:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            event, args, kwargs = split(args, kwargs)
            try:
                return fn(*args, **kwargs)
            except gr.Error as error:
                return reported(event, error)
        wrapper = run
    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**getattr(fn, "__annotations__", {}), _EVENT: gr.EventData}
    return wrapper


def listen(trigger: Callable, fn: Callable, inputs: Sequence[Any], outputs: Sequence[Any],
           status: Optional[Any] = None, **options: Any) -> Any:
    """Wire `fn` to a trigger (e.g. `button.click`) so its user errors keep earlier results (keep_results)."""
    return trigger(keep_results(fn, outputs, status), list(inputs), list(outputs), **options)


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
        raise ValueError(f"{name} must be from {plain(lo)} to {plain(hi)}, got {plain(number)}")
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


def required_seed(value: Any, name: str = "seed") -> int:
    """A seed from the one range every tab uses."""
    return required_int(value, name, 0, SEED_MAX)


def plain(number: float) -> str:
    """A number as a person writes it: 4294967295, 0.5, 1e-06 only when tiny, never 4.29497e+09."""
    if float(number).is_integer() and abs(number) < 1e18:
        return str(int(number))
    return f"{number:.6g}" if abs(number) >= 1e-4 else f"{number:g}"


def file_path(file: Any) -> Optional[str]:
    """A gr.File value (path string, dict or object with .name) as a path."""
    if file is None or file == "":
        return None
    if isinstance(file, dict):
        file = file.get("path") or file.get("name")
    return str(getattr(file, "name", file))


def first_code_file(files: Any) -> Optional[str]:
    """The first of a File list's paths (the Inversion tab's codes: one .npz per method), or None."""
    if isinstance(files, (list, tuple)):
        files = files[0] if files else None
    return file_path(files)


def code_from(model: LoadedModel, source: str, seed: Any, psi: Any, class_idx: Any, code_file: Any,
              inversion_codes: Any = None) -> torch.Tensor:
    """The W+ code [1, num_ws, w_dim] a tab works on: from a seed, the first code of an .npz, or the
    Inversion tab's latest result (source 'inversion', its list of code files)."""
    G = model.G
    if source in ("file", "inversion"):
        path = file_path(code_file) if source == "file" else first_code_file(inversion_codes)
        if path is None:
            raise ValueError("choose an .npz code file (e.g. from the inversion tab), or use a seed" if source == "file"
                             else "no inversion result yet: run the Inversion tab first, or use a seed or a file")
        return load_latents(path, num_ws=G.num_ws, w_dim=G.w_dim)[:1].to(model.device)
    settings = GenerationSettings(
        truncation_psi=required_number(psi, "truncation psi", -2, 2),
        class_idx=required_int(class_idx, "class", 0, G.c_dim - 1) if G.c_dim else None)
    return settings_ws(G, [required_seed(seed)], settings, model.device)


TUNED_MISSING = ("this code was made by PTI or HyperStyle with tuned generator weights that this session does not "
                 "hold for this model (they live in the session that made them, while memory allows; its "
                 "-tuned-weights.safetensors is the download): drawn with the shared generator, so it may not look "
                 "like the photo")
TUNED_USED = "drawn with the generator weights PTI or HyperStyle tuned for this code in this session"


def tuned_for(manager: ModelManager, model: LoadedModel, source: str, code_file: Any, inversion_codes: Any,
              request: Optional[gr.Request]) -> tuple[LoadedModel, str]:
    """The model to draw the chosen code with, and a note: for a PTI / HyperStyle code made in this session,
    the shared model with that code's tuned weights (stylecore.engine.tuned); otherwise `model` itself."""
    if source not in ("file", "inversion"):
        return model, ""
    path = file_path(code_file) if source == "file" else first_code_file(inversion_codes)
    digest = code_text(path, TUNED_FIELD) if path else ""
    if not digest:
        return model, ""
    tuned = tuned_model(manager, session_key(request), model, digest)
    return (model, TUNED_MISSING) if tuned is None else (tuned, TUNED_USED)


def region_mask(editor: Any, box: Any) -> np.ndarray:
    """The marked region: brush strokes in the editor, else the box 'x0, y0, x1, y1' (fractions)."""
    if isinstance(editor, dict):
        strokes = [np.asarray(l) for l in (editor.get("layers") or []) if l is not None]
        marks = [l[..., 3] > 0 if l.ndim == 3 and l.shape[-1] == 4 else np.asarray(l).any(axis=-1)
                 for l in strokes if np.asarray(l).ndim == 3]
        if marks and any(m.any() for m in marks):
            return np.logical_or.reduce(marks)
    try:
        x0, y0, x1, y1 = (float(v) for v in str(box or "").replace(";", ",").split(","))
    except ValueError:
        brush = "mark the region with the brush, or " if editor is not None else ""
        raise ValueError(f"{brush}give the region as a box 'x0, y0, x1, y1' in fractions of the image (e.g. 0.3, "
                         "0.6, 0.7, 0.9)") from None
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise ValueError("the box must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
    size = 256
    mask = np.zeros((size, size), dtype=bool)
    top, left = int(y0 * size), int(x0 * size)
    mask[top:max(int(y1 * size), top + 1), left:max(int(x1 * size), left + 1)] = True
    return mask




CODE_SOURCES = [("a seed", "seed"), ("the Inversion tab's result", "inversion"), ("a code file (.npz)", "file")]


@dataclass(frozen=True)
class CodeSource:
    """The controls that say which code a tab works on (see `code_from`); `inversion_codes` is the
    Inversion tab's list of code files (a hidden empty value when that tab is not in the app)."""

    source: Any
    seed: Any
    code_file: Any
    inversion_codes: Any

    def inputs(self, psi: Any) -> list:
        """code_from's inputs after the model, with the truncation control `psi`, in its order."""
        return [self.source, self.seed, psi, self.code_file, self.inversion_codes]


def code_source() -> CodeSource:
    """Lay out 'Face from' (a seed, the Inversion tab's result, a code file), the seed box and the
    upload, which shows only when a file is the source."""
    from spaces.handoff import INVERSION_CODES, offered

    source = gr.Radio(CODE_SOURCES, value="seed", label="Face from")
    seed = gr.Number(value=0, precision=0, label="Seed", info=f"which face: {SEED_INFO}")
    code_file = gr.File(label="Code file (.npz)", file_types=[".npz"], visible=False, height=120)
    source.change(lambda s: gr.update(visible=s == "file"), [source], [code_file], api_visibility="private")
    codes = offered(INVERSION_CODES)
    return CodeSource(source, seed, code_file, codes if codes is not None else gr.JSON(None, visible=False))


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


DISPLAY_MIN = 448  # px: smaller results (the 64 px demo networks) are enlarged to about the size they are shown at


def for_display(image: np.ndarray, minimum: int = DISPLAY_MIN) -> np.ndarray:
    """An image to show: small ones enlarged by a whole factor with nearest-neighbour sampling, so a
    64 px result fills its frame with crisp pixels instead of sitting as a thumbnail; files to download
    keep the real size."""
    height, width = image.shape[:2]
    factor = -(-minimum // max(1, min(height, width)))
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def shown(image: np.ndarray, event: Optional[gr.EventData]) -> np.ndarray:
    """The image an event returns: for a page, a small one enlarged with crisp pixels (for_display); for
    an API caller (no triggering component), as made: they want the real pixels."""
    return for_display(image) if getattr(event, "target", None) is not None else image


def save_png(image: np.ndarray, stem: str) -> str:
    """Write an image to a fresh temporary PNG that Gradio may serve for download."""
    folder = Path(tempfile.mkdtemp(prefix="stylecore-"))
    path = folder / f"{stem}.png"
    Image.fromarray(image).save(path)
    return str(path)


def edit_status(model: LoadedModel, result: EditResult, timed: bool = False, drawn: str = "") -> str:
    """The status line under an edit: what was done, how much the image changed (and how long the edit
    took, when `timed`), what the code file holds, and `drawn` (with which weights, from `tuned_for`)."""
    took = f"Edit took {result.seconds * 1000:.0f} ms; mean" if timed else "Mean"
    status = f"**{result.summary}.** {took} pixel change {result.mean_change:.2f} (of 255)."
    if model.untrained:
        status += " The demo network is untrained: edits change the image but carry no meaning."
    if result.styles is not None:
        status += " The code file holds the edited style code and the original code."
    if drawn:
        status += f" The image is {drawn}." if drawn == TUNED_USED else f" Note: {drawn}."
    return status
