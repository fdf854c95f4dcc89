"""Inversion tab: compare GAN inversion methods on one image.

Input: an uploaded or webcam photo (aligned FFHQ-style for face models), an example, or an image
generated from a seed (so the true code is known). The ticked methods run with their budgets;
each gives a reconstruction with LPIPS, PSNR, MSE, time and latent space, a loss curve
(optimisation methods), ReStyle's passes as a strip, and its code as .npz, which can be sent to
the Editing tab (button) and which the StyleCLIP tab reads from the 'Codes' list (its source
'inversion'). Endpoints: /invert (documented below) and /align (the aligned crop only).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import gradio as gr
import numpy as np
import torch

from spaces.handoff import EDITING_CODE_INPUTS, INVERSION_CODES, offer, offered
from spaces.common import (
    SessionStopFlags,
    default_model,
    model_choices,
    model_picker,
    offline_banner,
    on_gpu,
    progress_callback,
    request_number,
    required_int,
    required_number,
    user_errors,
)
from stylecore.perception.align import Prepared, prepare_image, read_image
from stylecore.engine.manager import LoadedModel, ModelManager
from stylecore.codes.generate import GenerationSettings, settings_ws, to_uint8
from stylecore.inversion.compare import (
    MAX_ITERATIONS,
    MAX_STEPS,
    MethodSpec,
    run_methods,
    save_result,
    zoo_encoder,
)
from stylecore.perception.metrics import get_lpips

METHODS = {  # label -> kind
    "W optimisation (official projector)": "w",
    "W+ optimisation (Image2StyleGAN)": "wplus",
    "Encoder (pSp / e4e / ReStyle)": "encoder",
    "Hybrid (encoder + W+ optimisation)": "hybrid",
}
ALIGNMENTS = {"auto (align faces for face models)": "auto", "align face": "align", "centre crop": "crop",
              "resize whole image": "resize"}
DEFAULT_ENCODERS = ("e4e-ffhq", "psp-ffhq")


def _raw_upload(image: gr.Image) -> gr.Image:
    """Make an Image component hand uploads to the function as an undecoded file path, so
    stylecore.perception.align reads them with its size limits and clear messages (Gradio would otherwise
    decode the file first and fail on huge, empty or broken files with a bare 'Error'). Done on the
    instance: a gr.Image subclass would make Gradio write a .pyi stub beside this file."""
    original = image.preprocess

    def preprocess(payload: Any) -> Any:
        if payload is None:
            return None
        if getattr(payload, "path", None) and not str(getattr(payload, "url", "") or "").startswith("data:"):
            return str(payload.path)
        return original(payload)

    image.preprocess = preprocess  # type: ignore[method-assign]
    return image


def _encoder_choices() -> list[str]:
    """Encoder ids from the encoder zoo when it is installed, else the usual ones."""
    try:
        from stylecore.inversion import encoder_cards as encoder_zoo
    except ImportError:
        return list(DEFAULT_ENCODERS)
    for name in ("encoder_ids", "ENCODER_IDS"):
        found = getattr(encoder_zoo, name, None)
        ids = found() if callable(found) else found
        if ids:
            return [str(i) for i in ids]
    cards = getattr(encoder_zoo, "ENCODER_CARDS", None) or getattr(encoder_zoo, "ENCODERS", None)
    if isinstance(cards, dict):
        return [str(k) for k in cards]
    if cards:
        return [str(getattr(c, "id", c)) for c in cards]
    return list(DEFAULT_ENCODERS)


def _example_images() -> list[str]:
    """Example photos written to a temporary folder: scikit-image's astronaut (NASA, public domain)
    when scikit-image is installed."""
    try:
        from skimage import data
    except ImportError:
        return []
    from PIL import Image

    path = Path(tempfile.mkdtemp(prefix="stylecore-examples-")) / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return [str(path)]


def _methods(labels: Any, w_steps: Any, wplus_steps: Any, hybrid_steps: Any, encoder: Any,
             iterations: Any) -> list[MethodSpec]:
    labels = [labels] if isinstance(labels, str) else list(labels or [])
    unknown = [l for l in labels if l not in METHODS and l not in METHODS.values()]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}: choose from {', '.join(METHODS)}")
    if not labels:
        raise ValueError("tick at least one method")
    kinds = [METHODS.get(l, l) for l in labels]
    specs = []
    for kind in dict.fromkeys(kinds):
        steps = {"w": w_steps, "wplus": wplus_steps, "hybrid": hybrid_steps}.get(kind)
        specs.append(MethodSpec(
            kind=kind, steps=required_int(steps, f"{kind} steps", 1, MAX_STEPS) if steps is not None else 0,
            encoder=str(encoder or "").strip() if kind in ("encoder", "hybrid") else "",
            iterations=required_int(iterations, "encoder iterations", 1, MAX_ITERATIONS) if kind in ("encoder", "hybrid")
            else 1))
    return specs


def _check_encoder(encoder: str, G: torch.nn.Module) -> None:
    """Refuse a zoo encoder made for another resolution before downloading it."""
    from stylecore.inversion.encoder_cards import encoder_zoo

    zoo = encoder_zoo()
    if encoder not in zoo:
        if len(encoder) > 1024 or not encoder.endswith((".pt", ".pth")) or not os.path.isfile(encoder):
            raise ValueError(f"unknown encoder {encoder[:60]!r}: choose one of {', '.join(zoo.ids())} "
                             "or give the path of a local .pt checkpoint")
        return  # a local checkpoint: checked once its codes are known
    card = zoo.get(encoder)
    if card.resolution and card.resolution != G.img_resolution:
        raise ValueError(f"encoder {encoder} was trained for a {card.resolution}x{card.resolution} generator; this "
                         f"model is {G.img_resolution}x{G.img_resolution}: choose a matching model or encoder")


def _source_image(model: LoadedModel, source: str, image: Any, seed: Any, psi: Any, alignment: str,
                  crop_if_no_face: bool, progress: gr.Progress) -> tuple[Prepared, Optional[torch.Tensor]]:
    """The prepared target and, for a seed, its true code."""
    G = model.G
    if source == "seed":
        settings = GenerationSettings(truncation_psi=required_number(psi, "truncation psi", -2, 2))
        ws = settings_ws(G, [required_int(seed, "seed", 0, 2 ** 32 - 1)], settings, model.device)
        with torch.no_grad():
            img = to_uint8(G.synthesis(ws, noise_mode="const", force_fp32=model.force_fp32))[0]
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        return Prepared(img, "as given", f"generated from seed {int(float(seed))} (the true code is known)"), ws
    if image is None or image == "":
        raise ValueError("upload an image, take one with the webcam, pick an example, or use a seed")
    mode = ALIGNMENTS.get(alignment, alignment or "auto")

    def on_bytes(done: int, total: Optional[int], message: str) -> None:
        progress(done / total if total else 0.0, desc=message)

    pil = read_image(image.get("path") if isinstance(image, dict) else image)
    return prepare_image(pil, G.img_resolution, mode, model.card.domain, bool(crop_if_no_face), on_bytes), None


def _loss_table(results: list) -> Any:
    import pandas as pd

    rows = [{"step": i + 1, "log10 loss": float(np.log10(max(loss, 1e-12))), "method": r.method}
            for r in results for i, loss in enumerate(r.losses)]
    return pd.DataFrame(rows or [{"step": 0, "log10 loss": 0.0, "method": "no optimisation run"}])


def build(manager: ModelManager) -> None:
    """Lay out the tab in the current gr.Blocks and wire its events."""
    choices = model_choices(manager)
    default = default_model(manager, "inversion")
    stops = SessionStopFlags()
    encoders = _encoder_choices()

    @on_gpu(manager, default, seconds=lambda a: 30)
    @user_errors
    def align(model_id: str = default, image: Optional[str] = None, alignment: str = "auto",
              crop_if_no_face: bool = False, progress: gr.Progress = gr.Progress()):
        """The crop that /invert would use: (aligned image, status line)."""
        if image is None or image == "":
            return None, ""
        model = manager.get(model_id or default, progress=progress_callback(progress))
        prepared, _ = _source_image(model, "image", image, 0, 1, alignment, crop_if_no_face, progress)
        return prepared.image, prepared.message

    def inversion_seconds(a: dict) -> float:
        ticked = [METHODS.get(m, m) for m in (a.get("methods") or ["w"])]
        steps = sum(request_number(a, f"{kind}_steps", 300) for kind in ("w", "wplus", "hybrid") if kind in ticked)
        return 30 + 0.2 * steps + 2 * request_number(a, "encoder_iterations", 5)

    def inversion_assets(a: dict) -> None:
        """LPIPS and the chosen encoder, downloaded and loaded before any GPU time."""
        get_lpips(manager.device)
        ticked = [METHODS.get(m, m) for m in (a.get("methods") or ["w"])]
        if a.get("encoder") and {"encoder", "hybrid"} & set(ticked):
            _check_encoder(str(a["encoder"]), manager.get(str(a.get("model_id") or default)).G)
            zoo_encoder(str(a["encoder"]), device=manager.device)

    @on_gpu(manager, default, seconds=inversion_seconds, prepare=inversion_assets)
    @user_errors
    def invert(model_id: str = default, image: Optional[str] = None, source: str = "image", seed: float = 0,
               truncation_psi: float = 0.7, alignment: str = "auto", crop_if_no_face: bool = False,
               methods: Optional[list[str]] = None, w_steps: float = 300, wplus_steps: float = 300,
               hybrid_steps: float = 100, encoder: str = "", encoder_iterations: float = 5,
               request: gr.Request = None, progress: gr.Progress = gr.Progress()):
        """Invert one image with each ticked method and compare them.

        model_id: a model id of the zoo. image: an image file (ignored when source is 'seed').
        source: 'image' or 'seed' (generate the target from `seed` and `truncation_psi`: the true code
        is known). alignment: 'auto', 'align', 'crop' or 'resize'. crop_if_no_face: centre crop
        instead of failing when no face is found. methods: any of 'w', 'wplus', 'encoder', 'hybrid'
        (or their labels). w_steps / wplus_steps / hybrid_steps: optimisation steps (1-10000).
        encoder: encoder id or .pt path for 'encoder' and 'hybrid'. encoder_iterations: ReStyle passes.

        Returns: aligned target, gallery (target then one reconstruction per method), metrics table,
        loss curves, ReStyle strip, .npz codes, status line.
        """
        stop = stops.get(request)
        stop.clear()
        if source not in ("image", "seed"):
            raise ValueError(f"source must be 'image' or 'seed', got {source!r}")
        specs = _methods(methods if methods is not None else ["w"], w_steps, wplus_steps, hybrid_steps, encoder,
                         encoder_iterations)
        model = manager.get(model_id or default, progress=progress_callback(progress))
        if model.G.c_dim:
            raise ValueError("inversion of conditional (class-labelled) models is not supported")
        for spec in specs:
            if spec.encoder:
                _check_encoder(spec.encoder, model.G)
        prepared, true_ws = _source_image(model, source, image, seed, truncation_psi, alignment, crop_if_no_face,
                                          progress)

        def on_bytes(done: int, total: Optional[int], message: str) -> None:
            progress(done / total if total else 0.0, desc=message)

        lpips_net = get_lpips(model.device, progress=on_bytes)
        results = run_methods(model.G, prepared.image, specs, lpips_net, force_fp32=model.force_fp32,
                              progress=progress_callback(progress), should_stop=stop.is_set)
        folder = Path(tempfile.mkdtemp(prefix="stylecore-invert-"))
        gallery = [(prepared.image, "target")]
        rows, files, strip = [], [], []
        for i, r in enumerate(results):
            m = r.metrics
            gallery.append((r.image, f"{r.method}: LPIPS {m['lpips']:.3f}, PSNR {m['psnr']:.1f} dB"))
            code_error = "" if true_ws is None else \
                f"{float((r.ws - true_ws.cpu()).norm(dim=-1).mean()):.3f}"
            rows.append([r.method, r.space, round(m["lpips"], 4), round(m["psnr"], 2), round(m["mse"], 5),
                         round(r.seconds, 2), r.steps, code_error])
            files.append(str(save_result(folder / f"{model.card.id}-{i}-{r.space.replace('+', 'plus')}.npz", r)))
            strip.extend((img, f"{r.method}: pass {k + 1}") for k, img in enumerate(r.iterations))
        stopped = any(r.cancelled for r in results) or len(results) < len(specs)
        status = f"{prepared.message}. " + ("**Stopped**: partial results. " if stopped else "") + \
            f"{len(results)} of {len(specs)} methods ran on {model.device.type}."
        notes = [r.note for r in results if r.note] + [r.start.note for r in results if r.start and r.start.note]
        status += "".join(f" {note}." for note in dict.fromkeys(notes))
        if getattr(lpips_net, "random_backbone", False):
            status += (" LPIPS uses a random VGG16 backbone (STYLECORE_LPIPS_BACKBONE=random): its values are not "
                       "comparable with published ones.")
        picks = gr.update(choices=[(Path(f).name, f) for f in files], value=files[-1] if files else None)
        return prepared.image, gallery, rows, _loss_table(results), strip, files, picks, status

    def stop_run(request: gr.Request):
        stops.get(request).set()
        return "Stopping after the current step..."


    def show_source(source: str):
        return gr.update(visible=source == "image"), gr.update(visible=source == "seed")

    editing = offered(EDITING_CODE_INPUTS)

    with gr.Tab("Inversion", id="inversion"):
        offline_banner(manager)
        with gr.Row():
            with gr.Column(scale=1):
                model = model_picker(manager, default, "inversion_refresh_models", choices)
                source = gr.Radio(["image", "seed"], value="image", label="Target from",
                                  info="an image, or one generated from a seed (its true code is known)")
                with gr.Group(visible=True) as image_box:
                    image = _raw_upload(gr.Image(label="Image", type="filepath",
                                                 sources=["upload", "webcam", "clipboard"], height=256))
                    alignment = gr.Radio(list(ALIGNMENTS.items()), value="auto", label="Alignment",
                                         info="auto: FFHQ alignment (dlib landmarks) for face models, centre crop "
                                              "for others")
                    crop_if_no_face = gr.Checkbox(value=False, label="Centre crop when no face is found")
                    examples = _example_images()
                    if examples:
                        gr.Examples([[e] for e in examples], inputs=[image], label="Examples")
                with gr.Group(visible=False) as seed_box:
                    seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                    psi = gr.Slider(-1.0, 2.0, value=0.7, step=0.05, label="Truncation psi")
                methods = gr.CheckboxGroup(list(METHODS.items()), value=["w", "wplus"], label="Methods")
                with gr.Row():
                    w_steps = gr.Number(value=300, precision=0, minimum=1, maximum=MAX_STEPS, label="W steps",
                                        info="official: 1000")
                    wplus_steps = gr.Number(value=300, precision=0, minimum=1, maximum=MAX_STEPS, label="W+ steps",
                                            info="paper: 5000")
                    hybrid_steps = gr.Number(value=100, precision=0, minimum=1, maximum=MAX_STEPS,
                                             label="Hybrid steps")
                with gr.Row():
                    encoder = gr.Dropdown(encoders, value=encoders[0] if encoders else None, allow_custom_value=True,
                                          label="Encoder", info="an encoder id, or a local .pt path")
                    iterations = gr.Number(value=5, precision=0, minimum=1, maximum=MAX_ITERATIONS,
                                           label="ReStyle iterations")
                with gr.Row():
                    go = gr.Button("Invert", variant="primary")
                    stop_button = gr.Button("Stop", variant="stop")
            with gr.Column(scale=2):
                aligned = gr.Image(label="Aligned target", type="numpy", format="png", height=256, interactive=False)
                gallery = gr.Gallery(label="Reconstructions", columns=4, height="auto", format="png")
                table = gr.Dataframe(headers=["method", "space", "LPIPS", "PSNR (dB)", "MSE", "seconds", "steps",
                                              "code error"], label="Metrics (against the aligned target)",
                                     interactive=False)
                plot = gr.LinePlot(x="step", y="log10 loss", color="method", label="Loss curves", height=260)
                strip = gr.Gallery(label="ReStyle iterations", columns=6, height="auto", format="png")
                codes = gr.File(label="Codes (.npz, key 'w')", file_count="multiple")
                offer(INVERSION_CODES, codes)
                with gr.Row():
                    chosen = gr.Dropdown([], label="Code to send to Editing", visible=editing is not None,
                                         allow_custom_value=True)
                    send = gr.Button("Send to the Editing tab", visible=editing is not None, size="sm")
                status = gr.Markdown()

        source.change(show_source, [source], [image_box, seed_box], api_visibility="private")
        image.change(align, [model, image, alignment, crop_if_no_face], [aligned, status], api_name="align")
        go.click(invert, [model, image, source, seed, psi, alignment, crop_if_no_face, methods, w_steps,
                                wplus_steps, hybrid_steps, encoder, iterations],
                       [aligned, gallery, table, plot, strip, codes, chosen, status], api_name="invert")
        stop_button.click(stop_run, None, [status], api_visibility="private")
        if editing is not None:
            radio, file, tabs = editing
            send.click(lambda path: ("file", path, gr.Tabs(selected="editing")), [chosen], [radio, file, tabs],
                       api_visibility="private")
