"""Inversion tab: compare GAN inversion methods on one image.

Input: an uploaded or webcam photo (aligned FFHQ-style for face models), an example, or an image
generated from a seed (so the true code is known). The ticked methods run with their budgets;
each gives a reconstruction with LPIPS, PSNR, MSE, time and latent space, a loss curve
(optimisation methods), ReStyle's passes as a strip, and its code as .npz, which can be sent to
the Editing tab (button) and which the StyleCLIP tab reads from the 'Codes' list (its source
'inversion'). Endpoints: /invert (documented below), /align (the aligned crop only) and
/invert_estimate (what the chosen methods will take on a CPU, from one measured step).

On a CPU the tab opens on the encoder and a short hybrid when an encoder exists for the model, with
the coarse-to-fine schedule (Advanced), and shows the estimate before the user starts.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Optional

import gradio as gr
import numpy as np
import torch

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
from spaces.handoff import EDITING_CODE_INPUTS, INVERSION_CODES, offer, offered
from stylecore.engine.manager import LoadedModel, ModelManager
from stylecore.inversion.compare import Comparison, code_error, compare_on, load_networks, save_result, seed_target
from stylecore.inversion.encoder_cards import ENCODER_GENERATORS, encoder_zoo
from stylecore.inversion.estimate import estimate
from stylecore.inversion.methods import ITERATIONS, METHODS, MethodSpec, choose, opening
from stylecore.codes.schedule import COARSE_TO_FINE, FULL, default_schedule
from stylecore.perception.align import FaceFinder, Prepared, load_face_finder, prepare_image, read_image
from stylecore.progress import from_bytes

ALIGNMENTS = {"auto (align faces for face models)": "auto", "align face": "align", "centre crop": "crop",
              "resize whole image": "resize"}
STEP_METHODS = [m for m in METHODS.values() if m.steps is not None]  # one steps field each, in this order
TABLE_HEADERS = ["method", "space", "LPIPS", "PSNR (dB)", "MSE", "seconds", "steps", "code error"]
SCHEDULE_INFO = (f"{COARSE_TO_FINE}: the first 90% of the steps on the 256 px image of a StyleGAN2 (at most half "
                 "the output size; a fraction of a full step's cost), the last 10% at full resolution: the "
                 f"default on a CPU. {FULL}: every step at full resolution, as published: the default on a GPU. "
                 "StyleGAN3 has no intermediate image and always runs full.")


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


def _specs(methods: Any, w_steps: Any, wplus_steps: Any, hybrid_steps: Any, encoder: Any,
           iterations: Any) -> list[MethodSpec]:
    """The ticked methods (one label or kind, or a list of them; none given means W) with their budgets."""
    names = ["w"] if methods is None else [methods] if isinstance(methods, str) else list(methods)
    return choose(names, {"w": w_steps, "wplus": wplus_steps, "hybrid": hybrid_steps}, encoder, iterations)


def _encoders_for(model_id: str) -> list[str]:
    """The built-in encoders made for this model (their decoder is its network)."""
    return [encoder for encoder, generator in ENCODER_GENERATORS.items() if generator == model_id]


def _loss_table(results: list) -> Any:
    import pandas as pd

    rows = [{"step": i + 1, "log10 loss": float(np.log10(max(loss, 1e-12))), "method": r.method}
            for r in results for i, loss in enumerate(r.losses)]
    return pd.DataFrame(rows or [{"step": 0, "log10 loss": 0.0, "method": "no optimisation run"}])


class InversionTab:
    """The Inversion tab: its layout and its two events, /align and /invert."""

    def __init__(self, manager: ModelManager):
        self.manager = manager
        self.default = default_model(manager, "inversion")
        self.stops = SessionStopFlags()  # one Stop flag per browser session

    def _target(self, model: LoadedModel, source: str, image: Any, seed: Any, psi: Any, alignment: str,
                crop_if_no_face: bool, progress: gr.Progress) -> tuple[Prepared, Optional[torch.Tensor]]:
        """The prepared target and, for a seed, its true code."""
        if source == "seed":
            seed = required_int(seed, "seed", 0, 2 ** 32 - 1)
            img, ws = seed_target(model.G, seed, required_number(psi, "truncation psi", -2, 2), model.force_fp32)
            return Prepared(img, "as given", f"generated from seed {seed} (the true code is known)"), ws
        if image is None or image == "":
            raise ValueError("upload an image, take one with the webcam, pick an example, or use a seed")
        pil = read_image(image.get("path") if isinstance(image, dict) else image)
        on_bytes = from_bytes(progress_callback(progress))

        def finder() -> FaceFinder:  # loaded only when the image is aligned, then kept by the manager
            return self.manager.resource(("face_finder", "dlib-68"), lambda: load_face_finder(on_bytes))

        return prepare_image(pil, model.G.img_resolution, ALIGNMENTS.get(alignment, alignment or "auto"),
                             model.card.domain, bool(crop_if_no_face), on_bytes, finder), None

    def align(self, model_id: str = "", image: Optional[str] = None, alignment: str = "auto",
              crop_if_no_face: bool = False, progress: gr.Progress = gr.Progress()):
        """The crop that /invert would use: (aligned image, status line)."""
        if image is None or image == "":
            return None, ""
        model = self.manager.get(model_id or self.default, progress=progress_callback(progress))
        prepared, _ = self._target(model, "image", image, 0, 1, alignment, crop_if_no_face, progress)
        return prepared.image, prepared.message

    def invert(self, model_id: str = "", image: Optional[str] = None, source: str = "image", seed: float = 0,
               truncation_psi: float = 0.7, alignment: str = "auto", crop_if_no_face: bool = False,
               methods: Optional[list[str]] = None, w_steps: float = 300, wplus_steps: float = 300,
               hybrid_steps: float = 100, encoder: str = "", encoder_iterations: float = 5,
               schedule: str = "auto", request: gr.Request = None, progress: gr.Progress = gr.Progress()):
        """Invert one image with each ticked method and compare them.

        model_id: a model id of the zoo. image: an image file (ignored when source is 'seed').
        source: 'image' or 'seed' (generate the target from `seed` and `truncation_psi`: the true code
        is known). alignment: 'auto', 'align', 'crop' or 'resize'. crop_if_no_face: centre crop
        instead of failing when no face is found. methods: any of 'w', 'wplus', 'encoder', 'hybrid'
        (or their labels). w_steps / wplus_steps / hybrid_steps: optimisation steps (1-10000).
        encoder: encoder id or .pt path for 'encoder' and 'hybrid'. encoder_iterations: ReStyle passes.
        schedule: 'coarse-to-fine' (early steps on the 256 px image of a StyleGAN2), 'full', or 'auto'
        (coarse-to-fine on a CPU, full on a GPU).

        Returns: aligned target, gallery (target then one reconstruction per method), metrics table,
        loss curves, ReStyle strip, .npz codes, status line.
        """
        stop = self.stops.get(request)
        stop.clear()
        if source not in ("image", "seed"):
            raise ValueError(f"source must be 'image' or 'seed', got {source!r}")
        specs = _specs(methods, w_steps, wplus_steps, hybrid_steps, encoder, encoder_iterations)
        model = self.manager.get(model_id or self.default, progress=progress_callback(progress))
        prepared, true_ws = self._target(model, source, image, seed, truncation_psi, alignment, crop_if_no_face,
                                         progress)
        comparison = compare_on(self.manager, model, prepared.image, specs, progress_callback(progress), stop.is_set,
                                schedule)
        return self._outputs(model, prepared, true_ws, comparison)

    def estimate(self, model_id: str = "", methods: Optional[list[str]] = None, w_steps: float = 300,
                 wplus_steps: float = 300, hybrid_steps: float = 100, encoder: str = "",
                 encoder_iterations: float = 5, schedule: str = "auto",
                 progress: gr.Progress = gr.Progress()) -> str:
        """What /invert with these settings will take on this CPU (one step measured per model and
        resolution, then kept); '' on a GPU, where a step is cheap. While a setting is out of bounds it
        says which, without the error pop-up a keystroke would otherwise raise."""
        if self.manager.device.type != "cpu":
            return ""
        try:
            specs = _specs(methods, w_steps, wplus_steps, hybrid_steps, encoder, encoder_iterations)
        except ValueError as exc:
            return f"No estimate yet: {exc}"
        model = self.manager.get(model_id or self.default, progress=progress_callback(progress))
        return estimate(self.manager, model, specs, schedule).text()

    def _outputs(self, model: LoadedModel, prepared: Prepared, true_ws: Optional[torch.Tensor],
                 comparison: Comparison) -> tuple:
        """The event's outputs: aligned target, gallery, table, loss curves, strip, files, picks, status."""
        folder = Path(tempfile.mkdtemp(prefix="stylecore-invert-"))
        gallery = [(prepared.image, "target")]
        rows, files, strip = [], [], []
        for i, r in enumerate(comparison.results):
            m = r.metrics
            gallery.append((r.image, f"{r.method}: LPIPS {m['lpips']:.3f}, PSNR {m['psnr']:.1f} dB"))
            rows.append([r.method, r.space, round(m["lpips"], 4), round(m["psnr"], 2), round(m["mse"], 5),
                         round(r.seconds, 2), r.steps, "" if true_ws is None else f"{code_error(r, true_ws):.3f}"])
            files.append(str(save_result(folder / f"{model.card.id}-{i}-{r.space.replace('+', 'plus')}.npz", r)))
            strip.extend((img, f"{r.method}: pass {k + 1}") for k, img in enumerate(r.iterations))
        status = f"{prepared.message}. " + ("**Stopped**: partial results. " if comparison.stopped else "") + \
            f"{len(comparison.results)} of {comparison.planned} methods ran on {model.device.type}."
        status += "".join(f" {note}." for note in comparison.notes)
        if comparison.random_lpips:
            status += (" LPIPS uses a random VGG16 backbone (STYLECORE_LPIPS_BACKBONE=random): its values are not "
                       "comparable with published ones.")
        picks = gr.update(choices=[(Path(f).name, f) for f in files], value=files[-1] if files else None)
        return prepared.image, gallery, rows, _loss_table(comparison.results), strip, files, picks, status

    def stop(self, request: gr.Request) -> str:
        self.stops.get(request).set()
        return "Stopping after the current step..."

    def _seconds(self, a: dict) -> float:
        """GPU time for an /invert request: its optimisation steps and encoder passes."""
        ticked = {m.kind for name in (a.get("methods") or ["w"]) for m in METHODS.values() if name in (m.kind, m.label)}
        steps = sum(request_number(a, f"{m.kind}_steps", m.steps.default) for m in STEP_METHODS if m.kind in ticked)
        return 30 + 0.2 * steps + 2 * request_number(a, "encoder_iterations", ITERATIONS.default)

    def prepare_invert(self, a: dict) -> None:
        """LPIPS and the chosen encoder, downloaded and loaded before any GPU time."""
        specs = _specs(a.get("methods"), a.get("w_steps"), a.get("wplus_steps"), a.get("hybrid_steps"),
                       a.get("encoder"), a.get("encoder_iterations"))
        load_networks(self.manager, self.manager.get(str(a.get("model_id") or self.default)).G, specs)

    def layout(self) -> None:
        """Lay out the tab in the current gr.Blocks and wire its events."""
        manager, default = self.manager, self.default
        align = on_gpu(manager, default, seconds=lambda a: 30)(user_errors(self.align))
        invert = on_gpu(manager, default, seconds=self._seconds, prepare=self.prepare_invert)(user_errors(self.invert))
        encoders = encoder_zoo().ids()
        own_encoders = _encoders_for(default)
        ticked, budgets = opening(manager.device.type, bool(own_encoders))
        editing = offered(EDITING_CODE_INPUTS)

        with gr.Tab("Inversion", id="inversion") as tab:
            offline_banner(manager)
            with gr.Row():
                with gr.Column(scale=1):
                    model = model_picker(manager, default, "inversion_refresh_models", model_choices(manager))
                    source = gr.Radio(["image", "seed"], value="image", label="Target from",
                                      info="an image, or one generated from a seed (its true code is known)")
                    with gr.Group(visible=True) as image_box:
                        image = _raw_upload(gr.Image(label="Image", type="filepath",
                                                     sources=["upload", "webcam", "clipboard"], height=256))
                        alignment = gr.Radio(list(ALIGNMENTS.items()), value="auto", label="Alignment",
                                             info="auto: FFHQ alignment (dlib landmarks) for face models, centre "
                                                  "crop for others")
                        crop_if_no_face = gr.Checkbox(value=False, label="Centre crop when no face is found")
                        examples = _example_images()
                        if examples:
                            gr.Examples([[e] for e in examples], inputs=[image], label="Examples")
                    with gr.Group(visible=False) as seed_box:
                        seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                        psi = gr.Slider(-1.0, 2.0, value=0.7, step=0.05, label="Truncation psi")
                    methods = gr.CheckboxGroup([(m.label, m.kind) for m in METHODS.values()], value=ticked,
                                               label="Methods")
                    with gr.Row():
                        steps = [gr.Number(value=budgets[m.kind], precision=0, minimum=m.steps.low,
                                           maximum=m.steps.high, label=m.steps.name, info=m.steps.note or None)
                                 for m in STEP_METHODS]
                    with gr.Row():
                        encoder = gr.Dropdown(encoders, value=(own_encoders or encoders or [None])[0],
                                              allow_custom_value=True, label="Encoder",
                                              info="an encoder id, or a local .pt path")
                        iterations = gr.Number(value=ITERATIONS.default, precision=0, minimum=ITERATIONS.low,
                                               maximum=ITERATIONS.high, label=ITERATIONS.name)
                    with gr.Accordion("Advanced", open=False):
                        schedule = gr.Radio([COARSE_TO_FINE, FULL], value=default_schedule(manager.device),
                                            label="Optimisation schedule", info=SCHEDULE_INFO)
                    estimate_box = gr.Markdown()
                    with gr.Row():
                        go = gr.Button("Invert", variant="primary")
                        stop_button = gr.Button("Stop", variant="stop")
                with gr.Column(scale=2):
                    aligned = gr.Image(label="Aligned target", type="numpy", format="png", height=256,
                                       interactive=False)
                    gallery = gr.Gallery(label="Reconstructions", columns=4, height="auto", format="png")
                    table = gr.Dataframe(headers=TABLE_HEADERS, label="Metrics (against the aligned target)",
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

            source.change(lambda s: (gr.update(visible=s == "image"), gr.update(visible=s == "seed")), [source],
                          [image_box, seed_box], api_visibility="private")
            image.change(align, [model, image, alignment, crop_if_no_face], [aligned, status], api_name="align")
            go.click(invert, [model, image, source, seed, psi, alignment, crop_if_no_face, methods, *steps, encoder,
                              iterations, schedule], [aligned, gallery, table, plot, strip, codes, chosen, status],
                     api_name="invert")
            settings = [model, methods, *steps, encoder, iterations, schedule]
            gr.on([tab.select] + [c.change for c in settings], user_errors(self.estimate), settings, [estimate_box],
                  api_name="invert_estimate", show_progress="minimal", trigger_mode="always_last")
            stop_button.click(self.stop, None, [status], api_visibility="private")
            if editing is not None:
                radio, file, tabs = editing
                send.click(lambda path: ("file", path, gr.Tabs(selected="editing")), [chosen], [radio, file, tabs],
                           api_visibility="private")
