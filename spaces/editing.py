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

from spaces.handoff import EDITING_CODE_INPUTS, offer
from spaces.common import (
    code_from,
    default_model,
    file_path,
    model_choices,
    model_picker,
    offline_banner,
    on_gpu,
    progress_callback,
    request_number,
    required_int,
    required_number,
    save_png,
    user_errors,
)
from stylecore.edit import ganspace, interfacegan, local_edit, stylespace_channels
from stylecore.engine import assets
from stylecore.engine.manager import LoadedModel, ModelManager
from stylecore.codes.generate import to_uint8
from stylecore.codes.latents import load_latents, save_latents
from stylecore.codes.stylespace import (
    save_styles,
    style_layers,
    synthesize_from_styles,
    ws_to_styles,
)

METHODS = ("GANSpace", "InterFaceGAN", "StyleSpace", "Local (parts)")
UPLOAD = "upload"
MAX_PCA_SAMPLES = 1_000_000
MAX_PART_SAMPLES = 2000


def _image(img: torch.Tensor) -> np.ndarray:
    return to_uint8(img)[0]


def _hub_progress(progress: gr.Progress):
    def report(done: int, total: Optional[int], message: str) -> None:
        progress(done / total if total else 0.0, desc=message)

    return report


def _direction(choice: str, file: Any, progress: gr.Progress) -> tuple[np.ndarray, str]:
    if choice == UPLOAD or not choice:
        path = file_path(file)
        if path is None:
            raise ValueError("upload a direction file (.npy InterFaceGAN boundary or e4e .pt), or pick a listed one")
        return interfacegan.load_direction(path), Path(path).name
    item = assets.asset(choice)
    return interfacegan.load_direction(assets.fetch_asset(item, progress=_hub_progress(progress))), item.title


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


def build(manager: ModelManager) -> None:
    """Lay out the tab in the current gr.Blocks and wire its events."""
    choices = model_choices(manager)
    default = default_model(manager, "editing")
    std_cache: dict[str, list] = {}

    def load(model_id: str, progress: gr.Progress) -> LoadedModel:
        return manager.get(model_id or default, progress=progress_callback(progress))

    def sigma(model: LoadedModel) -> list:
        key = assets.model_cache_key(model)
        if key not in std_cache:
            std_cache[key] = stylespace_channels.style_std(model.G)
        return std_cache[key]

    def pca_for(model: LoadedModel, samples: Any, components: Any, pca_seed: Any, progress: gr.Progress):
        n = required_int(samples, "PCA samples", 100, MAX_PCA_SAMPLES)
        k = required_int(components, "PCA components", 1, model.G.w_dim)
        return ganspace.cached_pca(model.G, assets.model_cache_key(model), n, k, required_int(pca_seed, "PCA seed", 0, 2 ** 31),
                                   class_idx=0 if model.G.c_dim else None, progress=progress_callback(progress))

    def parts_for(model: LoadedModel, block: Any, k: Any, samples: Any, progress: gr.Progress):
        return local_edit.cached_parts(model.G, assets.model_cache_key(model), k=required_int(k, "parts", 2, 20),
                                       n_samples=required_int(samples, "part samples", 1, MAX_PART_SAMPLES),
                                       block=str(block) if block else None, progress=progress_callback(progress),
                                       force_fp32=model.force_fp32)

    @on_gpu(manager, default, seconds=lambda a: 60 + request_number(a, "pca_samples", 20000) / 1000)
    @user_errors
    def apply_edit(model_id: str = default, source: str = "seed", seed: float = 0, truncation_psi: float = 0.7,
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
        model = load(model_id, progress)
        G = model.G
        ws = code_from(model, source, seed, truncation_psi, class_idx, code_file)
        kwargs = {"noise_mode": "const", "force_fp32": model.force_fp32}
        new_ws = edited_styles = after = None
        with torch.no_grad():
            before = G.synthesis(ws, **kwargs)
        if method == "InterFaceGAN":
            direction, name = _direction(boundary, boundary_file, progress)
            extra = [interfacegan.load_direction(assets.fetch_asset(assets.asset(c), _hub_progress(progress)))
                     for c in (conditions or [])]
            extra += [interfacegan.load_direction(p) for p in (file_path(f) for f in (condition_files or [])) if p]
            if extra:
                direction = interfacegan.project_out(direction, extra)
            layers = interfacegan.parse_layers(ifg_layers, G.num_ws)
            new_ws = interfacegan.apply_direction(ws, direction, required_number(ifg_strength, "strength", -50, 50), layers)
            what = f"InterFaceGAN {name} × {float(ifg_strength):g} on W+ rows {ifg_layers or 'all'}" + (
                f", {len(extra)} attribute(s) projected out" if extra else "")
        elif method == "GANSpace":
            pca = pca_for(model, pca_samples, pca_components, pca_seed, progress)
            c = required_int(component, "component", 0, pca.n_components - 1)
            new_ws = ganspace.apply_component(ws, pca, c, required_number(pca_strength, "strength", -100, 100),
                                              interfacegan.parse_layers(pca_layers, G.num_ws))
            what = (f"GANSpace component {c} ({pca.explained[c] * 100:.2f}% of variance) × {float(pca_strength):g} σ "
                    f"on W+ rows {pca_layers or 'all'}")
        elif method == "StyleSpace":
            styles = ws_to_styles(G, ws)
            layer = required_int(s_layer, "style layer", 0, len(styles) - 1)
            channel = required_int(s_channel, "channel", 0, styles[layer].shape[1] - 1)
            edited_styles = stylespace_channels.edit_channel(styles, layer, channel,
                                                         required_number(s_strength, "strength", -100, 100), sigma(model))
            what = f"StyleSpace channel {layer}_{channel} ({style_layers(G)[layer].name}) × {float(s_strength):g} σ"
        elif method == "Local (parts)":
            parts = parts_for(model, part_block, part_k, part_samples, progress)
            p = required_int(part, "part", 0, parts.k - 1)
            if reference_file is not None and file_path(reference_file):
                ref_ws = load_latents(file_path(reference_file), num_ws=G.num_ws, w_dim=G.w_dim)[:1].to(model.device)
            else:
                ref_ws = code_from(model, "seed", reference_seed, truncation_psi, class_idx, None)
            styles = ws_to_styles(G, ws)
            edited_styles = local_edit.transfer_part(styles, ws_to_styles(G, ref_ws), parts, p,
                                                     required_number(part_strength, "strength", -2, 2),
                                                     required_number(part_threshold, "threshold", 0, 1))
            count = local_edit.part_channel_counts(parts, p, float(part_threshold))
            what = f"part {p} from the reference: {count} style channels"
            if confine:
                mask = local_edit.part_map(G, ws, parts, **kwargs)[0] == p
                if not mask.any():
                    raise ValueError(f"part {p} does not appear in this image: pick another part (see the part map)")
                after = local_edit.render_confined(G, styles, edited_styles, mask, **kwargs)
                what += ", confined to the part"
        else:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")

        if after is None:
            with torch.no_grad():
                after = (G.synthesis(new_ws, **kwargs) if new_ws is not None
                         else synthesize_from_styles(G, edited_styles, ws, **kwargs))
        folder = Path(tempfile.mkdtemp(prefix="stylecore-edit-"))
        code_path = folder / f"{model.card.id}-edited.npz"
        if new_ws is not None:
            save_latents(code_path, new_ws, method=method)
        else:
            save_styles(code_path, ws, edited_styles)
        after_img = _image(after)
        change = float(np.abs(after_img.astype(np.int16) - _image(before).astype(np.int16)).mean())
        status = f"**{what}.** Mean pixel change {change:.2f} (of 255)."
        if model.untrained:
            status += " The demo network is untrained: edits change the image but carry no meaning."
        if new_ws is None:
            status += " The code file holds the S code (s00, s01, ...) and the unedited W+ code 'w'."
        return _image(before), after_img, save_png(after_img, f"{model.card.id}-edited"), str(code_path), status

    @on_gpu(manager, default, seconds=lambda a: 30 + request_number(a, "pca_samples", 20000) / 1000)
    @user_errors
    def pca_table(model_id: str = default, pca_samples: float = 20000, pca_components: float = 32,
                  pca_seed: float = 0, progress: gr.Progress = gr.Progress()):
        """Compute (or load) the PCA; returns the variance table and a status line."""
        model = load(model_id, progress)
        pca = pca_for(model, pca_samples, pca_components, pca_seed, progress)
        total = float(np.sum(pca.explained)) * 100
        return (pca.variance_table(),
                f"{pca.n_components} components of W from {pca.n_samples} samples explain {total:.1f}% "
                "of its variance.")

    @on_gpu(manager, default, seconds=lambda a: 60)
    @user_errors
    def find_channels(model_id: str = default, source: str = "seed", seed: float = 0, truncation_psi: float = 0.7,
                      class_idx: float = 0, code_file: Any = None, region: Any = None,
                      box: str = "0.3, 0.3, 0.7, 0.7", how: str = "gradient", top: float = 20,
                      search_layers: str = "all", progress: gr.Progress = gr.Progress()):
        """S channels that act most, and most only, on the marked region.

        Returns rows [layer, channel, module, share, effect] and the best channel's layer and channel."""
        model = load(model_id, progress)
        ws = code_from(model, source, seed, truncation_psi, class_idx, code_file)
        count = len(style_layers(model.G))
        chosen = (None if str(search_layers or "all").strip().lower() == "all"
                  else interfacegan.parse_layers(search_layers, count, "style layers"))
        found = stylespace_channels.locate_channels(model.G, ws, _region(region, box), method=str(how),
                                                top=required_int(top, "number of channels", 1, 200), layers=chosen,
                                                std=sigma(model),
                                                progress=progress_callback(progress), force_fp32=model.force_fp32)
        rows = [[c.layer, c.channel, c.name, round(c.share, 3), round(c.effect, 3)] for c in found]
        best = found[0]
        return rows, gr.update(value=best.layer), gr.update(value=best.channel)

    @on_gpu(manager, default, seconds=lambda a: 60)
    @user_errors
    def show_parts(model_id: str = default, source: str = "seed", seed: float = 0, truncation_psi: float = 0.7,
                   class_idx: float = 0, code_file: Any = None, part_block: str = "", part_k: float = 8,
                   part_samples: float = 64, progress: gr.Progress = gr.Progress()):
        """Parts of the image (k-means of generator features): the overlay and each part's share of the image."""
        model = load(model_id, progress)
        ws = code_from(model, source, seed, truncation_psi, class_idx, code_file)
        parts = parts_for(model, part_block, part_k, part_samples, progress)
        kwargs = {"noise_mode": "const", "force_fp32": model.force_fp32}
        labels = local_edit.part_map(model.G, ws, parts, **kwargs)[0]
        with torch.no_grad():
            image = _image(model.G.synthesis(ws, **kwargs))
        shares = np.bincount(labels.ravel(), minlength=parts.k) / labels.size
        legend = [[i, "#%02x%02x%02x" % tuple(local_edit.PALETTE[i]), round(float(s) * 100, 1)]
                  for i, s in enumerate(shares)]
        return local_edit.overlay_parts(image, labels), legend

    def known_channel(code: str):
        """The layer and channel of a published FFHQ channel ('layer_channel')."""
        if not code:
            return gr.update(), gr.update()
        layer, channel = (int(v) for v in str(code).split("_"))
        return gr.update(value=layer), gr.update(value=channel)

    def mark_image(before: Any):
        """Put the current 'before' image into the region editor to paint on."""
        if before is None:
            raise gr.Error("apply an edit first (or generate the image) to have something to mark")
        return {"background": before, "layers": [], "composite": before}


    def show_method(method: str):
        return [gr.update(visible=(method == m)) for m in METHODS]

    with gr.Tab("Editing", id="editing") as tab:
        offline_banner(manager)
        with gr.Row():
            with gr.Column(scale=1):
                model = model_picker(manager, default, "editing_refresh_models", choices)
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
                    known = gr.Dropdown([(f"{c.code}: {c.label}", c.code) for c in stylespace_channels.FFHQ_CHANNELS],
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
        method.change(show_method, [method], [ganspace_box, ifg_box, s_box, part_box], api_visibility="private")
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
        known.change(known_channel, [known], [s_layer, s_channel], api_name="known_channel")
        mark.click(mark_image, [before], [region], api_visibility="private")
