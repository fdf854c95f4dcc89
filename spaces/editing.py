"""Semantic editing tab: InterFaceGAN directions, GANSpace components, StyleSpace channels and local
(part) editing, on a code from a seed or an .npz (e.g. downloaded from the inversion tab).

Endpoints: /edit (apply the chosen edit: before, after, PNG, code), /ganspace_pca (components and the
variance they explain), /find_channels (S channels acting on a marked region), /part_map (parts of
the image), /known_channel (a published FFHQ channel's layer and channel).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Optional

import gradio as gr
import numpy as np
import torch

from spaces.common import (
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
from spaces.handoff import EDITING_CODE_INPUTS, offer
from stylecore.codes.latents import load_latents
from stylecore.codes.stylespace import style_layers
from stylecore.edit import resources
from stylecore.edit.edits import EditSpec, GANSpaceEdit, InterFaceGANEdit, PartEdit, StyleSpaceEdit
from stylecore.edit.interfacegan import parse_layers
from stylecore.edit.local_edit import PALETTE
from stylecore.edit.stylespace_channels import FFHQ_CHANNELS
from stylecore.engine import assets
from stylecore.engine.manager import LoadedModel, ModelManager

METHODS = ("GANSpace", "InterFaceGAN", "StyleSpace", "Local (parts)")
UPLOAD = "upload"
MAX_PCA_SAMPLES = 1_000_000
MAX_PART_SAMPLES = 2000


def _region(editor: Any, box: Any) -> np.ndarray:
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
        raise ValueError("mark the region with the brush, or give a box as 'x0, y0, x1, y1' in fractions "
                         "of the image (e.g. 0.3, 0.6, 0.7, 0.9)") from None
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise ValueError("the box must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
    size = 256
    mask = np.zeros((size, size), dtype=bool)
    top, left = int(y0 * size), int(x0 * size)
    mask[top:max(int(y1 * size), top + 1), left:max(int(x1 * size), left + 1)] = True
    return mask


def _interfacegan_spec(boundary: str, boundary_file: Any, strength: Any, layers: str, conditions: Optional[list],
                       condition_files: Any) -> InterFaceGANEdit:
    listed = boundary not in (UPLOAD, "", None)
    return InterFaceGANEdit(
        strength=required_number(strength, "strength", -50, 50), layers=layers,
        direction_asset=boundary if listed else "", direction_file="" if listed else (file_path(boundary_file) or ""),
        keep_assets=tuple(conditions or ()),
        keep_files=tuple(p for p in (file_path(f) for f in (condition_files or [])) if p))


def _pca_settings(model: LoadedModel, samples: Any, components: Any, seed: Any) -> tuple[int, int, int]:
    """(samples, components, seed) of a PCA, checked."""
    return (required_int(samples, "PCA samples", 100, MAX_PCA_SAMPLES),
            required_int(components, "PCA components", 1, model.G.w_dim), required_int(seed, "PCA seed", 0, 2 ** 31))


def _ganspace_spec(model: LoadedModel, samples: Any, components: Any, seed: Any, component: Any, strength: Any,
                   layers: str) -> GANSpaceEdit:
    samples, components, seed = _pca_settings(model, samples, components, seed)
    return GANSpaceEdit(component=required_int(component, "component", 0, components - 1),
                        strength=required_number(strength, "strength", -100, 100), layers=layers,
                        samples=samples, components=components, seed=seed)


def _stylespace_spec(model: LoadedModel, layer: Any, channel: Any, strength: Any) -> StyleSpaceEdit:
    layout = style_layers(model.G)
    index = required_int(layer, "style layer", 0, len(layout) - 1)
    return StyleSpaceEdit(index, required_int(channel, "channel", 0, layout[index].channels - 1),
                          required_number(strength, "strength", -100, 100))


def _part_settings(block: Any, k: Any, samples: Any) -> tuple[str, int, int]:
    """(feature block, parts, samples) of a part model, checked."""
    return (str(block or ""), required_int(k, "parts", 2, 20),
            required_int(samples, "part samples", 1, MAX_PART_SAMPLES))


def _part_spec(reference: torch.Tensor, block: Any, k: Any, samples: Any, part: Any, strength: Any, threshold: Any,
               confine: bool) -> PartEdit:
    block, k, samples = _part_settings(block, k, samples)
    return PartEdit(part=required_int(part, "part", 0, k - 1), reference=reference,
                    strength=required_number(strength, "strength", -2, 2),
                    threshold=required_number(threshold, "threshold", 0, 1), confine=bool(confine),
                    block=block, k=k, samples=samples)


def _reference(model: LoadedModel, seed: Any, file: Any, psi: Any, class_idx: Any) -> torch.Tensor:
    """The code a part edit takes the part from: an uploaded .npz, else a seed."""
    path = file_path(file)
    if path:
        G = model.G
        return load_latents(path, num_ws=G.num_ws, w_dim=G.w_dim)[:1].to(model.device)
    return code_from(model, "seed", seed, psi, class_idx, None)


def _search_layers(model: LoadedModel, text: str) -> Optional[list[int]]:
    """None for 'all' (toRGB excluded), else the style layers named."""
    if str(text or "all").strip().lower() == "all":
        return None
    return parse_layers(text, len(style_layers(model.G)), "style layers")


class EditingTab:
    """The Editing tab: the layout, and one handler per event (each runs one stylecore.edit call)."""

    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager
        self.default = default_model(manager, "editing")

    def _model(self, model_id: str, progress: gr.Progress) -> LoadedModel:
        return self.manager.get(model_id or self.default, progress=progress_callback(progress))

    def apply_edit(self, model_id: str = "", source: str = "seed", seed: float = 0, truncation_psi: float = 0.7,
                   class_idx: float = 0, code_file: Any = None, method: str = "GANSpace",
                   boundary: str = UPLOAD, boundary_file: Any = None, ifg_strength: float = 3.0,
                   ifg_layers: str = "all", conditions: Optional[list] = None, condition_files: Any = None,
                   pca_samples: float = 20000, pca_components: float = 32, pca_seed: float = 0,
                   component: float = 0, pca_strength: float = 3.0, pca_layers: str = "all",
                   s_layer: float = 6, s_channel: float = 0, s_strength: float = 10.0,
                   part_block: str = "", part_k: float = 8, part_samples: float = 64, reference_seed: float = 1,
                   reference_file: Any = None, part: float = 0, part_strength: float = 1.0,
                   part_threshold: float = 0.4, confine: bool = True, progress: gr.Progress = gr.Progress()):
        """Apply one edit; returns the image before, after, the result as PNG, the edited code (.npz), a status line."""
        model = self._model(model_id, progress)
        ws = code_from(model, source, seed, truncation_psi, class_idx, code_file)
        spec: EditSpec
        if method == "InterFaceGAN":
            spec = _interfacegan_spec(boundary, boundary_file, ifg_strength, ifg_layers, conditions, condition_files)
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
        return result.before, result.after, str(png), str(code), edit_status(model, result)

    def pca_table(self, model_id: str = "", pca_samples: float = 20000, pca_components: float = 32,
                  pca_seed: float = 0, progress: gr.Progress = gr.Progress()):
        """Compute (or load) the PCA; returns the variance table and a status line."""
        model = self._model(model_id, progress)
        settings = _pca_settings(model, pca_samples, pca_components, pca_seed)
        pca = resources.pca_table(self.manager, model, *settings, progress_callback(progress))
        total = float(np.sum(pca.explained)) * 100
        return (pca.variance_table(),
                f"{pca.n_components} components of W from {pca.n_samples} samples explain {total:.1f}% "
                "of its variance.")

    def find_channels(self, model_id: str = "", source: str = "seed", seed: float = 0, truncation_psi: float = 0.7,
                      class_idx: float = 0, code_file: Any = None, region: Any = None,
                      box: str = "0.3, 0.3, 0.7, 0.7", how: str = "gradient", top: float = 20,
                      search_layers: str = "all", progress: gr.Progress = gr.Progress()):
        """S channels that act most, and most only, on the marked region.

        Returns rows [layer, channel, module, share, effect] and the best channel's layer and channel."""
        model = self._model(model_id, progress)
        ws = code_from(model, source, seed, truncation_psi, class_idx, code_file)
        found = resources.region_channels(self.manager, model, ws, _region(region, box), str(how),
                                          required_int(top, "number of channels", 1, 200),
                                          _search_layers(model, search_layers), progress_callback(progress))
        rows = [[c.layer, c.channel, c.name, round(c.share, 3), round(c.effect, 3)] for c in found]
        return rows, gr.update(value=found[0].layer), gr.update(value=found[0].channel)

    def show_parts(self, model_id: str = "", source: str = "seed", seed: float = 0, truncation_psi: float = 0.7,
                   class_idx: float = 0, code_file: Any = None, part_block: str = "", part_k: float = 8,
                   part_samples: float = 64, progress: gr.Progress = gr.Progress()):
        """Parts of the image (k-means of generator features): the overlay and each part's share of the image."""
        model = self._model(model_id, progress)
        ws = code_from(model, source, seed, truncation_psi, class_idx, code_file)
        settings = _part_settings(part_block, part_k, part_samples)
        overlay, shares = resources.parts_of(self.manager, model, ws, *settings, progress_callback(progress))
        legend = [[i, "#%02x%02x%02x" % tuple(PALETTE[i]), round(float(s) * 100, 1)] for i, s in enumerate(shares)]
        return overlay, legend

    @staticmethod
    def known_channel(code: str):
        """The layer and channel of a published FFHQ channel ('layer_channel')."""
        if not code:
            return gr.update(), gr.update()
        layer, channel = (int(v) for v in str(code).split("_"))
        return gr.update(value=layer), gr.update(value=channel)

    @staticmethod
    def mark_image(before: Any):
        """Put the current 'before' image into the region editor to paint on."""
        if before is None:
            raise gr.Error("apply an edit first (or generate the image) to have something to mark")
        return {"background": before, "layers": [], "composite": before}

    @staticmethod
    def show_method(method: str):
        return [gr.update(visible=(method == m)) for m in METHODS]

    def _on_gpu(self, handler, seconds):
        """An event handler that downloads first, then runs on the GPU, and shows bad input as a message."""
        return on_gpu(self.manager, self.default, seconds=seconds)(user_errors(handler))

    def layout(self) -> None:
        """Lay out the tab in the current gr.Blocks and wire its events."""
        apply_edit = self._on_gpu(self.apply_edit, lambda a: 60 + request_number(a, "pca_samples", 20000) / 1000)
        pca_table = self._on_gpu(self.pca_table, lambda a: 30 + request_number(a, "pca_samples", 20000) / 1000)
        find_channels = self._on_gpu(self.find_channels, lambda a: 60)
        show_parts = self._on_gpu(self.show_parts, lambda a: 60)
        with gr.Tab("Editing", id="editing") as tab:
            offline_banner(self.manager)
            with gr.Row():
                with gr.Column(scale=1):
                    model = model_picker(self.manager, self.default, "editing_refresh_models")
                    with gr.Group():
                        source = gr.Radio(["seed", "file"], value="seed", label="Code from",
                                          info="a seed, or an .npz code (W or W+ under 'w', e.g. from the inversion tab)")
                        seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                        psi = gr.Slider(-1.0, 2.0, value=0.7, step=0.05, label="Truncation psi")
                        class_idx = gr.Number(value=0, precision=0, label="Class (conditional models only)")
                        code_file = gr.File(label="Code (.npz)", file_types=[".npz"], height=100)
                        if isinstance(tab.parent, gr.Tabs):  # the app: other tabs may switch to this one
                            offer(EDITING_CODE_INPUTS, (source, code_file, tab.parent))
                    method = gr.Radio(list(METHODS), value=METHODS[0], label="Edit with")
                    with gr.Group(visible=True) as ganspace_box:
                        gr.Markdown("**GANSpace**: principal components of W, computed once per model and cached.")
                        with gr.Row():
                            pca_samples = gr.Number(value=20000, precision=0, minimum=100, label="PCA samples")
                            pca_components = gr.Number(value=32, precision=0, minimum=1, label="Components")
                            pca_seed = gr.Number(value=0, precision=0, minimum=0, label="PCA seed")
                        component = gr.Number(value=0, precision=0, minimum=0, label="Component")
                        pca_strength = gr.Slider(-10, 10, value=3.0, step=0.1, label="Strength (σ)")
                        pca_layers = gr.Textbox(value="all", label="W+ rows",
                                                info="'all' = edit in W; e.g. 0-3 pose/shape, 4-7 features, 8- colour")
                        pca_go = gr.Button("Compute PCA and show variance", size="sm")
                        pca_variance = gr.Dataframe(headers=["component", "% variance", "cumulative %"],
                                                    label="Variance explained", interactive=False)
                        pca_status = gr.Markdown()
                    with gr.Group(visible=False) as ifg_box:
                        gr.Markdown("**InterFaceGAN**: linear directions in W. The listed boundaries are for "
                                    "StyleGAN2 FFHQ 1024; upload .npy boundaries or e4e's .pt directions for others.")
                        listed = [(a.title, a.id) for a in assets.EDITING_ASSETS]
                        boundary = gr.Dropdown(listed + [("Uploaded file", UPLOAD)], value=UPLOAD, label="Direction")
                        boundary_file = gr.File(label="Direction file (.npy / .pt)", file_types=[".npy", ".pt", ".pth"],
                                                height=100)
                        ifg_strength = gr.Slider(-5, 5, value=3.0, step=0.1, label="Strength")
                        ifg_layers = gr.Textbox(value="all", label="W+ rows", info="'all' = edit in W; e.g. 0-7")
                        conditions = gr.CheckboxGroup([(a.title, a.id) for a in assets.EDITING_ASSETS],
                                                      label="Keep unchanged (conditional editing)")
                        condition_files = gr.File(label="More attributes to keep (.npy / .pt)", file_count="multiple",
                                                  file_types=[".npy", ".pt", ".pth"], height=100)
                    with gr.Group(visible=False) as s_box:
                        gr.Markdown("**StyleSpace**: one channel of S (layer_channel), in standard deviations.")
                        known = gr.Dropdown([(f"{c.code}: {c.label}", c.code) for c in FFHQ_CHANNELS],
                                            value=None, label="Published channels (StyleGAN2 FFHQ 1024 only)")
                        with gr.Row():
                            s_layer = gr.Number(value=6, precision=0, minimum=0, label="Style layer")
                            s_channel = gr.Number(value=0, precision=0, minimum=0, label="Channel")
                        s_strength = gr.Slider(-30, 30, value=10.0, step=0.5, label="Strength (σ)")
                        with gr.Accordion("Find channels for a region", open=False):
                            mark = gr.Button("Paint on the current image", size="sm")
                            region = gr.ImageEditor(label="Region (paint over it)", type="numpy", height=320,
                                                    sources=(), transforms=(), layers=False)
                            box = gr.Textbox(value="0.3, 0.3, 0.7, 0.7", label="Or a box: x0, y0, x1, y1 (fractions)")
                            how = gr.Radio(["gradient", "perturbation"], value="gradient", label="How",
                                           info="gradient: fast estimate; perturbation: renders every channel")
                            with gr.Row():
                                top = gr.Number(value=20, precision=0, minimum=1, label="Channels to list")
                                search_layers = gr.Textbox(value="all", label="Style layers to search",
                                                           info="'all' (toRGB excluded) or e.g. 6-12")
                            find = gr.Button("Find channels", size="sm")
                            found = gr.Dataframe(headers=["layer", "channel", "module", "share in region", "effect"],
                                                 label="Channels for the region", interactive=False)
                    with gr.Group(visible=False) as part_box:
                        gr.Markdown("**Local editing** (Editing in Style): parts from k-means of generator features; "
                                    "the chosen part's style channels come from the reference.")
                        with gr.Row():
                            part_block = gr.Textbox(value="", label="Feature block", info="e.g. b32; empty = default")
                            part_k = gr.Number(value=8, precision=0, minimum=2, maximum=20, label="Parts (k)")
                            part_samples = gr.Number(value=64, precision=0, minimum=1, label="Samples")
                        parts_go = gr.Button("Show parts", size="sm")
                        part_image = gr.Image(label="Part map", type="numpy", format="png", height=256, interactive=False)
                        legend = gr.Dataframe(headers=["part", "colour", "% of image"], label="Parts", interactive=False)
                        with gr.Row():
                            part = gr.Number(value=0, precision=0, minimum=0, label="Part")
                            reference_seed = gr.Number(value=1, precision=0, minimum=0, label="Reference seed")
                        reference_file = gr.File(label="Or a reference code (.npz)", file_types=[".npz"], height=100)
                        part_strength = gr.Slider(0, 1, value=1.0, step=0.05, label="Strength")
                        part_threshold = gr.Slider(0, 1, value=0.4, step=0.05, label="Channel threshold",
                                                   info="a channel belongs to the part when this share of it lies there")
                        confine = gr.Checkbox(value=True, label="Confine the change to the part")
                    go = gr.Button("Apply edit", variant="primary")
                with gr.Column(scale=2):
                    with gr.Row():
                        before = gr.Image(label="Before", type="numpy", format="png", interactive=False)
                        after = gr.Image(label="After", type="numpy", format="png", interactive=False)
                    with gr.Row():
                        result_file = gr.File(label="Edited image (PNG)")
                        code_out = gr.File(label="Edited code (.npz)")
                    status = gr.Markdown()

            code_inputs = [model, source, seed, psi, class_idx, code_file]
            method.change(self.show_method, [method], [ganspace_box, ifg_box, s_box, part_box], api_visibility="private")
            go.click(apply_edit,
                     code_inputs + [method, boundary, boundary_file, ifg_strength, ifg_layers, conditions, condition_files,
                                    pca_samples, pca_components, pca_seed, component, pca_strength, pca_layers,
                                    s_layer, s_channel, s_strength, part_block, part_k, part_samples, reference_seed,
                                    reference_file, part, part_strength, part_threshold, confine],
                     [before, after, result_file, code_out, status], api_name="edit")
            pca_go.click(pca_table, [model, pca_samples, pca_components, pca_seed], [pca_variance, pca_status],
                         api_name="ganspace_pca")
            find.click(find_channels, code_inputs + [region, box, how, top, search_layers], [found, s_layer, s_channel],
                       api_name="find_channels")
            parts_go.click(show_parts, code_inputs + [part_block, part_k, part_samples], [part_image, legend],
                           api_name="part_map")
            known.change(self.known_channel, [known], [s_layer, s_channel], api_name="known_channel")
            mark.click(self.mark_image, [before], [region], api_visibility="private")
