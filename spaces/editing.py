"""Semantic editing tab: GANSpace directions, InterFaceGAN attributes, StyleSpace channels and local
(part) editing, on a code from a seed or an .npz (e.g. sent from the inversion tab).

Two levels: each method shows what a visitor needs (what to change, how much) in plain words, and
keeps its research settings in a closed "Advanced" accordion. Only what fits the chosen model is
offered (the listed InterFaceGAN directions and published StyleSpace channels were found on StyleGAN2
FFHQ 1024), and number fields are checked here, so a range error names the field by its label.

Endpoints: /edit (apply the chosen edit: before, after, PNG, code, status), /ganspace_pca (the
directions and the variance they explain), /find_channels (S channels acting on a marked region),
/part_map (parts of the image), /known_channel (a published FFHQ channel's layer and channel).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import gradio as gr
import numpy as np
import torch

from spaces.common import (
    SEED_INFO,
    code_from,
    default_model,
    edit_status,
    file_path,
    listen,
    model_picker,
    offline_banner,
    on_gpu,
    progress_callback,
    region_mask,
    request_number,
    required_int,
    required_number,
    required_seed,
    shown,
    tuned_for,
    user_errors,
)
from spaces.handoff import EDITING_CODE_INPUTS, offer
from stylecore.codes.latents import load_latents
from stylecore.codes.stylespace import style_layers
from stylecore.edit import resources
from stylecore.edit.edits import EditSpec, GANSpaceEdit, InterFaceGANEdit, PartEdit, StyleSpaceEdit
from stylecore.edit.interfacegan import LISTED_FOR, parse_layers
from stylecore.edit.local_edit import PALETTE, PALETTE_NAMES
from stylecore.edit.stylespace_channels import FFHQ_CHANNELS
from stylecore.engine import assets
from stylecore.engine.manager import LoadedModel, ModelManager

# value (what the API takes) -> what the radio shows
METHODS = {"GANSpace": "Directions of most change (GANSpace)", "InterFaceGAN": "A named attribute (InterFaceGAN)",
           "StyleSpace": "One style channel (StyleSpace)", "Local (parts)": "A part of another image (local)"}
UPLOAD = "upload"
LISTED_DEFAULT = "interfacegan-smiling"  # the attribute a fitting model opens on
MAX_PCA_SAMPLES = 1_000_000
MAX_PART_SAMPLES = 2000
MAX_PARTS = len(PALETTE)
LAYERS_INFO = ("which of the generator's layers take the change: 'all', or rows such as 0-3 (pose, shape), "
               "4-7 (features), 8- (colour, fine detail) on an 18-layer face model")
AMOUNT_INFO = "how far to go: 0 leaves the image as it is, negative goes the opposite way"

# Labels of the number fields, which are also the names their range errors give.
DIRECTION, SAMPLES, DIRECTIONS, SAMPLING_SEED = "Direction", "Images sampled", "Directions to compute", "Sampling seed"
LAYER, CHANNEL, TOP = "Style layer", "Channel", "Channels to list"
PART, REFERENCE_SEED = "Part", "Take the part from seed"
PARTS, PART_SAMPLES = "Number of parts", "Images to learn parts from"


def _config_f(model_id: str) -> bool:
    """Whether the model is StyleGAN2 FFHQ 1024 config-f, the network the listed InterFaceGAN directions
    and the published StyleSpace channels were found on."""
    return model_id in LISTED_FOR


def _interfacegan_spec(model: LoadedModel, boundary: str, boundary_file: Any, strength: Any, layers: str,
                       conditions: Optional[list], condition_files: Any) -> InterFaceGANEdit:
    listed = boundary not in (UPLOAD, "", None)
    if (listed or conditions) and not _config_f(model.card.id):
        raise ValueError(f"the listed attributes were learned for StyleGAN2 FFHQ 1024 and do not fit "
                         f"{model.card.title}: upload a direction file made for this model")
    return InterFaceGANEdit(
        strength=required_number(strength, "Amount", -50, 50), layers=layers,
        direction_asset=boundary if listed else "", direction_file="" if listed else (file_path(boundary_file) or ""),
        keep_assets=tuple(conditions or ()),
        keep_files=tuple(p for p in (file_path(f) for f in (condition_files or [])) if p))


def _pca_settings(model: LoadedModel, samples: Any, components: Any, seed: Any) -> tuple[int, int, int]:
    """(samples, components, seed) of a PCA, checked."""
    return (required_int(samples, SAMPLES, 100, MAX_PCA_SAMPLES),
            required_int(components, DIRECTIONS, 1, model.G.w_dim), required_seed(seed, SAMPLING_SEED))


def _ganspace_spec(model: LoadedModel, samples: Any, components: Any, seed: Any, component: Any, strength: Any,
                   layers: str) -> GANSpaceEdit:
    samples, components, seed = _pca_settings(model, samples, components, seed)
    return GANSpaceEdit(component=required_int(component, DIRECTION, 0, components - 1),
                        strength=required_number(strength, "Amount", -100, 100), layers=layers,
                        samples=samples, components=components, seed=seed)


def _stylespace_spec(model: LoadedModel, layer: Any, channel: Any, strength: Any) -> StyleSpaceEdit:
    layout = style_layers(model.G)
    index = required_int(layer, LAYER, 0, len(layout) - 1)
    return StyleSpaceEdit(index, required_int(channel, CHANNEL, 0, layout[index].channels - 1),
                          required_number(strength, "Amount", -100, 100))


def _part_settings(block: Any, k: Any, samples: Any) -> tuple[str, int, int]:
    """(feature block, parts, samples) of a part model, checked."""
    return (str(block or ""), required_int(k, PARTS, 2, MAX_PARTS),
            required_int(samples, PART_SAMPLES, 1, MAX_PART_SAMPLES))


def _part_spec(reference: torch.Tensor, block: Any, k: Any, samples: Any, part: Any, strength: Any,
               selectivity: Any, confine: bool) -> PartEdit:
    block, k, samples = _part_settings(block, k, samples)
    return PartEdit(part=required_int(part, PART, 0, k - 1), reference=reference,
                    strength=required_number(strength, "Amount", -2, 2),
                    selectivity=required_number(selectivity, "Channel selectivity", 0, 1), confine=bool(confine),
                    block=block, k=k, samples=samples)


def _reference(model: LoadedModel, seed: Any, file: Any, psi: Any, class_idx: Any) -> torch.Tensor:
    """The code a part edit takes the part from: an uploaded .npz, else a seed."""
    path = file_path(file)
    if path:
        G = model.G
        return load_latents(path, num_ws=G.num_ws, w_dim=G.w_dim)[:1].to(model.device)
    return code_from(model, "seed", required_seed(seed, REFERENCE_SEED), psi, class_idx, None)


def _search_layers(model: LoadedModel, text: str) -> Optional[list[int]]:
    """None for 'all' (toRGB excluded), else the style layers named."""
    if str(text or "all").strip().lower() == "all":
        return None
    return parse_layers(text, len(style_layers(model.G)), "style layers")


def _legend_row(part: int, share: float) -> list:
    """A part's legend row: its number, a swatch of its colour with the colour's name, its share in %."""
    hex_code = "#%02x%02x%02x" % tuple(PALETTE[part])
    swatch = f'<span class="part-swatch" style="background:{hex_code}"></span>{PALETTE_NAMES[part]}'
    return [part, swatch, round(float(share) * 100, 1)]


# What each section builder hands back: the components the events joining sections need. The
# `edit_inputs` of each method are in the order of apply_edit's parameters (the /edit API).


@dataclass
class CodeControls:
    """Where the code to edit comes from."""

    source: gr.Radio
    seed: gr.Number
    psi: gr.Slider
    class_idx: gr.Number
    code_file: gr.File

    def inputs(self) -> list:
        return [self.source, self.seed, self.psi, self.class_idx, self.code_file]


@dataclass
class GanSpaceControls:
    """GANSpace: a principal direction of W, and the PCA it comes from."""

    box: gr.Group
    samples: gr.Number
    components: gr.Number
    seed: gr.Number
    component: gr.Number
    strength: gr.Slider
    layers: gr.Textbox

    def edit_inputs(self) -> list:
        return [self.samples, self.components, self.seed, self.component, self.strength, self.layers]


@dataclass
class InterFaceGanControls:
    """InterFaceGAN: a listed or uploaded direction, and the attributes to keep."""

    box: gr.Group
    boundary: gr.Dropdown
    boundary_file: gr.File
    strength: gr.Slider
    layers: gr.Textbox
    conditions: gr.CheckboxGroup
    condition_files: gr.File

    def edit_inputs(self) -> list:
        return [self.boundary, self.boundary_file, self.strength, self.layers, self.conditions, self.condition_files]


@dataclass
class StyleSpaceControls:
    """StyleSpace: one S channel, and the region search that can pick it."""

    box: gr.Group
    known: gr.Dropdown
    layer: gr.Number
    channel: gr.Number
    strength: gr.Slider
    mark: gr.Button
    region: gr.ImageEditor
    find_status: gr.Markdown

    def edit_inputs(self) -> list:
        return [self.layer, self.channel, self.strength]


@dataclass
class PartControls:
    """Local editing: the part, the image it comes from, and the part model's settings."""

    box: gr.Group
    block: gr.Textbox
    k: gr.Number
    samples: gr.Number
    reference_seed: gr.Number
    reference_file: gr.File
    part: gr.Number
    strength: gr.Slider
    selectivity: gr.Slider
    confine: gr.Checkbox

    def edit_inputs(self) -> list:
        return [self.block, self.k, self.samples, self.reference_seed, self.reference_file, self.part, self.strength,
                self.selectivity, self.confine]


@dataclass
class ResultControls:
    """The images before and after, the downloads and the status line."""

    before: gr.Image
    after: gr.Image
    result_file: gr.File
    code_out: gr.File
    status: gr.Markdown


class EditingTab:
    """The Editing tab: the layout, and one handler per event (each runs one stylecore.edit call)."""

    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager
        self.default = default_model(manager, "editing")

    def _model(self, model_id: str, progress: gr.Progress) -> LoadedModel:
        return self.manager.get(model_id or self.default, progress=progress_callback(progress))

    def _drawing(self, model_id: str, source: str, code_file: Any, request: Optional[gr.Request],
                 progress: gr.Progress) -> tuple[LoadedModel, str]:
        """The model to draw the code with (a PTI / HyperStyle code's tuned weights, in its session) and a note."""
        return tuned_for(self.manager, self._model(model_id, progress), source, code_file, None, request)

    # --- events reachable through the API ----------------------------------------------------------------

    def apply_edit(self, model_id: str = "", source: str = "seed", seed: float = 0, truncation_psi: float = 0.7,
                   class_idx: float = 0, code_file: Any = None, method: str = "GANSpace",
                   boundary: str = UPLOAD, boundary_file: Any = None, ifg_strength: float = 3.0,
                   ifg_layers: str = "all", conditions: Optional[list] = None, condition_files: Any = None,
                   pca_samples: float = 20000, pca_components: float = 32, pca_seed: float = 0,
                   component: float = 0, pca_strength: float = 3.0, pca_layers: str = "all",
                   s_layer: float = 6, s_channel: float = 0, s_strength: float = 10.0,
                   part_block: str = "", part_k: float = 8, part_samples: float = 64, reference_seed: float = 1,
                   reference_file: Any = None, part: float = 0, part_strength: float = 1.0,
                   part_threshold: float = 0.5, confine: bool = True, request: gr.Request = None,
                   event: gr.EventData = None, progress: gr.Progress = gr.Progress()):
        """Apply one edit; returns the image before, after, the result as PNG, the edited code (.npz), a status
        line. `part_threshold` is the channel selectivity of a part edit (stylecore.edit.edits.PartEdit)."""
        model, drawn = self._drawing(model_id, source, code_file, request, progress)
        ws = code_from(model, source, seed, truncation_psi, class_idx, code_file)
        spec: EditSpec
        if method == "InterFaceGAN":
            spec = _interfacegan_spec(model, boundary, boundary_file, ifg_strength, ifg_layers, conditions,
                                      condition_files)
        elif method == "GANSpace":
            spec = _ganspace_spec(model, pca_samples, pca_components, pca_seed, component, pca_strength, pca_layers)
        elif method == "StyleSpace":
            spec = _stylespace_spec(model, s_layer, s_channel, s_strength)
        elif method == "Local (parts)":
            reference = _reference(model, reference_seed, reference_file, truncation_psi, class_idx)
            spec = _part_spec(reference, part_block, part_k, part_samples, part, part_strength,
                              part_threshold, confine)
        else:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        result = resources.edit(self.manager, model, ws, spec, progress_callback(progress))
        png, code = result.save(Path(tempfile.mkdtemp(prefix="stylecore-edit-")), f"{model.card.id}-edited")
        return (shown(result.before, event), shown(result.after, event), str(png), str(code),
                edit_status(model, result, drawn=drawn))

    def pca_table(self, model_id: str = "", pca_samples: float = 20000, pca_components: float = 32,
                  pca_seed: float = 0, progress: gr.Progress = gr.Progress()):
        """Compute (or load) the PCA; returns the variance table and a status line."""
        model = self._model(model_id, progress)
        settings = _pca_settings(model, pca_samples, pca_components, pca_seed)
        pca = resources.pca_table(self.manager, model, *settings, progress_callback(progress))
        total = float(np.sum(pca.explained)) * 100
        return (pca.variance_table(),
                f"These {pca.n_components} directions (from {pca.n_samples} sampled codes) explain {total:.1f}% "
                "of how the model's codes vary; direction 0 the most.")

    def find_channels(self, model_id: str = "", source: str = "seed", seed: float = 0, truncation_psi: float = 0.7,
                      class_idx: float = 0, code_file: Any = None, region: Any = None,
                      box: str = "0.3, 0.3, 0.7, 0.7", how: str = "gradient", top: float = 20,
                      search_layers: str = "all", request: gr.Request = None,
                      progress: gr.Progress = gr.Progress()):
        """S channels that act most, and most only, on the marked region.

        Returns rows [layer, channel, module, share, effect], the best channel's layer and channel, and a
        status line."""
        model, _ = self._drawing(model_id, source, code_file, request, progress)
        ws = code_from(model, source, seed, truncation_psi, class_idx, code_file)
        found = resources.region_channels(self.manager, model, ws, region_mask(region, box), str(how),
                                          required_int(top, TOP, 1, 200),
                                          _search_layers(model, search_layers), progress_callback(progress))
        rows = [[c.layer, c.channel, c.name, round(c.share, 3), round(c.effect, 3)] for c in found]
        best = found[0]
        return (rows, gr.update(value=best.layer), gr.update(value=best.channel),
                f"The best channel, {best.layer}_{best.channel}, is now the Style layer and Channel above: "
                "press Apply edit to try it.")

    def show_parts(self, model_id: str = "", source: str = "seed", seed: float = 0, truncation_psi: float = 0.7,
                   class_idx: float = 0, code_file: Any = None, part_block: str = "", part_k: float = 8,
                   part_samples: float = 64, part: float = 0, request: gr.Request = None,
                   event: gr.EventData = None, progress: gr.Progress = gr.Progress()):
        """Parts of the image (k-means of generator features): the overlay, each part's colour and share of
        the image, the part to edit (`part` when the image shows it, else its largest part) and a status line."""
        model, _ = self._drawing(model_id, source, code_file, request, progress)
        ws = code_from(model, source, seed, truncation_psi, class_idx, code_file)
        block, k, samples = _part_settings(part_block, part_k, part_samples)
        overlay, shares = resources.parts_of(self.manager, model, ws, block, k, samples, progress_callback(progress))
        chosen = int(part) if part is not None and 0 <= part < k and shares[int(part)] > 0 else int(np.argmax(shares))
        shown_parts = ", ".join(str(i) for i in np.flatnonzero(shares))
        return (shown(overlay, event), [_legend_row(i, s) for i, s in enumerate(shares)], gr.update(value=chosen),
                f"This image shows parts {shown_parts} of {k}. Part {chosen} ({PALETTE_NAMES[chosen]}) is chosen: "
                "press Apply edit to give it the other image's version.")

    @staticmethod
    def known_channel(code: str):
        """The layer and channel of a published FFHQ channel ('layer_channel'), and a status line."""
        if not code:
            return gr.update(), gr.update(), gr.update()
        layer, channel = (int(v) for v in str(code).split("_"))
        label = next((c.label for c in FFHQ_CHANNELS if c.code == code), code)
        return (gr.update(value=layer), gr.update(value=channel),
                f"Style layer {layer}, channel {channel}: {label}. Press Apply edit; try both signs of the amount.")

    # --- events of the page only --------------------------------------------------------------------------

    @staticmethod
    def mark_image(before: Any):
        """Put the current 'before' image into the region editor to paint on."""
        if before is None:
            raise gr.Error("apply an edit first to have an image to mark")
        return ({"background": before, "layers": [], "composite": before},
                "Paint over the region, then press Find channels.")

    @staticmethod
    def show_method(method: str) -> list:
        """Only the chosen method's controls."""
        return [gr.update(visible=(method == m)) for m in METHODS]

    @staticmethod
    def show_source(source: str) -> tuple:
        """The seed for 'seed', the file box for 'file'."""
        return gr.update(visible=source != "file"), gr.update(visible=source == "file")

    @staticmethod
    def can_apply(method: str, source: str, code_file: Any, boundary: str, boundary_file: Any):
        """Apply edit is enabled only when every file the edit needs is there."""
        missing_code = source == "file" and file_path(code_file) is None
        missing_direction = method == "InterFaceGAN" and boundary == UPLOAD and file_path(boundary_file) is None
        return gr.update(interactive=not (missing_code or missing_direction))

    def model_controls(self, model_id: str) -> tuple:
        """What depends on the model: the class (conditional models only), the listed attributes and
        attributes to keep, and the published channels (StyleGAN2 FFHQ 1024 only)."""
        card = self.manager.zoo.get(model_id) if model_id in self.manager.zoo else None
        conditional = card is None or card.c_dim > 0 or card.architecture == "auto"
        fits = _config_f(model_id)
        listed = [(a.title.removeprefix("InterFaceGAN: "), a.id) for a in assets.EDITING_ASSETS] if fits else []
        info = ("learned for StyleGAN2 FFHQ 1024 (downloaded once), or a direction file you upload" if fits else
                "the listed attributes (smile, age, ...) were learned for StyleGAN2 FFHQ 1024 and do not fit this "
                "model: upload a direction made for it")
        return (gr.update(visible=conditional),
                gr.update(choices=listed + [("a direction file I upload", UPLOAD)],
                          value=LISTED_DEFAULT if fits else UPLOAD, info=info),
                gr.update(choices=listed, value=[], visible=fits), gr.update(visible=fits, value=None))

    # --- layout ---------------------------------------------------------------------------------------------

    def _on_gpu(self, handler: Callable, seconds: Callable[[dict], float]) -> Callable:
        """An event handler that downloads first, then runs on the GPU, and shows bad input as a message."""
        return on_gpu(self.manager, self.default, seconds=seconds)(user_errors(handler))

    def _code_section(self, tab: gr.Tab, class_props: dict) -> CodeControls:
        with gr.Group():
            source = gr.Radio([("a seed", "seed"), ("a code file (.npz)", "file")], value="seed", label="Start from",
                              info="a generated image, or a code saved by the Inversion tab (its 'Send to Editing')")
            seed = gr.Number(value=0, precision=0, label="Seed", info=SEED_INFO)
            code_file = gr.File(label="Code (.npz)", file_types=[".npz"], height=120, visible=False)
            class_idx = gr.Number(value=0, precision=0, label="Class",
                                  info="which class a conditional model draws (0 to the number of classes - 1)",
                                  **class_props)
            if isinstance(tab.parent, gr.Tabs):  # the app: other tabs may switch to this one
                offer(EDITING_CODE_INPUTS, (source, code_file, tab.parent))
        with gr.Accordion("Advanced: the starting image", open=False):
            psi = gr.Slider(-1.0, 2.0, value=0.7, step=0.05, label="Variety",
                            info="truncation psi: 1 = the model's full variety; lower = more typical, cleaner "
                                 "images; 0 = the average image")
        source.change(self.show_source, [source], [seed, code_file], api_visibility="private")
        return CodeControls(source, seed, psi, class_idx, code_file)

    def _ganspace_section(self, model: gr.Dropdown) -> GanSpaceControls:
        with gr.Group(visible=True) as box:
            gr.Markdown("Moves the image along one of the directions in which the model's images differ most, "
                        "found from the model alone (once per model).")
            component = gr.Number(value=0, precision=0, label=DIRECTION,
                                  info="0 changes the most, higher numbers less (up to 'Directions to compute' - 1)")
            strength = gr.Slider(-10, 10, value=3.0, step=0.1, label="Amount", info=AMOUNT_INFO)
            with gr.Accordion("Advanced: GANSpace", open=False):
                with gr.Row():
                    samples = gr.Number(value=20000, precision=0, label=SAMPLES,
                                        info=f"codes the directions are found from: 100 to {MAX_PCA_SAMPLES}")
                    components = gr.Number(value=32, precision=0, label=DIRECTIONS,
                                           info="principal components: 1 to the code size (512 on most models)")
                    seed = gr.Number(value=0, precision=0, label=SAMPLING_SEED, info="which codes are sampled")
                layers = gr.Textbox(value="all", label="Layers to change", info=LAYERS_INFO)
                go = gr.Button("Compute the directions and show their variance", size="sm")
                variance = gr.Dataframe(headers=["direction", "% of variance", "cumulative %"],
                                        label="Variance explained", interactive=False)
                status = gr.Markdown()
        pca_table = self._on_gpu(self.pca_table, lambda a: 30 + request_number(a, "pca_samples", 20000) / 1000)
        listen(go.click, pca_table, [model, samples, components, seed], [variance, status], status,
               api_name="ganspace_pca")
        return GanSpaceControls(box, samples, components, seed, component, strength, layers)

    def _interfacegan_section(self, boundary_props: dict, conditions_props: dict) -> InterFaceGanControls:
        with gr.Group(visible=False) as box:
            gr.Markdown("Changes one named attribute (smile, age, glasses, ...) along a direction learned from "
                        "labelled images.")
            boundary = gr.Dropdown(label="Attribute", **boundary_props)
            boundary_file = gr.File(label="Direction file (.npy or .pt)", file_types=[".npy", ".pt", ".pth"],
                                    height=120, visible=boundary.value == UPLOAD)
            strength = gr.Slider(-5, 5, value=3.0, step=0.1, label="Amount",
                                 info="how far to go: 0 leaves the image as it is, negative gives less of it")
            with gr.Accordion("Advanced: InterFaceGAN", open=False):
                layers = gr.Textbox(value="all", label="Layers to change", info=LAYERS_INFO)
                conditions = gr.CheckboxGroup(label="Keep these unchanged",
                                              info="the change is made at right angles to their directions",
                                              **conditions_props)
                condition_files = gr.File(label="More attributes to keep unchanged (.npy / .pt)",
                                          file_count="multiple", file_types=[".npy", ".pt", ".pth"], height=120)
        boundary.change(lambda b: gr.update(visible=b == UPLOAD), [boundary], [boundary_file],
                        api_visibility="private")
        return InterFaceGanControls(box, boundary, boundary_file, strength, layers, conditions, condition_files)

    def _stylespace_section(self, model: gr.Dropdown, code: CodeControls, known_props: dict) -> StyleSpaceControls:
        with gr.Group(visible=False) as box:
            gr.Markdown("Turns one style channel of the generator up or down: often a small, local change "
                        "(hair, gaze, lipstick on a face model).")
            known = gr.Dropdown([(f"{c.label} ({c.code})", c.code) for c in FFHQ_CHANNELS], label="Published channel",
                                info="channels the StyleSpace paper names for this model", **known_props)
            with gr.Row():
                layer = gr.Number(value=6, precision=0, label=LAYER,
                                  info="low numbers: coarse shape; high: fine detail and colour")
                channel = gr.Number(value=0, precision=0, label=CHANNEL, info="0 to the layer's width - 1")
            strength = gr.Slider(-30, 30, value=10.0, step=0.5, label="Amount",
                                 info=AMOUNT_INFO + " (in the channel's standard deviations)")
            with gr.Accordion("Advanced: find channels for a region", open=False):
                mark = gr.Button("Paint on the current image", size="sm", interactive=False)
                region = gr.ImageEditor(label="Region (paint over it)", type="numpy", height=320,
                                        sources=(), transforms=(), layers=False)
                box_text = gr.Textbox(value="0.3, 0.3, 0.7, 0.7", label="Or a box: x0, y0, x1, y1",
                                      info="fractions of the width and height, from the top left")
                how = gr.Radio([("fast estimate (gradient)", "gradient"),
                                ("exact, slower (perturbation)", "perturbation")],
                               value="gradient", label="How to measure")
                with gr.Row():
                    top = gr.Number(value=20, precision=0, label=TOP, info="1 to 200")
                    search_layers = gr.Textbox(value="all", label="Style layers to search",
                                               info="'all' (toRGB excluded) or e.g. 6-12")
                find = gr.Button("Find channels", size="sm")
                found = gr.Dataframe(headers=["layer", "channel", "module", "share in region", "effect"],
                                     label="Channels for the region", interactive=False)
                find_status = gr.Markdown()
        find_channels = self._on_gpu(self.find_channels, lambda a: 60)
        listen(find.click, find_channels, [model, *code.inputs(), region, box_text, how, top, search_layers],
               [found, layer, channel, find_status], find_status, api_name="find_channels")
        return StyleSpaceControls(box, known, layer, channel, strength, mark, region, find_status)

    def _parts_section(self, model: gr.Dropdown, code: CodeControls) -> PartControls:
        with gr.Group(visible=False) as box:
            gr.Markdown("Gives this image another image's version of one part (hair, eyes, background ... as "
                        "the model divides the image): show the parts, pick one, choose the other image.")
            go = gr.Button("Show the parts", size="sm")
            part_map = gr.Image(label="Part map", type="numpy", format="png", interactive=False)
            legend = gr.Dataframe(headers=["part", "colour", "% of image"], datatype=["number", "html", "number"],
                                  label="Parts", interactive=False, max_height=800, elem_classes=["part-legend"])
            status = gr.Markdown()
            with gr.Row():
                part = gr.Number(value=0, precision=0, label=PART, info="a part's number from the list above")
                reference_seed = gr.Number(value=1, precision=0, label=REFERENCE_SEED,
                                           info="the other image: its version of the part is copied in")
            strength = gr.Slider(0, 1, value=1.0, step=0.05, label="Amount",
                                 info="how much of the other image's part to take: 1 = all of it, 0 = none")
            with gr.Accordion("Advanced: parts", open=False):
                with gr.Row():
                    k = gr.Number(value=8, precision=0, label=PARTS, info=f"2 to {MAX_PARTS}")
                    samples = gr.Number(value=64, precision=0, label=PART_SAMPLES,
                                        info=f"1 to {MAX_PART_SAMPLES}; more: steadier parts, slower the first time")
                block = gr.Textbox(value="", label="Feature resolution",
                                   info="the generator block whose features are grouped into parts: empty = b32 "
                                        "(32x32) where the model has it; b16 coarser, b64 finer")
                selectivity = gr.Slider(0, 1, value=0.5, step=0.05, label="Channel selectivity",
                                        info="which style channels carry the part: those at least this concentrated "
                                             "in it, relative to the most concentrated one (lower: more channels, "
                                             "a bigger change)")
                confine = gr.Checkbox(value=True, label="Change only the part",
                                      info="every pixel outside the part stays as it was")
                reference_file = gr.File(label="Or take the part from a code file (.npz)", file_types=[".npz"],
                                         height=120)
        show_parts = self._on_gpu(self.show_parts, lambda a: 60)
        listen(go.click, show_parts, [model, *code.inputs(), block, k, samples, part], [part_map, legend, part, status],
               status, api_name="part_map")
        return PartControls(box, block, k, samples, reference_seed, reference_file, part, strength, selectivity,
                            confine)

    @staticmethod
    def _results_section() -> ResultControls:
        with gr.Row():
            before = gr.Image(label="Before", type="numpy", format="png", interactive=False)
            after = gr.Image(label="After", type="numpy", format="png", interactive=False)
        status = gr.Markdown()
        with gr.Row():
            result_file = gr.File(label="Edited image (PNG)")
            code_out = gr.File(label="Edited code (.npz)")
        return ResultControls(before, after, result_file, code_out, status)

    def layout(self) -> None:
        """Lay out the tab in the current gr.Blocks and wire its events."""
        with gr.Tab("Editing", id="editing") as tab:
            offline_banner(self.manager)
            with gr.Row():
                with gr.Column(scale=1):
                    model = model_picker(self.manager, self.default, "editing_refresh_models")
                    class_props, boundary_props, conditions_props, known_props = (
                        {k: v for k, v in update.items() if k != "__type__"}  # open in step with the model
                        for update in self.model_controls(self.default))
                    code = self._code_section(tab, class_props)
                    method = gr.Radio([(label, value) for value, label in METHODS.items()], value="GANSpace",
                                      label="Edit with")
                    ganspace = self._ganspace_section(model)
                    ifg = self._interfacegan_section(boundary_props, conditions_props)
                    stylespace = self._stylespace_section(model, code, known_props)
                    parts = self._parts_section(model, code)
                    go = gr.Button("Apply edit", variant="primary")
                with gr.Column(scale=2):
                    results = self._results_section()
        self._wire(model, code, method, ganspace, ifg, stylespace, parts, go, results)

    def _wire(self, model: gr.Dropdown, code: CodeControls, method: gr.Radio, ganspace: GanSpaceControls,
              ifg: InterFaceGanControls, stylespace: StyleSpaceControls, parts: PartControls, go: gr.Button,
              results: ResultControls) -> None:
        """The events that join the sections: the edit itself and what follows the model, method and files."""
        model.change(self.model_controls, [model], [code.class_idx, ifg.boundary, ifg.conditions, stylespace.known],
                     api_visibility="private")
        method.change(self.show_method, [method], [ganspace.box, ifg.box, stylespace.box, parts.box],
                      api_visibility="private")
        needs = [method, code.source, code.code_file, ifg.boundary, ifg.boundary_file]
        gr.on([c.change for c in needs], self.can_apply, needs, [go], api_visibility="private")
        apply_edit = self._on_gpu(self.apply_edit, lambda a: 60 + request_number(a, "pca_samples", 20000) / 1000)
        outputs = [results.before, results.after, results.result_file, results.code_out, results.status]
        listen(go.click, apply_edit, [model, *code.inputs(), method, *ifg.edit_inputs(), *ganspace.edit_inputs(),
                                      *stylespace.edit_inputs(), *parts.edit_inputs()], outputs, results.status,
               api_name="edit")
        listen(stylespace.known.change, user_errors(self.known_channel), [stylespace.known],
               [stylespace.layer, stylespace.channel, results.status], results.status, api_name="known_channel")
        results.before.change(lambda image: gr.update(interactive=image is not None), [results.before],
                              [stylespace.mark], api_visibility="private")
        listen(stylespace.mark.click, self.mark_image, [results.before], [stylespace.region, stylespace.find_status],
               stylespace.find_status, api_visibility="private")
