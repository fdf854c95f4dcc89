"""StyleNeRF tab: a 3-D-aware face seen from a camera you move. The simple view asks for a seed
and where the camera looks from (yaw, pitch); the closed Advanced section holds variety, field of
view, render quality and geometry/appearance from two seeds; a second section renders an orbit
video. Endpoints: /stylenerf (one view) and /stylenerf_orbit (MP4).

The image follows the sliders (on release, latest value wins). The orbit event is a generator,
so the Stop button ends it (spaces/renders.py) and no half-written file is left behind.
"""
from __future__ import annotations

import functools
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import gradio as gr

from spaces.common import (
    SEED_INFO,
    default_model,
    listen,
    model_card_panel,
    model_label,
    offline_banner,
    on_gpu,
    parse_number,
    progress_callback,
    request_number,
    required_seed,
    shown,
    user_errors,
)
from spaces.renders import StoppableRenders
from stylecore.engine.manager import LoadedModel, ModelManager
from stylecore.video.nerf_views import (
    MAX_STEPS,
    ViewSettings,
    render_orbit_steps,
    render_view,
)

DEFAULT_STEPS = 40  # the web demo's quality; about 0.35 s per 256 px view on a 2-core CPU


def _given(value: Any, name: str, default: float, integer: bool = False) -> float:
    number = parse_number(value, name, integer=integer)
    return default if number is None else number


def _choices(manager: ModelManager) -> list[tuple[str, str]]:
    """StyleNeRF cards, and user-added cards whose architecture is decided when read."""
    return [(model_label(c), c.id) for c in manager.zoo.cards() if c.architecture in ("stylenerf", "auto")]


def _settings(truncation_psi: Any, yaw: Any, pitch: Any, fov: Any, steps: Any) -> ViewSettings:
    settings = ViewSettings(yaw=_given(yaw, "yaw", 0.0), pitch=_given(pitch, "pitch", 0.0),
                            fov=_given(fov, "field of view", 12.0),
                            steps=int(_given(steps, "samples per ray", DEFAULT_STEPS, integer=True)),
                            truncation_psi=_given(truncation_psi, "truncation psi", 0.7))
    settings.validate()
    return settings


def _seeds(seed: Any, mix_seeds: Any, appearance_seed: Any) -> tuple[int, Optional[int]]:
    """(geometry seed, appearance seed or None), from the one seed range of every tab; a seed left
    out (None or '') takes its default."""
    given = lambda value, default: default if value in (None, "") else value  # noqa: E731
    geometry = required_seed(given(seed, 1), "Seed")
    return geometry, required_seed(given(appearance_seed, 9), "Appearance seed") if mix_seeds else None


def _status(model: LoadedModel, settings: ViewSettings, seeds: tuple[int, Optional[int]], seconds: float,
            what: str) -> str:
    G = model.G
    kind = "untrained" if model.untrained else model.info.get("source", "")
    seed_text = f"seed {seeds[0]}" if seeds[1] is None else f"geometry seed {seeds[0]}, appearance seed {seeds[1]}"
    return (f"**{model.card.title}** ({G.img_resolution}x{G.img_resolution}, {kind}): {seed_text}; "
            f"yaw {math.degrees(0.5 * settings.yaw):+.0f} deg, pitch {math.degrees(0.3 * settings.pitch):+.0f} deg, "
            f"field of view {settings.fov:g} deg, {settings.steps}+{settings.steps} samples per ray; "
            f"{what} in {seconds:.2f} s on {model.device.type}.")


class StyleNerfTab:
    """The StyleNeRF tab: its layout and its events /stylenerf (one view) and /stylenerf_orbit (MP4)."""

    def __init__(self, manager: ModelManager):
        self.manager = manager
        self.default = default_model(manager, "stylenerf")
        self.renders = StoppableRenders()

    def stylenerf(self, model_id: str = "", seed: float = 1, truncation_psi: float = 0.7, yaw: float = 0.0,
                  pitch: float = 0.0, fov: float = 12.0, steps: float = DEFAULT_STEPS, mix_seeds: bool = False,
                  appearance_seed: float = 9, event: gr.EventData = None, progress: gr.Progress = gr.Progress()):
        """Render one view of a seed (geometry and appearance from two seeds when mix_seeds);
        yaw and pitch in [-1, 1] (0.5 and 0.3 radians per unit), field of view in degrees.
        Returns the image and a status line."""
        settings = _settings(truncation_psi, yaw, pitch, fov, steps)
        seeds = _seeds(seed, mix_seeds, appearance_seed)
        model = self.manager.get(model_id or self.default, progress=progress_callback(progress))
        start = time.perf_counter()
        image = render_view(model.G, seeds[0], seeds[1], settings, force_fp32=model.force_fp32)
        return shown(image, event), _status(model, settings, seeds, time.perf_counter() - start, "rendered")

    def orbit(self, model_id: str = "", seed: float = 1, truncation_psi: float = 0.7, pitch: float = 0.0,
              fov: float = 12.0, steps: float = DEFAULT_STEPS, mix_seeds: bool = False, appearance_seed: float = 9,
              frames: float = 36, fps: float = 24, yaw_range: float = 1.0, request: gr.Request = None,
              progress: gr.Progress = gr.Progress()):
        """Orbit the camera around one face into an MP4 (H.264); yields status lines, then the video."""
        settings = _settings(truncation_psi, 0.0, pitch, fov, steps)
        seeds = _seeds(seed, mix_seeds, appearance_seed)
        model = self.manager.get(model_id or self.default, progress=progress_callback(progress))
        folder = Path(tempfile.mkdtemp(prefix="stylecore-orbit-"))
        steps_gen = render_orbit_steps(model.G, folder / f"{model.card.id}-seed{seeds[0]}-orbit.mp4", seeds[0],
                                       seeds[1], settings, frames=int(_given(frames, "frames", 36, integer=True)),
                                       fps=_given(fps, "fps", 24.0), yaw_range=_given(yaw_range, "yaw range", 1.0),
                                       force_fp32=model.force_fp32, cancel=self.renders.cancel_flag(request))
        begin = time.perf_counter()
        path = yield from self.renders.drive(request, steps_gen, folder, progress, lambda m: (gr.skip(), m))
        if path is not None:  # None: stopped
            yield str(path), _status(model, settings, seeds, time.perf_counter() - begin, "orbit video rendered")

    def layout(self) -> None:
        """Lay out the tab in the current gr.Blocks and wire its events."""
        manager, default = self.manager, self.default
        view = on_gpu(manager, default, seconds=lambda a: 30)(user_errors(self.stylenerf))
        orbit = on_gpu(manager, default, seconds=lambda a: 20 + request_number(a, "frames", 36))(
            user_errors(self.orbit))

        with gr.Tab("StyleNeRF", id="stylenerf"):
            offline_banner(manager)
            gr.Markdown("3-D-aware faces: move the camera around a generated face. The image follows the sliders.")
            with gr.Row():
                with gr.Column(scale=1):
                    model = gr.Dropdown(choices=_choices(manager), value=default, label="StyleNeRF model",
                                        info="'not downloaded' models are fetched from the Hub on first use")
                    model_card_panel(manager, model)
                    seed = gr.Number(value=1, precision=0, label="Seed", info=f"which face: {SEED_INFO}")
                    yaw = gr.Slider(-1.0, 1.0, value=0.0, step=0.05, label="Yaw: turn left / right",
                                    info="moves the camera around the face; 1 = 29 degrees")
                    pitch = gr.Slider(-1.0, 1.0, value=0.0, step=0.05, label="Pitch: look from above / below",
                                      info="1 = 17 degrees")
                    go = gr.Button("Render view", variant="primary")
                    with gr.Accordion("Advanced", open=False):
                        psi = gr.Slider(-1.0, 2.0, value=0.7, step=0.05, label="Variety",
                                        info="truncation psi: 1 = full variety; lower = more typical faces")
                        fov = gr.Slider(6.0, 20.0, value=12.0, step=0.5, label="Field of view (degrees)",
                                        info="smaller zooms in")
                        steps = gr.Slider(4, MAX_STEPS, value=DEFAULT_STEPS, step=1,
                                          label="Render quality (samples per ray)",
                                          info="more is sharper and slower; the web demo uses 40")
                        mix = gr.Checkbox(value=False, label="Take the colours from a second seed",
                                          info="the seed above shapes the face, the second one colours it")
                        appearance = gr.Number(value=9, precision=0, label="Appearance seed", visible=False,
                                               info=SEED_INFO)
                with gr.Column(scale=2):
                    image = gr.Image(label="View", type="numpy", format="png", elem_id="stylenerf-view",
                                     interactive=False, height=448)
                    status = gr.Markdown(elem_id="stylenerf-status")
            with gr.Accordion("Orbit video", open=False):
                with gr.Row():
                    frames = gr.Slider(8, 120, value=36, step=1, label="Frames")
                    fps = gr.Slider(6, 60, value=24, step=1, label="Frames per second")
                    yaw_range = gr.Slider(0.0, 1.5, value=1.0, step=0.05, label="Yaw swing",
                                          info="how far the camera turns each way, in yaw units")
                with gr.Row():
                    orbit_go = gr.Button("Render orbit video")
                    stop = gr.Button("Stop", variant="stop", interactive=False)
                video = gr.Video(label="Orbit", format=None, loop=True, elem_id="stylenerf-orbit", interactive=False,
                                 elem_classes=["natural-video"])
                orbit_status = gr.Markdown(elem_id="stylenerf-orbit-status")

            view_inputs = [model, seed, psi, yaw, pitch, fov, steps, mix, appearance]
            listen(go.click, view, view_inputs, [image, status], status, api_name="stylenerf")
            follow = functools.partial(gr.on, [yaw.release, pitch.release, fov.release, psi.release, steps.release,
                                               seed.submit, mix.input, appearance.submit, model.input])
            listen(follow, view, view_inputs, [image, status], status, api_visibility="private",
                   trigger_mode="always_last", show_progress="minimal")
            mix.change(lambda on: gr.update(visible=on), [mix], [appearance], api_visibility="private")
            orbit_inputs = [model, seed, psi, pitch, fov, steps, mix, appearance, frames, fps, yaw_range]
            self.renders.stoppable(orbit_go, stop, lambda: listen(orbit_go.click, orbit, orbit_inputs,
                                                                  [video, orbit_status], orbit_status,
                                                                  api_name="stylenerf_orbit"))
