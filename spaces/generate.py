"""Generation tab: seeds to images. The simple view asks for a model, seeds and how varied the
images may be (plus translate/rotate for StyleGAN3 models and a class for conditional ones); the
closed Advanced section holds truncation cutoff and noise; a second section mixes styles.
Endpoints: /generate and /style_mix."""
from __future__ import annotations

import re
from typing import Any, Optional

import gradio as gr

from spaces.common import (
    SEED_INFO,
    count_seeds,
    default_model,
    listen,
    model_choices,
    model_picker,
    offline_banner,
    on_gpu,
    parse_number,
    progress_callback,
    save_png,
    shown,
    user_errors,
)
from stylecore.engine.manager import LoadedModel, ModelManager
from stylecore.codes.generate import (
    GenerationSettings,
    generate_images,
    image_grid,
    style_mix,
)
from stylecore.codes.latents import parse_seeds

MAX_SEEDS = 64
NOISE_CHOICES = [("fixed: the same fine detail on every run", "const"),
                 ("random: fine detail (hair, skin) changes on every run", "random"),
                 ("none: no fine detail", "none")]
VARIETY_INFO = ("truncation psi: 1 = the model's full variety; lower = more typical, cleaner images; "
                "0 = the average image")


def _layers(text: Optional[str], num_ws: int) -> list[int]:
    """'0-3', '4-7', '8-' (open to the last ws) -> ws indices, checked against the model."""
    text = (text or "0-6").strip()
    text = re.sub(r"(\d+)\s*-\s*$", lambda m: f"{m.group(1)}-{num_ws - 1}", text)
    try:
        return parse_seeds(text, max_count=num_ws)
    except ValueError:
        raise ValueError(f"cannot read the layers {text!r}: use layer numbers from 0 to {num_ws - 1}, "
                         "e.g. '0-3', '4-7' or '8-'") from None


def _settings(model: LoadedModel, psi: Any, cutoff: Any, noise_mode: Any, class_idx: Any, translate_x: Any,
              translate_y: Any, rotate: Any) -> GenerationSettings:
    """The request's settings, ranges checked here so that a message names the field."""
    G = model.G
    return GenerationSettings(
        truncation_psi=parse_number(psi, "truncation psi") if psi is not None else 1.0,
        truncation_cutoff=parse_number(cutoff, "truncation cutoff", integer=True, lo=0, hi=G.num_ws) or None,
        noise_mode=str(noise_mode or "const"),
        class_idx=parse_number(class_idx, "class", integer=True, lo=0, hi=G.c_dim - 1) if G.c_dim else None,
        translate=(parse_number(translate_x, "translate x") or 0.0, parse_number(translate_y, "translate y") or 0.0),
        rotate_degrees=parse_number(rotate, "rotation") or 0.0,
    )


def _model_status(model: LoadedModel) -> str:
    G = model.G
    kind = "untrained demo network (random weights)" if model.untrained else model.info.get("source", "")
    return (f"**{model.card.title}**: {G.img_resolution}x{G.img_resolution}, {G.num_ws} style layers (ws), "
            f"{'conditional with ' + str(G.c_dim) + ' classes' if G.c_dim else 'unconditional'}; "
            f"{kind}; on {model.device.type}.")


class GenerateTab:
    """The Generate tab: its layout and its two events, /generate and /style_mix."""

    def __init__(self, manager: ModelManager):
        self.manager = manager
        self.default = default_model(manager, "generate")

    def generate(self, model_id: str = "", seeds: str = "0", truncation_psi: float = 0.7,
                 truncation_cutoff: Optional[float] = 0, noise_mode: str = "const", class_idx: float = 0,
                 translate_x: float = 0.0, translate_y: float = 0.0, rotate: float = 0.0,
                 event: gr.EventData = None, progress: gr.Progress = gr.Progress()):
        """Generate one image per seed; returns the images, a PNG grid of them and a status line."""
        seed_list = parse_seeds(seeds if seeds is not None else "0", max_count=MAX_SEEDS)
        model = self.manager.get(model_id or self.default, progress=progress_callback(progress))
        settings = _settings(model, truncation_psi, truncation_cutoff, noise_mode, class_idx, translate_x,
                             translate_y, rotate)
        images = generate_images(model.G, seed_list, settings, force_fp32=model.force_fp32,
                                 progress=progress_callback(progress))
        gallery = [(shown(img, event), f"seed {s}") for img, s in zip(images, seed_list)]
        grid = save_png(image_grid(images), f"{model.card.id}-seeds")
        return gallery, grid, _model_status(model)

    def mix(self, model_id: str = "", row_seeds: str = "85, 100, 75", col_seeds: str = "55, 821, 1789",
            col_layers: str = "0-6", truncation_psi: float = 0.7, noise_mode: str = "const",
            class_idx: float = 0, event: gr.EventData = None, progress: gr.Progress = gr.Progress()):
        """Style mixing matrix: each cell takes the listed layers from its column seed."""
        rows = parse_seeds(row_seeds, max_count=8)
        cols = parse_seeds(col_seeds, max_count=8)
        model = self.manager.get(model_id or self.default, progress=progress_callback(progress))
        layers = _layers(col_layers, model.G.num_ws)
        settings = _settings(model, truncation_psi, None, noise_mode, class_idx, 0, 0, 0)
        grid = style_mix(model.G, rows, cols, layers, settings, force_fp32=model.force_fp32,
                         progress=progress_callback(progress))
        return shown(grid, event), save_png(grid, f"{model.card.id}-style-mix"), _model_status(model)

    def model_kind(self, model_id: str) -> tuple[bool, bool]:
        """(StyleGAN3, conditional) for the chosen model: which controls it uses. A model whose
        architecture is decided when its file is read may be either."""
        card = self.manager.zoo.get(model_id) if model_id in self.manager.zoo else None
        unknown = card is None or card.architecture == "auto"
        return unknown or card.architecture == "stylegan3", unknown or card.c_dim > 0

    def model_controls(self, model_id: str) -> tuple:
        """Translate/rotate shown only for StyleGAN3 models (and reset to 0 when hidden, so a hidden
        value never fails a StyleGAN2 request), the class only for conditional ones."""
        stylegan3, conditional = self.model_kind(model_id)
        reset = {} if stylegan3 else {"value": 0}
        return gr.update(visible=stylegan3), *[gr.update(**reset)] * 3, gr.update(visible=conditional)

    def layout(self) -> None:
        """Lay out the tab in the current gr.Blocks and wire its events."""
        manager, default = self.manager, self.default
        generate = on_gpu(manager, default, seconds=lambda a: 15 + 2 * count_seeds(a.get("seeds"), MAX_SEEDS))(
            user_errors(self.generate))
        mix = on_gpu(manager, default, seconds=lambda a: 15 + count_seeds(a.get("row_seeds"), 8) *
                     count_seeds(a.get("col_seeds"), 8))(user_errors(self.mix))
        stylegan3, conditional = self.model_kind(default)

        with gr.Tab("Generate", id="generate"):
            offline_banner(manager)
            with gr.Row():
                with gr.Column(scale=1):
                    model = model_picker(manager, default, "refresh_models", model_choices(manager))
                    seeds = gr.Textbox(value="0", label="Seeds",
                                       info=f"one image per seed: {SEED_INFO}. Several: 0-7, 42")
                    psi = gr.Slider(-1.0, 2.0, value=0.7, step=0.05, label="Variety", info=VARIETY_INFO)
                    with gr.Group(visible=stylegan3) as sg3:
                        tx = gr.Slider(-1.0, 1.0, value=0.0, step=0.01, label="Move sideways (StyleGAN3)",
                                       info="in image widths: the picture slides, the content stays sharp")
                        ty = gr.Slider(-1.0, 1.0, value=0.0, step=0.01, label="Move up/down (StyleGAN3)",
                                       info="in image heights")
                        rot = gr.Slider(-180.0, 180.0, value=0.0, step=1.0, label="Rotate (StyleGAN3, degrees)")
                    go = gr.Button("Generate", variant="primary")
                    with gr.Accordion("Advanced", open=False):
                        cutoff = gr.Number(value=0, precision=0, label="Truncation cutoff",
                                           info="apply Variety only to the first N style layers (coarse: pose, "
                                                "face shape); 0 = all of them; at most the model's layer count")
                        noise = gr.Radio(NOISE_CHOICES, value="const", label="Noise mode",
                                         info="the per-pixel noise that draws fine detail")
                        class_idx = gr.Number(value=0, precision=0, label="Class", visible=conditional,
                                              info="conditional models: which class to draw, from 0 to classes - 1")
                with gr.Column(scale=2):
                    gallery = gr.Gallery(label="Images", columns=4, height="auto", format="png",
                                         object_fit="contain", fit_columns=True, elem_id="generate-gallery")
                    grid_file = gr.File(label="All images as one PNG (real size)")
                    status = gr.Markdown(elem_id="generate-status")
            with gr.Accordion("Style mixing", open=False):
                gr.Markdown("Each cell keeps its row seed's image but takes some style layers from its column "
                            "seed: coarse layers carry pose and face shape, fine ones colours and texture.")
                with gr.Row():
                    rows = gr.Textbox(value="85, 100, 75", label="Row seeds (take the other layers)")
                    cols = gr.Textbox(value="55, 821, 1789", label="Column seeds")
                    layers = gr.Textbox(value="0-6", label="Layers taken from the columns",
                                        info="e.g. 0-3 coarse, 4-7 middle, 8- fine (to the last layer)")
                mix_go = gr.Button("Mix styles")
                mix_image = gr.Image(label="Style mixing matrix", type="numpy", format="png", interactive=False,
                                     elem_id="generate-mix")
                mix_file = gr.File(label="Matrix as PNG (real size)")
                mix_status = gr.Markdown(elem_id="generate-mix-status")

            model.change(self.model_controls, [model], [sg3, tx, ty, rot, class_idx], api_visibility="private")
            listen(go.click, generate, [model, seeds, psi, cutoff, noise, class_idx, tx, ty, rot],
                   [gallery, grid_file, status], status, api_name="generate")
            listen(mix_go.click, mix, [model, rows, cols, layers, psi, noise, class_idx],
                   [mix_image, mix_file, mix_status], mix_status, api_name="style_mix")
