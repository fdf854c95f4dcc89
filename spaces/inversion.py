"""Inversion tab: compare GAN inversion methods on one image.

Input: an uploaded or webcam photo (aligned FFHQ-style for face models), an example, or an image
generated from a seed (so the true code is known). The ticked methods run with their budgets;
each gives a reconstruction with LPIPS, PSNR, MSE, time and latent space, a loss curve
(optimisation methods), ReStyle's and HyperStyle's passes as a strip, and its code as .npz, which can be sent to
the Editing tab (button) and which the StyleCLIP tab reads from the 'Codes' list (its source
'inversion'). Endpoints: /invert (documented below), /align (the aligned crop only) and
/invert_estimate (what the chosen methods will take on a CPU, from one measured step).

The simple view holds what a visitor needs: the model, a photo or a seed, the methods (and the
encoder when one is ticked), the estimate and Invert, which is enabled once there is something to
invert. A closed "Advanced" section holds alignment, truncation, the step counts of the ticked
methods, the passes of ReStyle and HyperStyle, and the schedule; every control is shown only when
its source or method is chosen. Numbers are checked by the events, so a message names the field and its range. Results are
shown whole and small ones enlarged (the 64 px demo networks); the codes are files to download, at
the model's size. "Send to the Editing tab" is enabled once an inversion produced codes.

On a CPU the tab opens on the encoder and a short hybrid when an encoder exists for the model, with
the coarse-to-fine schedule (Advanced), and shows the estimate before the user starts.
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any, Optional

import gradio as gr
import numpy as np
import torch

from spaces.common import (
    SEED_INFO,
    SessionStopFlags,
    default_model,
    listen,
    model_choices,
    model_picker,
    offline_banner,
    on_gpu,
    progress_callback,
    request_number,
    required_number,
    required_seed,
    session_key,
    shown,
    user_errors,
)
from spaces.handoff import EDITING_CODE_INPUTS, INVERSION_CODES, offer, offered
from stylecore.engine.manager import LoadedModel, ModelManager
from stylecore.engine.tuned import forget_session, keep_tuned
from stylecore.inversion.compare import (Comparison, code_error, compare_on, load_networks, save_result, save_weights,
                                         seed_target)
from stylecore.inversion.encoder_cards import ENCODER_GENERATORS, encoder_zoo
from stylecore.inversion.estimate import estimate
from stylecore.inversion.methods import ITERATIONS, METHODS, Budget, MethodSpec, choose, opening
from stylecore.codes.schedule import COARSE_TO_FINE, FULL, default_schedule
from stylecore.perception.align import FaceFinder, Prepared, load_face_finder, prepare_image, read_image
from stylecore.progress import from_bytes

ALIGNMENTS = {"auto (align faces for face models)": "auto", "align face": "align", "centre crop": "crop",
              "resize whole image": "resize"}
STEP_METHODS = [m for m in METHODS.values() if m.steps is not None]  # one steps field each, in this order
SOURCES = [("a photo", "image"), ("a seed", "seed")]
METHODS_INFO = ("how the code that redraws the image is found; tick several to compare. W: one code for every "
                "layer (stays easy to edit). W+: one code per layer (closer to the photo). Encoder: a trained "
                "network, in one pass. Hybrid: the encoder, then W+ steps. PTI: a W code, then the generator's weights "
                "tuned to the photo. HyperStyle: a network predicts those weight changes in a few passes")
TABLE_HEADERS = ["method", "space", "LPIPS", "PSNR (dB)", "MSE", "seconds", "steps", "code error"]
TABLE_LABEL = ("Metrics against the aligned target (LPIPS, MSE: lower is closer; PSNR: higher is closer; code "
               "error: distance to a seed's true code)")
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


def _specs(methods: Any, w_steps: Any, wplus_steps: Any, hybrid_steps: Any, pti_steps: Any, encoder: Any,
           iterations: Any) -> list[MethodSpec]:
    """The ticked methods (one label or kind, or a list of them; none given means W) with their budgets."""
    names = ["w"] if methods is None else [methods] if isinstance(methods, str) else list(methods)
    return choose(names, {"w": w_steps, "wplus": wplus_steps, "hybrid": hybrid_steps, "pti": pti_steps}, encoder,
                  iterations)


def _encoders_for(model_id: str) -> list[str]:
    """The built-in encoders made for this model (their decoder is its network)."""
    return [encoder for encoder, generator in ENCODER_GENERATORS.items() if generator == model_id]


def _shown(*flags: bool) -> list:
    return [gr.update(visible=bool(flag)) for flag in flags]


def _kinds(methods: Any) -> set[str]:
    """The kinds of the ticked methods (labels or kinds); unknown names are left to the events' checks."""
    names = [methods] if isinstance(methods, str) else list(methods or [])
    return {m.kind for m in METHODS.values() if m.kind in names or m.label in names}


def _steps_info(budget: Budget) -> str:
    note = f"; {budget.note}" if budget.note else ""
    return f"{budget.low} to {budget.high}: more steps come closer and take longer{note}"


def _loss_table(results: list, names: list[str]) -> Any:
    """The loss curves, one line per method under its short name (a legend that fits)."""
    import pandas as pd

    rows = [{"step": i + 1, "log10 loss": float(np.log10(max(loss, 1e-12))), "method": name}
            for r, name in zip(results, names) for i, loss in enumerate(r.losses)]
    return pd.DataFrame(rows or [{"step": 0, "log10 loss": 0.0, "method": "no optimisation run"}])


def _metrics(comparison: Comparison, names: list[str], true_ws: Optional[torch.Tensor]) -> Any:
    """The metrics table; its LPIPS header says when LPIPS ran on a random backbone."""
    import pandas as pd

    headers = list(TABLE_HEADERS)
    if comparison.random_lpips:
        headers[headers.index("LPIPS")] = "LPIPS (random VGG16)"
    rows = [[name, r.space, round(r.metrics["lpips"], 4), round(r.metrics["psnr"], 2), round(r.metrics["mse"], 5),
             round(r.seconds, 2), r.steps, "" if true_ws is None else f"{code_error(r, true_ws):.3f}"]
            for r, name in zip(comparison.results, names)]
    return pd.DataFrame(rows, columns=headers)


class InversionTab:
    """The Inversion tab: its layout and its events, /align, /invert and /invert_estimate."""

    def __init__(self, manager: ModelManager):
        self.manager = manager
        self.default = default_model(manager, "inversion")
        self.stops = SessionStopFlags()  # one Stop flag per browser session

    def _target(self, model: LoadedModel, source: str, image: Any, seed: Any, psi: Any, alignment: str,
                crop_if_no_face: bool, progress: gr.Progress) -> tuple[Prepared, Optional[torch.Tensor]]:
        """The prepared target and, for a seed, its true code."""
        if source == "seed":
            seed = required_seed(seed, "Seed")
            img, ws = seed_target(model.G, seed, required_number(psi, "Truncation psi (ψ)", -2, 2), model.force_fp32)
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
              crop_if_no_face: bool = False, event: gr.EventData = None, progress: gr.Progress = gr.Progress()):
        """The crop that /invert would use (on a page, enlarged when small): (aligned image, status line)."""
        if image is None or image == "":
            return None, ""
        model = self.manager.get(model_id or self.default, progress=progress_callback(progress))
        prepared, _ = self._target(model, "image", image, 0, 1, alignment, crop_if_no_face, progress)
        return shown(prepared.image, event), prepared.message

    def invert(self, model_id: str = "", image: Optional[str] = None, source: str = "image", seed: float = 0,
               truncation_psi: float = 0.7, alignment: str = "auto", crop_if_no_face: bool = False,
               methods: Optional[list[str]] = None, w_steps: float = 300, wplus_steps: float = 300,
               hybrid_steps: float = 100, pti_steps: float = 100, encoder: str = "", encoder_iterations: float = 5,
               schedule: str = "auto", request: gr.Request = None, event: gr.EventData = None,
               progress: gr.Progress = gr.Progress()):
        """Invert one image with each ticked method and compare them.

        model_id: a model id of the zoo. image: an image file (ignored when source is 'seed').
        source: 'image' or 'seed' (generate the target from `seed` and `truncation_psi`: the true code
        is known). alignment: 'auto', 'align', 'crop' or 'resize'. crop_if_no_face: centre crop
        instead of failing when no face is found. methods: any of 'w', 'wplus', 'encoder', 'hybrid'
        (or their labels), 'pti'. w_steps / wplus_steps / hybrid_steps / pti_steps: optimisation steps (1-10000;
        PTI's W pivot and its tuning each take pti_steps).
        encoder: encoder id or .pt path for 'encoder' and 'hybrid'. encoder_iterations: ReStyle's and HyperStyle's
        passes ('hyperstyle' runs for StyleGAN2 FFHQ 1024 config-f, and untrained on the demo network).
        schedule: 'coarse-to-fine' (early steps on the 256 px image of a StyleGAN2), 'full', or 'auto'
        (coarse-to-fine on a CPU, full on a GPU).

        Returns: aligned target, gallery (target then one reconstruction per method; on a page, images
        enlarged when small), metrics table (methods by short name: W, W+, encoder, hybrid), loss curves,
        strip of passes, .npz codes (the model's own size) and PTI's / HyperStyle's tuned weights (.safetensors),
        the code picker's update, status line.
        """
        stop = self.stops.get(request)
        stop.clear()
        if source not in ("image", "seed"):
            raise ValueError(f"source must be 'image' or 'seed', got {source!r}")
        specs = _specs(methods, w_steps, wplus_steps, hybrid_steps, pti_steps, encoder, encoder_iterations)
        model = self.manager.get(model_id or self.default, progress=progress_callback(progress))
        prepared, true_ws = self._target(model, source, image, seed, truncation_psi, alignment, crop_if_no_face,
                                         progress)
        comparison = compare_on(self.manager, model, prepared.image, specs, progress_callback(progress), stop.is_set,
                                schedule)
        return self._outputs(model, prepared, true_ws, comparison, [METHODS[s.kind].short for s in specs],
                             session_key(request), event)

    def estimate(self, model_id: str = "", methods: Optional[list[str]] = None, w_steps: float = 300,
                 wplus_steps: float = 300, hybrid_steps: float = 100, pti_steps: float = 100, encoder: str = "",
                 encoder_iterations: float = 5, schedule: str = "auto",
                 progress: gr.Progress = gr.Progress()) -> str:
        """What /invert with these settings will take on this CPU (one step measured per model and
        resolution, then kept); '' on a GPU, where a step is cheap. While a setting is out of bounds it
        says which, without the error pop-up a keystroke would otherwise raise."""
        if self.manager.device.type != "cpu":
            return ""
        try:
            specs = _specs(methods, w_steps, wplus_steps, hybrid_steps, pti_steps, encoder, encoder_iterations)
        except ValueError as exc:
            return f"No estimate yet: {exc}"
        model = self.manager.get(model_id or self.default, progress=progress_callback(progress))
        return estimate(self.manager, model, specs, schedule).text()

    def _outputs(self, model: LoadedModel, prepared: Prepared, true_ws: Optional[torch.Tensor],
                 comparison: Comparison, names: list[str], session: str, event: Optional[gr.EventData]) -> tuple:
        """The event's outputs: aligned target, gallery, table, loss curves, strip, files, picks, status;
        `names` are the planned methods' short names, in order (the results are their first ones). PTI's and
        HyperStyle's tuned weights are kept for `session` (Editing and StyleCLIP draw their codes with them)."""
        folder = Path(tempfile.mkdtemp(prefix="stylecore-invert-"))
        gallery = [(shown(prepared.image, event), "target")]
        files, weights, strip = [], [], []
        for i, (r, name) in enumerate(zip(comparison.results, names)):
            m = r.metrics
            gallery.append((shown(r.image, event), f"{name}: LPIPS {m['lpips']:.3f}, PSNR {m['psnr']:.1f} dB"))
            stem = f"{model.card.id}-{i}-{name.replace('+', 'plus')}"
            digest = keep_tuned(self.manager, session, model, r.weights) if r.weights else ""
            files.append(str(save_result(folder / f"{stem}.npz", r, digest)))
            tuned = save_weights(folder / f"{stem}-tuned-weights.safetensors", r)  # PTI: the code's own weights
            weights.extend([str(tuned)] if tuned else [])
            strip.extend((shown(img, event), f"{name}: pass {k + 1}") for k, img in enumerate(r.iterations))
        status = f"{prepared.message}. " + ("**Stopped**: partial results. " if comparison.stopped else "") + \
            f"{len(comparison.results)} of {comparison.planned} methods ran on {model.device.type}."
        status += "".join(f" {note}." for note in comparison.notes)  # with why LPIPS is random, when it is
        if weights:
            status += (" The Editing and StyleCLIP tabs draw the PTI / HyperStyle codes with their tuned weights "
                       "during this session; the weights are also offered as .safetensors.")
        picks = gr.update(choices=[(Path(f).name, f) for f in files], value=files[-1] if files else None)
        return (shown(prepared.image, event), gallery, _metrics(comparison, names, true_ws),
                _loss_table(comparison.results, names), strip, files + weights, picks, status)

    def forget(self, request: gr.Request) -> None:
        """The session ended: drop the generators it tuned."""
        forget_session(self.manager, session_key(request))

    def stop(self, request: gr.Request) -> str:
        self.stops.get(request).set()
        return "Stopping after the current step..."

    @staticmethod
    def send_to_editing(path: Optional[str]) -> tuple:
        """The chosen code into the Editing tab's file input, and that tab opened."""
        if not path:
            raise ValueError("there is no code to send yet: invert an image first")
        return "file", path, gr.Tabs(selected="editing"), f"Sent {Path(path).name} to the Editing tab."

    @staticmethod
    def shown(source: str, methods: Any) -> list:
        """Which controls the source and the ticked methods use, in the order of `layout`'s `modal`:
        image, seed, image advanced, seed advanced, one steps field per optimising method, encoder,
        passes, strip of passes."""
        kinds = _kinds(methods)
        encoding = bool(kinds & {m.kind for m in METHODS.values() if m.uses_encoder})
        passing = bool(kinds & {m.kind for m in METHODS.values() if m.uses_passes})
        image = source == "image"
        return _shown(image, not image, image, not image, *(m.kind in kinds for m in STEP_METHODS),
                      encoding, passing, passing)

    @staticmethod
    def ready(source: str, image: Any) -> Any:
        """Invert is enabled once there is something to invert: a seed, or an image."""
        return gr.update(interactive=source == "seed" or bool(image))

    def _seconds(self, a: dict) -> float:
        """GPU time for an /invert request: its optimisation steps and encoder passes."""
        ticked = _kinds(a.get("methods") or ["w"])
        steps = sum(m.rounds * request_number(a, f"{m.kind}_steps", m.steps.default) for m in STEP_METHODS
                    if m.kind in ticked)
        return 30 + 0.2 * steps + 2 * request_number(a, "encoder_iterations", ITERATIONS.default)

    def prepare_invert(self, a: dict) -> None:
        """LPIPS and the chosen encoder, downloaded and loaded before any GPU time."""
        specs = _specs(a.get("methods"), a.get("w_steps"), a.get("wplus_steps"), a.get("hybrid_steps"),
                       a.get("pti_steps"),
                       a.get("encoder"), a.get("encoder_iterations"))
        load_networks(self.manager, self.manager.get(str(a.get("model_id") or self.default)), specs)

    def layout(self) -> None:
        """Lay out the tab in the current gr.Blocks and wire its events."""
        manager, default = self.manager, self.default
        align = on_gpu(manager, default, seconds=lambda a: 30)(user_errors(self.align))
        invert = on_gpu(manager, default, seconds=self._seconds, prepare=self.prepare_invert)(user_errors(self.invert))
        encoders = encoder_zoo().ids()
        own_encoders = _encoders_for(default)
        ticked, budgets = opening(manager.device.type, bool(own_encoders))
        encoding = any(METHODS[kind].uses_encoder for kind in ticked)
        passing = any(METHODS[kind].uses_passes for kind in ticked)
        editing = offered(EDITING_CODE_INPUTS)

        with gr.Tab("Inversion", id="inversion") as tab:
            offline_banner(manager)
            gr.Markdown("Find the code that makes the model redraw an image (GAN inversion), with several methods "
                        "side by side. The codes can then be edited in the Editing and StyleCLIP tabs.")
            with gr.Row():
                with gr.Column(scale=1):
                    model = model_picker(manager, default, "inversion_refresh_models", model_choices(manager))
                    source = gr.Radio(SOURCES, value="image", label="Target from",
                                      info="the image to rebuild: a photo, or one the model draws from a seed "
                                           "(then its true code is known)")
                    with gr.Group(visible=True) as image_box:
                        image = _raw_upload(gr.Image(label="Image", type="filepath",
                                                     sources=["upload", "webcam", "clipboard"], height=256))
                        examples = _example_images()
                        if examples:
                            gr.Examples([[e] for e in examples], inputs=[image], label="Examples")
                    with gr.Group(visible=False) as seed_box:
                        seed = gr.Number(value=0, precision=0, label="Seed", info=SEED_INFO)
                    methods = gr.CheckboxGroup([(m.label, m.kind) for m in METHODS.values()], value=ticked,
                                               label="Methods", info=METHODS_INFO)
                    encoder = gr.Dropdown(encoders, value=(own_encoders or encoders or [None])[0],
                                          allow_custom_value=True, label="Encoder", visible=encoding,
                                          info="the trained network for Encoder and Hybrid: one from the list "
                                               "(made for one model), or a local .pt path")
                    with gr.Accordion("Advanced", open=False):
                        with gr.Group(visible=True) as image_advanced:
                            alignment = gr.Radio(list(ALIGNMENTS.items()), value="auto", label="Alignment",
                                                 info="auto: faces are found and lined up as the face models were "
                                                      "trained (dlib landmarks); other images are centre cropped")
                            crop_if_no_face = gr.Checkbox(value=False, label="Centre crop when no face is found")
                        with gr.Group(visible=False) as seed_advanced:
                            psi = gr.Slider(-1.0, 2.0, value=0.7, step=0.05, label="Truncation psi (ψ)",
                                            info="below 1 draws a more typical image from the seed, 1 the model as "
                                                 "trained")
                        steps = [gr.Number(value=budgets[m.kind], precision=0, label=m.steps.name,
                                           info=_steps_info(m.steps), visible=m.kind in ticked)
                                 for m in STEP_METHODS]
                        iterations = gr.Number(value=ITERATIONS.default, precision=0, label=ITERATIONS.name,
                                               visible=passing,
                                               info=f"{ITERATIONS.low} to {ITERATIONS.high}: passes, each "
                                                    "correcting the last")
                        schedule = gr.Radio([COARSE_TO_FINE, FULL], value=default_schedule(manager.device),
                                            label="Optimisation schedule", info=SCHEDULE_INFO)
                    estimate_box = gr.Markdown()
                    with gr.Row():
                        go = gr.Button("Invert", variant="primary", interactive=False)
                        stop_button = gr.Button("Stop", variant="stop")
                with gr.Column(scale=2):
                    status = gr.Markdown()
                    aligned = gr.Image(label="Aligned target", type="numpy", format="png", height=280,
                                       interactive=False)
                    gallery = gr.Gallery(label="Reconstructions", columns=4, height="auto", format="png",
                                         object_fit="contain", elem_classes=["snug-gallery"])
                    table = gr.Dataframe(headers=TABLE_HEADERS, label=TABLE_LABEL, interactive=False, wrap=True,
                                         elem_classes=["inversion-metrics"])
                    # No set height: Gradio fits the chart to it and cuts the legend off.
                    plot = gr.LinePlot(x="step", y="log10 loss", color="method", label="Loss curves (lower: closer)",
                                       x_title="optimisation step", y_title="loss (log10)")
                    strip = gr.Gallery(label="Passes (ReStyle, HyperStyle)", columns=6, height="auto", format="png",
                                       object_fit="contain", visible=passing, elem_classes=["snug-gallery"])
                    codes = gr.File(label="Codes (.npz, array 'w')", file_count="multiple", interactive=False,
                                    elem_classes=["inversion-codes"])
                    offer(INVERSION_CODES, codes)
                    with gr.Row(visible=editing is not None):
                        chosen = gr.Dropdown([], label="Code to send to Editing", allow_custom_value=True)
                        send = gr.Button("Send to the Editing tab", size="sm", interactive=False)

            modal = [image_box, seed_box, image_advanced, seed_advanced, *steps, encoder, iterations, strip]
            gr.on([source.change, methods.change], self.shown, [source, methods], modal, api_visibility="private")
            gr.on([source.change, image.change], self.ready, [source, image], [go], api_visibility="private")
            listen(image.change, align, [model, image, alignment, crop_if_no_face], [aligned, status], status,
                   api_name="align")
            listen(go.click, invert, [model, image, source, seed, psi, alignment, crop_if_no_face, methods, *steps,
                                      encoder, iterations, schedule],
                   [aligned, gallery, table, plot, strip, codes, chosen, status], status, api_name="invert")
            settings = [model, methods, *steps, encoder, iterations, schedule]
            listen(functools.partial(gr.on, [tab.select] + [c.change for c in settings]), user_errors(self.estimate),
                   settings, [estimate_box], estimate_box, api_name="invert_estimate", show_progress="minimal",
                   trigger_mode="always_last")
            stop_button.click(self.stop, None, [status], api_visibility="private")
            gr.context.Context.root_block.unload(self.forget)
            chosen.change(lambda path: gr.update(interactive=bool(path)), [chosen], [send], api_visibility="private")
            if editing is not None:
                radio, file, tabs = editing
                listen(send.click, user_errors(self.send_to_editing), [chosen], [radio, file, tabs, status], status,
                       api_visibility="private")
