"""StyleCLIP tab: edit a face (or anything) by text, on a seed, the latest inversion result or an
uploaded .npz code, with StyleCLIP's three methods: global directions, latent optimisation and
released latent mappers.

Endpoint /styleclip: before, after, a strip over several strengths, the PNG, the edited code, a
status line. /styleclip_stop stops a running optimisation or relevance computation of the session.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Optional

import gradio as gr
import torch

from spaces.common import (
    SessionStopFlags,
    code_from,
    default_model,
    edit_status,
    file_path,
    model_picker,
    offline_banner,
    on_gpu,
    progress_callback,
    request_number,
    required_int,
    required_number,
    user_errors,
)
from spaces.handoff import INVERSION_CODES, offered
from stylecore.codes.latents import load_latents
from stylecore.edit import resources
from stylecore.edit.styleclip import (GlobalDirectionRequest, MapperRequest, OptimizationRequest, OptimizeConfig,
                                      StyleClipRequest)
from stylecore.codes.schedule import COARSE_TO_FINE, FULL, default_schedule
from stylecore.engine.manager import LoadedModel, ModelManager
from stylecore.perception.clip import DEFAULT_CLIP, ENV_CLIP, clean_prompt
from stylecore.perception.identity import ARCFACE_CARD, ENV_ID_WEIGHTS
from stylecore.progress import Cancelled

METHODS = ("Global direction", "Latent optimization", "Latent mapper")
SOURCES = ("seed", "inversion", "file")
MAX_STRIP = 9
MAX_RELEVANCE_IMAGES = 200


def _strip_values(text: Any) -> tuple[float, ...]:
    """'-5, 0, 5' -> (-5.0, 0.0, 5.0) (at most MAX_STRIP values)."""
    parts = [p for p in str(text or "").replace(";", ",").split(",") if p.strip()]
    values = tuple(required_number(p, "strip value", -100, 100) for p in parts)
    if len(values) > MAX_STRIP:
        raise ValueError(f"the strip takes at most {MAX_STRIP} values, got {len(values)}")
    return values


def _inversion_code(files: Any) -> Optional[str]:
    """The first code file the inversion tab produced (its list holds one .npz per method)."""
    if isinstance(files, (list, tuple)):
        files = files[0] if files else None
    return file_path(files)


def _code(model: LoadedModel, source: str, seed: Any, psi: Any, class_idx: Any, code_file: Any,
          inversion_codes: Any) -> torch.Tensor:
    """The W+ code to edit: a seed, an uploaded .npz, or the Inversion tab's latest result."""
    if source != "inversion":
        return code_from(model, "file" if source == "file" else "seed", seed, psi, class_idx, code_file)
    path = _inversion_code(inversion_codes)
    if path is None:
        raise ValueError("no inversion result yet: run the Inversion tab first, or use a seed or a file")
    return load_latents(path, num_ws=model.G.num_ws, w_dim=model.G.w_dim)[:1].to(model.device)


def _request(method: str, target: str, neutral: str, alpha: Any, beta: Any, auto_beta: bool, strip: Any,
             relevance_images: Any, steps: Any, lr: Any, l2_lambda: Any, mapper_file: Any, mapper_hub: Any,
             mapper_strength: Any, clip_model: Any, id_weights: Any, id_lambda: Any,
             schedule: Any = "auto") -> StyleClipRequest:
    """The request the inputs describe, checked (prompts before any model is loaded)."""
    values = _strip_values(strip)
    clip_name = str(clip_model or "").strip()
    if method == "Global direction":
        clean_prompt(target, "target text")
        clean_prompt(neutral, "neutral text")
        return GlobalDirectionRequest(
            target, neutral, required_number(alpha, "alpha", -50, 50),
            None if auto_beta else required_number(beta, "beta", 0, 1),
            required_int(relevance_images, "images per channel", 1, MAX_RELEVANCE_IMAGES), values, clip_name)
    if method == "Latent optimization":
        clean_prompt(target, "target text")
        config = OptimizeConfig(steps=required_int(steps, "steps", 1, 5000),
                                lr=required_number(lr, "learning rate", 0, 10),
                                l2_lambda=required_number(l2_lambda, "L2 lambda", 0, 100),
                                id_lambda=required_number(id_lambda if id_lambda is not None else 0.0,
                                                          "identity lambda", 0, 100))
        return OptimizationRequest(target, config, file_path(id_weights) or "", clip_name, str(schedule or "auto"))
    if method == "Latent mapper":
        return MapperRequest(file_path(mapper_file) or str(mapper_hub or "").strip(),
                             required_number(mapper_strength, "mapper strength", -10, 10), values)
    raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")


def _gpu_seconds(arguments: dict) -> float:
    if arguments.get("method") == "Latent optimization":
        return 30 + 0.5 * request_number(arguments, "steps", 40)
    return 60 + 2 * request_number(arguments, "relevance_images", 16)


class StyleClipTab:
    """The StyleCLIP tab: the layout, the edit handler (one stylecore.edit call) and its Stop button."""

    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager
        self.default = default_model(manager, "styleclip")
        self.stops = SessionStopFlags()

    def load_clip_first(self, arguments: dict) -> None:
        """CLIP, downloaded and loaded before any GPU time (the mapper needs none)."""
        if arguments.get("method") != "Latent mapper":
            resources.clip_model(self.manager, str(arguments.get("clip_model") or "").strip(), self.manager.device)

    def run(self, model_id: str = "", source: str = "seed", seed: float = 0, truncation_psi: float = 0.7,
            class_idx: float = 0, code_file: Any = None, inversion_codes: Any = None,
            method: str = METHODS[0], target: str = "a smiling face with curly hair", neutral: str = "a face",
            alpha: float = 4.0, beta: float = 0.15, auto_beta: bool = False, strip: str = "-4, -2, 0, 2, 4",
            relevance_images: float = 16, steps: float = 40, lr: float = 0.1, l2_lambda: float = 0.008,
            mapper_file: Any = None, mapper_hub: str = "", mapper_strength: float = 1.0,
            clip_model: str = "", id_weights: Any = None, id_lambda: float = 0.0, schedule: str = "auto",
            request: gr.Request = None, progress: gr.Progress = gr.Progress()):
        """Edit the code by text; returns before, after, the strip, the PNG, the edited code (.npz), a status line.
        schedule (latent optimization): 'coarse-to-fine', 'full' or 'auto' (coarse-to-fine on a CPU)."""
        stop = self.stops.get(request)
        stop.clear()
        edit = _request(method, target, neutral, alpha, beta, auto_beta, strip, relevance_images, steps, lr,
                        l2_lambda, mapper_file, mapper_hub, mapper_strength, clip_model, id_weights, id_lambda,
                        schedule)
        model = self.manager.get(model_id or self.default, progress=progress_callback(progress))
        ws = _code(model, source, seed, truncation_psi, class_idx, code_file, inversion_codes)
        try:
            result = resources.edit_by_text(self.manager, model, ws, edit, progress_callback(progress), stop)
        except Cancelled as exc:
            raise gr.Error(f"Stopped: {exc}") from None
        png, code = result.save(Path(tempfile.mkdtemp(prefix="stylecore-styleclip-")), f"{model.card.id}-styleclip")
        gallery = [(image, f"{value:g}") for image, value in result.strip]
        return result.before, result.after, gallery, str(png), str(code), edit_status(model, result, timed=True)

    def stop_run(self, request: gr.Request):
        self.stops.get(request).set()
        return "Stopping after the current step…"

    @staticmethod
    def show_method(method: str):
        return [gr.update(visible=(method == m)) for m in METHODS]

    def layout(self) -> None:
        """Lay out the tab in the current gr.Blocks and wire its events."""
        run = on_gpu(self.manager, self.default, seconds=_gpu_seconds, prepare=self.load_clip_first)(
            user_errors(self.run))
        inversion_codes = offered(INVERSION_CODES)
        with gr.Tab("StyleCLIP", id="styleclip"):
            offline_banner(self.manager)
            gr.Markdown("Edit by text with StyleCLIP (Patashnik et al. 2021). Global directions need a channel "
                        "relevance table per model: the released one for StyleGAN2 FFHQ 1024, otherwise computed "
                        "once (can take long on big models; it resumes if stopped) and cached.")
            with gr.Row():
                with gr.Column(scale=1):
                    model = model_picker(self.manager, self.default, "styleclip_refresh_models")
                    with gr.Group():
                        source = gr.Radio(list(SOURCES), value="seed", label="Code from",
                                          info="a seed, the Inversion tab's latest result, or an .npz code")
                        seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                        psi = gr.Slider(-1.0, 2.0, value=0.7, step=0.05, label="Truncation psi")
                        class_idx = gr.Number(value=0, precision=0, label="Class (conditional models only)")
                        code_file = gr.File(label="Code (.npz)", file_types=[".npz"], height=100)
                        if inversion_codes is None:
                            inversion_codes = gr.State(None)
                    method = gr.Radio(list(METHODS), value=METHODS[0], label="Method")
                    target = gr.Textbox(value="a smiling face with curly hair", label="Target text", max_length=1000)
                    with gr.Group(visible=True) as global_box:
                        neutral = gr.Textbox(value="a face", label="Neutral text", max_length=1000)
                        alpha = gr.Slider(-10, 10, value=4.0, step=0.1, label="Alpha (strength)")
                        beta = gr.Slider(0.0, 0.4, value=0.15, step=0.01, label="Beta (disentanglement threshold)",
                                         info="higher = fewer channels move")
                        auto_beta = gr.Checkbox(value=False, label="Choose beta automatically (StyleCLIP GUI rule)")
                        relevance_images = gr.Number(value=16, precision=0, minimum=1, maximum=MAX_RELEVANCE_IMAGES,
                                                     label="Images per channel (relevance table)",
                                                     info="the paper uses 100; unused when the released table fits")
                    with gr.Group(visible=False) as opt_box:
                        with gr.Row():
                            steps = gr.Number(value=40, precision=0, minimum=1, maximum=5000, label="Steps")
                            lr = gr.Number(value=0.1, minimum=0, label="Learning rate")
                            l2_lambda = gr.Number(value=0.008, minimum=0, label="L2 lambda")
                        with gr.Row():
                            id_weights = gr.File(label="Face-recognition weights (optional upload)",
                                                 file_types=[".pth", ".pt"], height=100)
                            id_lambda = gr.Number(value=0.0, minimum=0, maximum=100, label="identity lambda",
                                                  info=f"0 = off; StyleCLIP's notebook uses 0.005. Without an "
                                                       f"upload: ${ENV_ID_WEIGHTS}, else {ARCFACE_CARD.repo_id} "
                                                       "from the Hub (175 MB, once)")
                        schedule = gr.Radio([COARSE_TO_FINE, FULL], value=default_schedule(self.manager.device),
                                            label="Optimisation schedule",
                                            info="coarse-to-fine: the first 90% of the steps on a StyleGAN2's "
                                                 "256 px image (CLIP sees 224 px), the rest at full resolution; "
                                                 "the default on a CPU. full: every step at full resolution")
                    with gr.Group(visible=False) as mapper_box:
                        mapper_file = gr.File(label="Mapper checkpoint (.pt)", file_types=[".pt"], height=100)
                        mapper_hub = gr.Textbox(value="", label="Or from the Hub", placeholder="hf://owner/repo/mapper.pt")
                        mapper_strength = gr.Slider(-3, 3, value=1.0, step=0.1, label="Mapper strength")
                    strip = gr.Textbox(value="-4, -2, 0, 2, 4", label="Strip values (alpha or mapper strength)")
                    clip_model = gr.Textbox(value="", label="CLIP model",
                                            placeholder=f"default: ${ENV_CLIP} or {DEFAULT_CLIP}")
                    with gr.Row():
                        go = gr.Button("Edit", variant="primary")
                        stop_button = gr.Button("Stop", variant="stop")
                with gr.Column(scale=2):
                    with gr.Row():
                        before = gr.Image(label="Before", type="numpy", format="png", interactive=False)
                        after = gr.Image(label="After", type="numpy", format="png", interactive=False)
                    gallery = gr.Gallery(label="Strip", columns=MAX_STRIP, height="auto", format="png")
                    with gr.Row():
                        result_file = gr.File(label="Edited image (PNG)")
                        code_out = gr.File(label="Edited code (.npz)")
                    status = gr.Markdown()

            method.change(self.show_method, [method], [global_box, opt_box, mapper_box], api_visibility="private")
            go.click(run, [model, source, seed, psi, class_idx, code_file, inversion_codes, method, target, neutral, alpha,
                           beta, auto_beta, strip, relevance_images, steps, lr, l2_lambda, mapper_file, mapper_hub,
                           mapper_strength, clip_model, id_weights, id_lambda, schedule],
                     [before, after, gallery, result_file, code_out, status], api_name="styleclip")
            stop_button.click(self.stop_run, None, [status], api_name="styleclip_stop", queue=False)
