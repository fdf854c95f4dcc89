"""StyleCLIP tab: edit a face (or anything) by text, on a seed, the latest inversion result or an
uploaded .npz code, with StyleCLIP's three methods: global directions, latent optimisation and
released latent mappers.

The simple view holds what a visitor needs (where the image comes from, the method, the text or the
mapper, how strong); each method shows only its own controls, and the research settings (β, the
relevance table's size, learning rate, L2 and identity weights, schedule, CLIP model, truncation) wait
in a closed "Advanced" section. Edit is enabled only when the chosen source and method have what they
need.

Endpoint /styleclip: before, after, a strip over several strengths (images enlarged for display),
the PNG and the edited code at the model's size, a status line. /styleclip_stop stops a running
optimisation or relevance computation of the session.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from spaces.common import (
    SEED_INFO,
    SessionStopFlags,
    code_from,
    default_model,
    edit_status,
    file_path,
    first_code_file,
    listen,
    model_picker,
    offline_banner,
    on_gpu,
    progress_callback,
    request_number,
    required_int,
    required_number,
    shown,
    tuned_for,
    user_errors,
)
from spaces.handoff import INVERSION_CODES, offered
from stylecore.edit import resources
from stylecore.edit.styleclip import (GlobalDirectionRequest, MapperRequest, OptimizationRequest, OptimizeConfig,
                                      StyleClipRequest)
from stylecore.edit.styleclip_mapper import ENV_MAPPERS, MAPPER_ROWS, local_mappers, mapper_folder
from stylecore.codes.schedule import COARSE_TO_FINE, FULL, default_schedule
from stylecore.engine.manager import ModelManager
from stylecore.perception.clip import DEFAULT_CLIP, ENV_CLIP, clean_prompt
from stylecore.perception.identity import ARCFACE_CARD, ENV_ID_WEIGHTS
from stylecore.progress import Cancelled

GLOBAL, OPTIMIZATION, MAPPER = METHODS = ("Global direction", "Latent optimization", "Latent mapper")
METHOD_INFO = ("Global direction: quick, works for any text. Latent optimization: slower, follows the text more "
               "closely. Latent mapper: a small network trained for one text (StyleGAN2 FFHQ 1024 only).")
SOURCE_LABELS = [("a seed", "seed"), ("the Inversion tab's result", "inversion"), ("a code file (.npz)", "file")]
MAX_STRIP = 9
MAX_RELEVANCE_IMAGES = 200
MAX_STEPS = 5000
UPLOAD_HEIGHT = 150  # px: room for "Drop File Here - or - Click to Upload"


def _strip_values(text: Any) -> tuple[float, ...]:
    """'-5, 0, 5' -> (-5.0, 0.0, 5.0) (at most MAX_STRIP values)."""
    parts = [p for p in str(text or "").replace(";", ",").split(",") if p.strip()]
    values = tuple(required_number(p, "strip value", -100, 100) for p in parts)
    if len(values) > MAX_STRIP:
        raise ValueError(f"the strip takes at most {MAX_STRIP} values, got {len(values)}")
    return values


def _mapper(upload: Any, choice: Any) -> str:
    """The mapper to use: an upload, else a listed mapper or an hf:// address (never another server path)."""
    uploaded = file_path(upload)
    if uploaded:
        return uploaded
    spec = str(choice or "").strip()
    if spec and not spec.startswith("hf://") and spec not in {str(p) for p in local_mappers(MAPPER_ROWS)}:
        raise ValueError("Mapper: pick one from the list, upload a .pt file, or give hf://owner/repo/file.pt")
    return spec


def _request(method: str, target: str, neutral: str, alpha: Any, beta: Any, auto_beta: bool, strip: Any,
             relevance_images: Any, steps: Any, lr: Any, l2_lambda: Any, mapper_file: Any, mapper_hub: Any,
             mapper_strength: Any, clip_model: Any, id_weights: Any, id_lambda: Any,
             schedule: Any = "auto") -> StyleClipRequest:
    """The request the inputs describe, checked (prompts before any model is loaded); numbers are
    named by their labels in the messages."""
    values = _strip_values(strip)
    clip_name = str(clip_model or "").strip()
    if method == GLOBAL:
        clean_prompt(target, "target text")
        clean_prompt(neutral, "neutral text")
        return GlobalDirectionRequest(
            target, neutral, required_number(alpha, "Strength (α)", -50, 50),
            None if auto_beta else required_number(beta, "Disentanglement threshold (β)", 0, 1),
            required_int(relevance_images, "Images per channel", 1, MAX_RELEVANCE_IMAGES), values, clip_name)
    if method == OPTIMIZATION:
        clean_prompt(target, "target text")
        config = OptimizeConfig(steps=required_int(steps, "Steps", 1, MAX_STEPS),
                                lr=required_number(lr, "Learning rate", 0, 10),
                                l2_lambda=required_number(l2_lambda, "Closeness (L2 λ)", 0, 100),
                                id_lambda=required_number(id_lambda if id_lambda is not None else 0.0,
                                                          "Identity (λ)", 0, 100))
        return OptimizationRequest(target, config, file_path(id_weights) or "", clip_name, str(schedule or "auto"))
    if method == MAPPER:
        return MapperRequest(_mapper(mapper_file, mapper_hub),
                             required_number(mapper_strength, "Mapper strength", -10, 10), values)
    raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")


def _gpu_seconds(arguments: dict) -> float:
    if arguments.get("method") == OPTIMIZATION:
        return 30 + 0.5 * request_number(arguments, "steps", 40)
    return 60 + 2 * request_number(arguments, "relevance_images", 16)


def _w_rows(architecture: str, resolution: int) -> int:
    """W+ rows of a StyleGAN2 at `resolution` (2·log2(res) − 2), known before it is loaded; 0 otherwise."""
    return 2 * int(math.log2(resolution)) - 2 if architecture == "stylegan2" and resolution else 0


def _shown(*flags: bool) -> list:
    return [gr.update(visible=bool(flag)) for flag in flags]


class StyleClipTab:
    """The StyleCLIP tab: the layout, the edit handler (one stylecore.edit call) and its Stop button."""

    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager
        self.default = default_model(manager, "styleclip")
        self.stops = SessionStopFlags()

    def load_clip_first(self, arguments: dict) -> None:
        """CLIP, downloaded and loaded before any GPU time (the mapper needs none)."""
        if arguments.get("method") != MAPPER:
            resources.clip_model(self.manager, str(arguments.get("clip_model") or "").strip(), self.manager.device)

    def run(self, model_id: str = "", source: str = "seed", seed: float = 0, truncation_psi: float = 0.7,
            class_idx: float = 0, code_file: Any = None, inversion_codes: Any = None,
            method: str = GLOBAL, target: str = "a smiling face with curly hair", neutral: str = "a face",
            alpha: float = 4.0, beta: float = 0.15, auto_beta: bool = False, strip: str = "-4, -2, 0, 2, 4",
            relevance_images: float = 16, steps: float = 40, lr: float = 0.1, l2_lambda: float = 0.008,
            mapper_file: Any = None, mapper_hub: str = "", mapper_strength: float = 1.0,
            clip_model: str = "", id_weights: Any = None, id_lambda: float = 0.0, schedule: str = "auto",
            request: gr.Request = None, event: gr.EventData = None, progress: gr.Progress = gr.Progress()):
        """Edit the code by text; returns before, after, the strip (on a page, images enlarged when small),
        the PNG and the edited code (.npz) at the model's size, a status line.
        mapper_hub: a mapper the tab lists, or hf://owner/repo/file.pt (mapper_file, an upload, comes first).
        schedule (latent optimization): 'coarse-to-fine', 'full' or 'auto' (coarse-to-fine on a CPU)."""
        stop = self.stops.get(request)
        stop.clear()
        edit = _request(method, target, neutral, alpha, beta, auto_beta, strip, relevance_images, steps, lr,
                        l2_lambda, mapper_file, mapper_hub, mapper_strength, clip_model, id_weights, id_lambda,
                        schedule)
        model = self.manager.get(model_id or self.default, progress=progress_callback(progress))
        model, drawn = tuned_for(self.manager, model, source, code_file, inversion_codes, request)
        ws = code_from(model, source, seed, truncation_psi, class_idx, code_file, inversion_codes)
        try:
            result = resources.edit_by_text(self.manager, model, ws, edit, progress_callback(progress), stop)
        except Cancelled as exc:
            raise gr.Error(f"Stopped: {exc}") from None
        png, code = result.save(Path(tempfile.mkdtemp(prefix="stylecore-styleclip-")), f"{model.card.id}-styleclip")
        gallery = [(shown(image, event), f"{value:g}") for image, value in result.strip]
        return (shown(result.before, event), shown(result.after, event), gallery, str(png), str(code),
                edit_status(model, result, timed=True, drawn=drawn))

    def stop_run(self, request: gr.Request):
        self.stops.get(request).set()
        return "Stopping after the current step…"

    def _card(self, model_id: str) -> tuple[str, int, int]:
        """(architecture, resolution, classes) of a model from its card, without loading it."""
        card = self.manager.zoo.get(model_id) if model_id in self.manager.zoo else None
        return (card.architecture, card.resolution, card.c_dim) if card else ("", 0, 0)

    def shown(self, model_id: str, source: str, method: str) -> list:
        """Which controls the chosen model, source and method use, in the order of `layout`'s `modal`:
        seed, class, code file, truncation; target text, global, optimisation, mapper, strip, global
        advanced, optimisation advanced, CLIP model."""
        classes = self._card(model_id)[2]
        seeded = source == "seed"
        return _shown(seeded, seeded and classes, source == "file", seeded,
                      method != MAPPER, method == GLOBAL, method == OPTIMIZATION, method == MAPPER,
                      method != OPTIMIZATION, method == GLOBAL, method == OPTIMIZATION, method != MAPPER)

    def mappers(self, model_id: str) -> tuple[list[tuple[str, str]], str]:
        """The mappers offered for a model, (name, path) each: the files in the mapper folder when its
        codes have the rows StyleCLIP's mappers read; and a line saying where they come from or why
        there are none."""
        rows = _w_rows(*self._card(model_id)[:2])
        found = [(path.stem.replace("_", " "), str(path)) for path in local_mappers(rows)]
        if found:
            return found, f"mappers in {mapper_folder()}; or type hf://owner/repo/file.pt"
        if rows == MAPPER_ROWS:
            return found, (f"none here yet: put released mappers (mapper/pretrained/*.pt) in {mapper_folder()} "
                           f"(${ENV_MAPPERS}), upload one below, or type hf://owner/repo/file.pt")
        return found, ("no mapper exists for this model: StyleCLIP's mappers were trained for StyleGAN2 FFHQ 1024 "
                       "(18 code rows); upload one made for it, or try Global direction")

    def mapper_list(self, model_id: str) -> Any:
        """The Mapper dropdown's update when the model changes."""
        choices, info = self.mappers(model_id)
        return gr.update(choices=choices, value=None, info=info)

    @staticmethod
    def ready(source: str, code_file: Any, inversion_codes: Any, method: str, mapper_file: Any, mapper: Any) -> Any:
        """Edit is enabled only when the chosen source and method have what they need."""
        has_code = {"file": file_path(code_file) is not None,
                    "inversion": first_code_file(inversion_codes) is not None}.get(source, True)
        has_mapper = method != MAPPER or bool(file_path(mapper_file) or str(mapper or "").strip())
        return gr.update(interactive=has_code and has_mapper)

    def layout(self) -> None:
        """Lay out the tab in the current gr.Blocks and wire its events."""
        run = on_gpu(self.manager, self.default, seconds=_gpu_seconds, prepare=self.load_clip_first)(
            user_errors(self.run))
        inversion_codes = offered(INVERSION_CODES)
        classes = self._card(self.default)[2]
        with gr.Tab("StyleCLIP", id="styleclip"):
            offline_banner(self.manager)
            gr.Markdown("Change an image by describing the change in words (StyleCLIP, Patashnik et al. 2021).")
            with gr.Row():
                with gr.Column(scale=1):
                    model = model_picker(self.manager, self.default, "styleclip_refresh_models")
                    source = gr.Radio(SOURCE_LABELS, value="seed", label="Start from",
                                      info="an image drawn from a seed, the photo the Inversion tab rebuilt, or a "
                                           "saved code")
                    seed = gr.Number(value=0, precision=0, label="Seed", info=SEED_INFO)
                    class_idx = gr.Number(value=0, precision=0, label="Class", visible=bool(classes),
                                          info="which class the model draws (conditional models)")
                    code_file = gr.File(label="Code (.npz)", file_types=[".npz"], height=UPLOAD_HEIGHT,
                                        visible=False)
                    if inversion_codes is None:
                        inversion_codes = gr.State(None)
                    method = gr.Radio(list(METHODS), value=GLOBAL, label="Method", info=METHOD_INFO)
                    target = gr.Textbox(value="a smiling face with curly hair", label="Target text", max_length=1000,
                                        info="what the image should become, in words")
                    with gr.Group(visible=True) as global_box:
                        neutral = gr.Textbox(value="a face", label="Neutral text", max_length=1000,
                                             info="what the image shows now, in words: the edit is the difference")
                        alpha = gr.Slider(-10, 10, value=4.0, step=0.1, label="Strength (α)",
                                          info="how far the image moves towards the target text; negative moves "
                                               "away from it")
                    with gr.Group(visible=False) as opt_box:
                        steps = gr.Number(value=40, precision=0, label="Steps",
                                          info=f"1 to {MAX_STEPS}: more steps follow the text more closely and "
                                               "take longer")
                    with gr.Group(visible=False) as mapper_box:
                        mapper_choices, mapper_info = self.mappers(self.default)
                        mapper_hub = gr.Dropdown(mapper_choices, value=None, label="Mapper", info=mapper_info,
                                                 allow_custom_value=True)
                        mapper_file = gr.File(label="Or upload a mapper (.pt)", file_types=[".pt"],
                                              height=UPLOAD_HEIGHT)
                        mapper_strength = gr.Slider(-3, 3, value=1.0, step=0.1, label="Mapper strength",
                                                    info="1: as trained; 0: no change; negative: the opposite")
                    strip = gr.Textbox(value="-4, -2, 0, 2, 4", label="Strengths for the strip",
                                       info="comma-separated strengths shown side by side (empty: no strip)")
                    with gr.Accordion("Advanced", open=False):
                        psi = gr.Slider(-1.0, 2.0, value=0.7, step=0.05, label="Truncation psi (ψ)",
                                        info="below 1 draws more typical images from the seed, 1 the model as "
                                             "trained")
                        with gr.Group(visible=True) as global_advanced:
                            beta = gr.Slider(0.0, 0.4, value=0.15, step=0.01, label="Disentanglement threshold (β)",
                                             info="higher: fewer style channels move, a narrower edit")
                            auto_beta = gr.Checkbox(value=False, label="Choose β automatically (StyleCLIP GUI rule)")
                            relevance_images = gr.Number(
                                value=16, precision=0, label="Images per channel",
                                info=f"1 to {MAX_RELEVANCE_IMAGES}: images used once per model to learn what each "
                                     "style channel does (the paper: 100); unused where the released table fits")
                        with gr.Group(visible=False) as opt_advanced:
                            with gr.Row():
                                lr = gr.Number(value=0.1, label="Learning rate", info="0 to 10: size of each step")
                                l2_lambda = gr.Number(value=0.008, label="Closeness (L2 λ)",
                                                      info="0 to 100: higher keeps the result nearer the start")
                            id_weights = gr.File(label="Face-recognition weights (optional upload)",
                                                 file_types=[".pth", ".pt"], height=UPLOAD_HEIGHT)
                            id_lambda = gr.Number(value=0.0, label="Identity (λ)",
                                                  info=f"0 to 100, 0 = off: keeps the person recognisable "
                                                       f"(StyleCLIP's notebook: 0.005). Without an upload: "
                                                       f"${ENV_ID_WEIGHTS}, else {ARCFACE_CARD.repo_id} from the Hub "
                                                       "(175 MB, once)")
                            schedule = gr.Radio([COARSE_TO_FINE, FULL], value=default_schedule(self.manager.device),
                                                label="Optimisation schedule",
                                                info="coarse-to-fine: the first 90% of the steps on a StyleGAN2's "
                                                     "256 px image (CLIP sees 224 px), the rest at full "
                                                     "resolution; the default on a CPU. full: every step at full "
                                                     "resolution")
                        clip_model = gr.Textbox(value="", label="CLIP model",
                                                placeholder=f"default: ${ENV_CLIP} or {DEFAULT_CLIP}",
                                                info="the network that reads the text and judges the image")
                    with gr.Row():
                        go = gr.Button("Edit", variant="primary")
                        stop_button = gr.Button("Stop", variant="stop")
                with gr.Column(scale=2):
                    status = gr.Markdown()
                    with gr.Row():
                        before = gr.Image(label="Before", type="numpy", format="png", interactive=False)
                        after = gr.Image(label="After", type="numpy", format="png", interactive=False)
                    gallery = gr.Gallery(label="Strip", columns=5, height="auto", format="png", object_fit="contain",
                                         elem_classes=["snug-gallery"])
                    with gr.Row():
                        result_file = gr.File(label="Edited image (PNG)")
                        code_out = gr.File(label="Edited code (.npz)")

            modal = [seed, class_idx, code_file, psi, target, global_box, opt_box, mapper_box, strip, global_advanced,
                     opt_advanced, clip_model]
            gr.on([model.change, source.change, method.change], self.shown, [model, source, method], modal,
                  api_visibility="private")
            model.change(self.mapper_list, [model], [mapper_hub], api_visibility="private")
            needs = [source, code_file, inversion_codes, method, mapper_file, mapper_hub]
            gr.on([c.change for c in needs], self.ready, needs, [go], api_visibility="private")
            listen(go.click, run, [model, source, seed, psi, class_idx, code_file, inversion_codes, method, target,
                                   neutral, alpha, beta, auto_beta, strip, relevance_images, steps, lr, l2_lambda,
                                   mapper_file, mapper_hub, mapper_strength, clip_model, id_weights, id_lambda,
                                   schedule],
                   [before, after, gallery, result_file, code_out, status], status, api_name="styleclip")
            stop_button.click(self.stop_run, None, [status], api_name="styleclip_stop", queue=False)
