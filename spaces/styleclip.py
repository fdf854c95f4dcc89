"""StyleCLIP tab: edit a face (or anything) by text, on a seed, the latest inversion result or an
uploaded .npz code, with StyleCLIP's three methods: global directions, latent optimisation and
released latent mappers.

Endpoint /styleclip: before, after, a strip over several strengths, the PNG, the edited code, a
status line. /styleclip_stop stops a running optimisation or relevance computation of the session.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

import gradio as gr
import numpy as np
import torch

from spaces.handoff import INVERSION_CODES, offered
from spaces.common import (
    SessionStopFlags,
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
from stylecore.perception.clip import DEFAULT_CLIP, ENV_CLIP, ClipModel, clean_prompt, load_clip
from stylecore.engine import assets
from stylecore.edit import styleclip as sc
from stylecore.engine.manager import LoadedModel, ModelManager
from stylecore.codes.generate import to_uint8
from stylecore.perception.identity import (
    ARCFACE_CARD,
    ENV_ID_WEIGHTS,
    IdentityNet,
    identity_embedding,
    identity_weights_path,
    load_identity,
)
from stylecore.codes.latents import load_latents, save_latents
from stylecore.codes.stylespace import save_styles

METHODS = ("Global direction", "Latent optimization", "Latent mapper")
SOURCES = ("seed", "inversion", "file")
MAX_STRIP = 9
MAX_RELEVANCE_IMAGES = 200


def _strip_values(text: Any) -> list[float]:
    """'-5, 0, 5' -> [-5.0, 0.0, 5.0] (at most MAX_STRIP values)."""
    parts = [p for p in str(text or "").replace(";", ",").split(",") if p.strip()]
    values = [required_number(p, "strip value", -100, 100) for p in parts]
    if len(values) > MAX_STRIP:
        raise ValueError(f"the strip takes at most {MAX_STRIP} values, got {len(values)}")
    return values


def _inversion_code(files: Any) -> Optional[str]:
    """The first code file the inversion tab produced (its list holds one .npz per method)."""
    if isinstance(files, (list, tuple)):
        files = files[0] if files else None
    return file_path(files)


def build(manager: ModelManager) -> None:
    """Lay out the tab in the current gr.Blocks and wire its events."""
    choices = model_choices(manager)
    default = default_model(manager, "styleclip")
    stops = SessionStopFlags()
    tables: dict[tuple, sc.ChannelRelevance] = {}
    tables_lock = threading.Lock()
    id_nets: dict[tuple, IdentityNet] = {}
    id_lock = threading.Lock()

    def identity_for(path: str, device: torch.device) -> IdentityNet:
        try:
            stat = os.stat(path)
            key: tuple = (os.path.realpath(path), stat.st_mtime_ns, stat.st_size, str(device))
        except OSError:
            return load_identity(path, device)  # raises the file-naming error
        with id_lock:
            if key not in id_nets:
                id_nets.clear()  # keep one network (about 170 MB)
                id_nets[key] = load_identity(path, device)
            return id_nets[key]

    def clip_for(model: LoadedModel, name: str, progress: gr.Progress) -> ClipModel:
        def report(done: int, total: Optional[int], message: str) -> None:
            progress(done / total if total else 0.0, desc=f"CLIP: {message}")

        return load_clip(str(name or "").strip() or None, device=model.device, progress=report)

    def table_for(model: LoadedModel, clip: ClipModel, n_images: int, progress: gr.Progress,
                  stop: threading.Event) -> sc.ChannelRelevance:
        key = (assets.model_cache_key(model), clip.name, n_images)
        with tables_lock:
            if key in tables:
                return tables[key]
        table = sc.released_relevance(model.G, model.card.id, key[0], clip.name)
        if table is None:
            table = sc.cached_relevance(model.G, key[0], clip, n_images=n_images,
                                        progress=progress_callback(progress), should_stop=stop.is_set,
                                        force_fp32=model.force_fp32)
        with tables_lock:
            tables[key] = table
        return table

    def styleclip_seconds(a: dict) -> float:
        if a.get("method") == "Latent optimization":
            return 30 + 0.5 * request_number(a, "steps", 40)
        return 60 + 2 * request_number(a, "relevance_images", 16)

    def styleclip_assets(a: dict) -> None:
        """CLIP, downloaded and loaded before any GPU time (the mapper needs none)."""
        if a.get("method") != "Latent mapper":
            load_clip(str(a.get("clip_model") or "").strip() or None, device=manager.device)

    @on_gpu(manager, default, seconds=styleclip_seconds, prepare=styleclip_assets)
    @user_errors
    def run(model_id: str = default, source: str = "seed", seed: float = 0, truncation_psi: float = 0.7,
            class_idx: float = 0, code_file: Any = None, inversion_codes: Any = None,
            method: str = METHODS[0], target: str = "a smiling face with curly hair", neutral: str = "a face",
            alpha: float = 4.0, beta: float = 0.15, auto_beta: bool = False, strip: str = "-4, -2, 0, 2, 4",
            relevance_images: float = 16, steps: float = 40, lr: float = 0.1, l2_lambda: float = 0.008,
            mapper_file: Any = None, mapper_hub: str = "", mapper_strength: float = 1.0,
            clip_model: str = "", id_weights: Any = None, id_lambda: float = 0.0,
            request: gr.Request = None, progress: gr.Progress = gr.Progress()):
        """Edit the code by text; returns before, after, the strip, the PNG, the edited code (.npz), a status line."""
        stop = stops.get(request)
        stop.clear()
        if method in ("Global direction", "Latent optimization"):  # before the model, CLIP and a relevance table
            clean_prompt(target, "target text")
            if method == "Global direction":
                clean_prompt(neutral, "neutral text")
        model = manager.get(model_id or default, progress=progress_callback(progress))
        G = model.G
        if source == "inversion":
            path = _inversion_code(inversion_codes)
            if path is None:
                raise ValueError("no inversion result yet: run the Inversion tab first, or use a seed or a file")
            ws = load_latents(path, num_ws=G.num_ws, w_dim=G.w_dim)[:1].to(model.device)
        else:
            ws = code_from(model, "file" if source == "file" else "seed", seed, truncation_psi, class_idx, code_file)
        kwargs = {"noise_mode": "const", "force_fp32": model.force_fp32}
        values = _strip_values(strip)
        with torch.no_grad():
            before = G.synthesis(ws, **kwargs)
        started = time.perf_counter()
        styles = new_ws = None
        strip_imgs: list[np.ndarray] = []
        try:
            if method == "Global direction":
                clip = clip_for(model, clip_model, progress)
                table = table_for(model, clip, required_int(relevance_images, "images per channel", 1, MAX_RELEVANCE_IMAGES),
                                  progress, stop)
                started = time.perf_counter()
                edit = sc.global_direction(G, clip, table, target, neutral,
                                           None if auto_beta else required_number(beta, "beta", 0, 1))
                a = required_number(alpha, "alpha", -50, 50)
                styles, after = sc.global_edit(G, ws, edit, a, **kwargs)
                what = (f"Global direction '{target.strip()[:80]}' from '{neutral.strip()[:80]}': α {a:g}, "
                        f"β {edit.beta:g}, **{edit.channels} channels moved** ({table.source})")
                if values:
                    strip_imgs = list(to_uint8(sc.alpha_strip(G, ws, edit, values, **kwargs)))
            elif method == "Latent optimization":
                lam = required_number(id_lambda if id_lambda is not None else 0.0, "identity lambda", 0, 100)
                identity = None
                if lam > 0:
                    def report(done: int, total: Optional[int], message: str) -> None:
                        progress(done / total if total else 0.0, desc=f"identity network: {message}")

                    weights = identity_weights_path(file_path(id_weights), progress=report)
                    net = identity_for(str(weights), model.device)
                    identity = lambda imgs: identity_embedding(net, imgs)
                clip = clip_for(model, clip_model, progress)
                config = sc.OptimizeConfig(steps=required_int(steps, "steps", 1, 5000), lr=required_number(lr, "learning rate", 0, 10),
                                           l2_lambda=required_number(l2_lambda, "L2 lambda", 0, 100), id_lambda=lam)
                started = time.perf_counter()
                result = sc.optimize_latent(G, clip, ws, target, config, identity=identity,
                                            progress=progress_callback(progress), should_stop=stop.is_set, **kwargs)
                new_ws = result.ws
                id_note = f"identity loss λ {lam:g}" if identity is not None else "identity loss off"
                what = (f"Latent optimization towards '{target.strip()[:80]}': {config.steps} steps, CLIP loss "
                        f"{result.clip_losses[0]:.4f} → {result.clip_losses[-1]:.4f} ({id_note})")
            elif method == "Latent mapper":
                spec = file_path(mapper_file) or str(mapper_hub or "").strip()
                mapper = sc.load_mapper(sc.mapper_source(spec), device=model.device)
                strength = required_number(mapper_strength, "mapper strength", -10, 10)
                started = time.perf_counter()
                new_ws = sc.apply_mapper(mapper, ws, strength)
                what = f"Latent mapper '{mapper.description or Path(spec).name}' × {strength:g}"
                if model.card.id not in sc.RELEASED_FOR:
                    what += " (released mappers were trained for StyleGAN2 FFHQ 1024 config-f)"
                if values:
                    strip_ws = torch.cat([sc.apply_mapper(mapper, ws, v) for v in values])
                    with torch.no_grad():
                        strip_imgs = list(to_uint8(G.synthesis(strip_ws, **kwargs)))
            else:
                raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        except sc.Cancelled as exc:
            raise gr.Error(f"Stopped: {exc}") from None
        if new_ws is not None:
            with torch.no_grad():
                after = G.synthesis(new_ws, **kwargs)
        seconds = time.perf_counter() - started
        after_img, before_img = to_uint8(after)[0], to_uint8(before)[0]
        folder = Path(tempfile.mkdtemp(prefix="stylecore-styleclip-"))
        code_path = folder / f"{model.card.id}-styleclip.npz"
        if styles is not None:
            save_styles(code_path, ws, styles)
        else:
            save_latents(code_path, new_ws, method=method)
        change = float(np.abs(after_img.astype(np.int16) - before_img.astype(np.int16)).mean())
        status = f"**{what}.** Edit took {seconds * 1000:.0f} ms; mean pixel change {change:.2f} (of 255)."
        if model.untrained:
            status += " The demo network is untrained: edits change the image but carry no meaning."
        if styles is not None:
            status += " The code file holds the edited S code (s00, s01, ...) and the unedited W+ code 'w'."
        gallery = [(img, f"{v:g}") for img, v in zip(strip_imgs, values)]
        return (before_img, after_img, gallery, save_png(after_img, f"{model.card.id}-styleclip"), str(code_path),
                status)

    def stop_run(request: gr.Request):
        stops.get(request).set()
        return "Stopping after the current step…"

    def show_method(method: str):
        return [gr.update(visible=(method == m)) for m in METHODS]


    inversion_codes = offered(INVERSION_CODES)
    with gr.Tab("StyleCLIP", id="styleclip"):
        offline_banner(manager)
        gr.Markdown("Edit by text with StyleCLIP (Patashnik et al. 2021). Global directions need a channel "
                    "relevance table per model: the released one for StyleGAN2 FFHQ 1024, otherwise computed "
                    "once (can take long on big models; it resumes if stopped) and cached.")
        with gr.Row():
            with gr.Column(scale=1):
                model = model_picker(manager, default, "styleclip_refresh_models", choices)
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

        method.change(show_method, [method], [global_box, opt_box, mapper_box], api_visibility="private")
        go.click(run, [model, source, seed, psi, class_idx, code_file, inversion_codes, method, target, neutral, alpha,
                       beta, auto_beta, strip, relevance_images, steps, lr, l2_lambda, mapper_file, mapper_hub,
                       mapper_strength, clip_model, id_weights, id_lambda],
                 [before, after, gallery, result_file, code_out, status], api_name="styleclip")
        stop_button.click(stop_run, None, [status], api_name="styleclip_stop", queue=False)
