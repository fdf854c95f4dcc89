"""Domains tab: one face in other styles with StyleGAN-NADA (Gal et al. 2021). A code (a seed, a
code file, or the Inversion tab's result) is rendered through a generator and any of its domain
generators side by side, and as a video morphing the generator's weights into one domain's.
Endpoints: /domains (the images) and /domain_morph (the MP4).

The simple view asks for the face and the styles; the closed Advanced section holds variety and the
video's length. The morph event is a generator that Stop ends (spaces/renders.py).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import gradio as gr

from spaces.common import (
    code_from,
    code_source,
    default_model,
    listen,
    offline_banner,
    on_gpu,
    progress_callback,
    request_number,
    required_int,
    save_png,
    shown,
    user_errors,
)
from spaces.renders import StoppableRenders
from stylecore.codes.generate import image_grid
from stylecore.edit.domains import MAX_MORPH_FRAMES, morph_frames, render_through
from stylecore.video.writer import mp4_steps
from stylecore.edit.resources import DomainModels, load_domains
from stylecore.engine.manager import ModelManager

MAX_DOMAINS = 8  # shown at once: each is a full generator in memory


def _chosen(domains: Any) -> list[str]:
    chosen = [domains] if isinstance(domains, str) else list(domains or [])
    if not chosen:
        raise ValueError("choose at least one style")
    if len(chosen) > MAX_DOMAINS:
        raise ValueError(f"choose at most {MAX_DOMAINS} styles at once, got {len(chosen)}")
    return chosen


def _styles(manager: ModelManager, base_id: str) -> list[tuple[str, str]]:
    """(style name, id) of a generator's domains: the card's title up to its source in brackets."""
    return [(card.title.split(" (")[0], card.id) for card in manager.zoo.domains_of(base_id)]


class DomainsTab:
    """The Domains tab: its layout and its events /domains and /domain_morph."""

    def __init__(self, manager: ModelManager):
        self.manager = manager
        self.default = default_model(manager, "domains")
        self.renders = StoppableRenders()

    def _models(self, base_id: str, domains: list[str], progress: gr.Progress) -> DomainModels:
        return load_domains(self.manager, base_id or self.default, domains, progress_callback(progress))

    def domains(self, base_id: str = "", domains: Optional[list[str]] = None, source: str = "seed",
                seed: float = 0, truncation_psi: float = 0.7, code_file: Any = None, inversion_codes: Any = None,
                event: gr.EventData = None, progress: gr.Progress = gr.Progress()):
        """One code through the generator and each chosen domain. Returns (gallery, PNG of all, status)."""
        models = self._models(base_id, _chosen(domains), progress)
        ws = code_from(models.base, source, seed, truncation_psi, 0, code_file, inversion_codes)
        start = time.perf_counter()
        images = render_through([models.base.G] + [m.G for m in models.domains], ws, models.base.force_fp32)
        names = ["original"] + [m.card.title.split(" (")[0] for m in models.domains]
        gallery = [(shown(image, event), name) for image, name in zip(images, names)]
        grid = save_png(image_grid(images), f"{models.base.card.id}-domains")
        return gallery, grid, (f"{len(models.domains)} styles of one code in {time.perf_counter() - start:.2f} s on "
                               f"{models.base.device.type}" + (" (untrained demo networks)" if models.base.untrained
                                                                else "") + ".")

    def morph(self, base_id: str = "", domain: str = "", source: str = "seed", seed: float = 0,
              truncation_psi: float = 0.7, code_file: Any = None, inversion_codes: Any = None, frames: float = 48,
              request: gr.Request = None, progress: gr.Progress = gr.Progress()):
        """An MP4 of the code as the generator's weights move into one domain's; yields status lines,
        then (video, status)."""
        frames = required_int(frames, "video frames", 2, MAX_MORPH_FRAMES)
        models = self._models(base_id, _chosen(domain)[:1], progress)
        ws = code_from(models.base, source, seed, truncation_psi, 0, code_file, inversion_codes)
        target = models.domains[0]
        folder = Path(tempfile.mkdtemp(prefix="stylecore-morph-"))
        images = morph_frames(models.base.G, target.G, ws, frames, models.base.force_fp32)
        steps = mp4_steps(folder / f"{models.base.card.id}-to-{target.card.id}.mp4", images, frames, 24.0,
                          self.renders.cancel_flag(request))
        path = yield from self.renders.drive(request, steps, folder, progress, lambda m: (gr.skip(), m))
        if path is not None:
            yield str(path), f"Morph from {models.base.card.title} to {target.card.title}: {frames} frames."

    def _seconds(self, a: dict) -> float:
        """GPU time for /domains: each chosen style is a render (a bad choice is refused later, by the event)."""
        domains = a.get("domains")
        count = 1 if isinstance(domains, str) else len(domains or [None])
        return 30 + 10 * min(count, MAX_DOMAINS)

    def layout(self) -> None:
        """Lay out the tab in the current gr.Blocks and wire its events."""
        manager, default = self.manager, self.default
        styles = on_gpu(manager, default, seconds=self._seconds)(user_errors(self.domains))
        morph = on_gpu(manager, default, seconds=lambda a: 20 + request_number(a, "frames", 48))(
            user_errors(self.morph))

        with gr.Tab("Domains", id="domains"):
            offline_banner(manager)
            gr.Markdown("One face in other styles (StyleGAN-NADA): the same code through generators fine-tuned "
                        "by text into other domains.")
            with gr.Row():
                with gr.Column(scale=1):
                    base = gr.Dropdown([(manager.zoo.get(b).title, b) for b in manager.zoo.domain_bases()],
                                       value=default, label="Generator",
                                       info="the generator whose styles are listed below")
                    choices = _styles(manager, default)
                    domains = gr.CheckboxGroup(choices, value=[c for _, c in choices[:3]], label="Styles",
                                               info=f"each is a copy of the generator tuned to one style; up to "
                                                    f"{MAX_DOMAINS} at once (each is downloaded on first use)")
                    face = code_source()
                    go = gr.Button("Show in these styles", variant="primary")
                    with gr.Accordion("Advanced", open=False):
                        psi = gr.Slider(-1.0, 2.0, value=0.7, step=0.05, label="Variety",
                                        info="truncation psi for seeds: 1 = full variety; lower = more typical")
                        frames = gr.Number(value=48, precision=0, label="Video frames",
                                           info=f"from 2 to {MAX_MORPH_FRAMES}; 24 frames are one second")
                with gr.Column(scale=2):
                    gallery = gr.Gallery(label="The face in each style", columns=4, height="auto", format="png",
                                         object_fit="contain", elem_id="domains-gallery")
                    grid_file = gr.File(label="All images as one PNG (real size)", interactive=False)
                    status = gr.Markdown(elem_id="domains-status")
            with gr.Accordion("Morph video", open=False):
                with gr.Row():
                    morph_to = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="Morph into",
                                           info="the weights move from the generator's to this style's")
                    morph_go = gr.Button("Make the video")
                    stop = gr.Button("Stop", variant="stop", interactive=False)
                video = gr.Video(label="Morph", format=None, loop=True, interactive=False,
                                 elem_classes=["natural-video"], elem_id="domain-morph")
                morph_status = gr.Markdown(elem_id="domain-morph-status")

            def restyle(base_id: str) -> tuple:
                listed = _styles(manager, base_id)
                return (gr.update(choices=listed, value=[c for _, c in listed[:3]]),
                        gr.update(choices=listed, value=listed[0][1] if listed else None))

            base.change(restyle, [base], [domains, morph_to], api_visibility="private")
            code = face.inputs(psi)
            listen(go.click, styles, [base, domains, *code], [gallery, grid_file, status], status, api_name="domains")
            morph_inputs = [base, morph_to, *code, frames]
            self.renders.stoppable(morph_go, stop, lambda: listen(morph_go.click, morph, morph_inputs,
                                                                  [video, morph_status], morph_status,
                                                                  api_name="domain_morph"))
