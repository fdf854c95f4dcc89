"""Video tab: latent walks through keyframe seeds or uploaded codes, StyleGAN3 camera paths, and
StyleGAN2 vs StyleGAN3 side by side to show texture sticking. Endpoint: /video.

The event is a generator that renders batch by batch; its Stop ends the render and removes the
partial file (spaces/renders.py)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Optional

import gradio as gr

from spaces.common import (
    count_seeds,
    default_model,
    model_card_panel,
    model_choices,
    offline_banner,
    on_gpu,
    parse_number,
    progress_callback,
    request_number,
    user_errors,
)
from spaces.renders import StoppableRenders
from stylecore.engine.manager import ModelManager
from stylecore.codes.generate import GenerationSettings
from stylecore.codes.latents import parse_seeds
from stylecore.video.render import Panel, VideoLimits, VideoResult, VideoSettings, render_video_steps
from stylecore.video.paths import CAMERA_PATHS, CameraPath

KIND_CHOICES = [("cubic (loops, as gen_video.py)", "cubic"), ("linear", "linear"), ("spherical", "spherical")]


def _given(value: Any, name: str, default: float, integer: bool = False) -> float:
    """An API caller may leave a number out (None): then the default; 0 stays 0 and is checked later."""
    number = parse_number(value, name, integer=integer)
    return default if number is None else number


def _settings(seeds: Any, codes: Any, kind: Any, space: Any, loop: Any, frames_per_transition: Any, grid_w: Any,
              grid_h: Any, psi: Any, fps: Any, camera: Any, radius: Any, turns: Any, gif: Any) -> VideoSettings:
    """Check what the UI or the API sent and turn it into one VideoSettings."""
    count = lambda v, name, default: _given(v, name, default, integer=True)  # noqa: E731
    return VideoSettings(
        seeds=tuple(parse_seeds(seeds if seeds not in (None, "") else "0-2", max_count=1024)),
        codes_path=str(codes) if codes else None,
        kind=str(kind or "cubic"), space=str(space or "w"), loop=bool(loop),
        frames_per_transition=count(frames_per_transition, "frames per transition", 30),
        grid=(count(grid_w, "grid columns", 1), count(grid_h, "grid rows", 1)),
        fps=_given(fps, "fps", 30.0),
        camera=CameraPath(str(camera or "none"), _given(radius, "camera radius", 0.1),
                          _given(turns, "rotation turns", 1.0)),
        generation=GenerationSettings(truncation_psi=_given(psi, "truncation psi", 1.0)),
        gif=bool(gif))


def _status(result: VideoResult, panels: list[Panel]) -> str:
    w, h = result.plan.size
    layout = f"left: {panels[0].label}, right: {panels[1].label}" if len(panels) == 2 else panels[0].label
    return (f"{result.plan.frames} frames, {w}x{h} at {result.plan.fps:g} fps ({result.plan.seconds:.1f} s); "
            f"rendered in {result.render_seconds:.1f} s ({result.frames_per_second:.1f} frames/s); {layout}")


class VideoTab:
    """The Video tab: its layout and its event /video (a render that its Stop button ends)."""

    def __init__(self, manager: ModelManager):
        self.manager = manager
        self.default = default_model(manager, "video")
        self.default_compare = default_model(manager, "video-compare")
        self.renders = StoppableRenders()

    def video(self, model_id: str = "", compare_id: str = "", seeds: str = "0-2", codes: Optional[str] = None,
              kind: str = "cubic", space: str = "w", loop: bool = True, frames_per_transition: float = 30,
              grid_w: float = 1, grid_h: float = 1, truncation_psi: float = 0.7, fps: float = 30,
              camera: str = "none", radius: float = 0.1, turns: float = 1.0, side_by_side: bool = False,
              gif: bool = False, request: gr.Request = None, progress: gr.Progress = gr.Progress()):
        """Render a latent walk to MP4 (and GIF); yields status lines, then the video, GIF and status."""
        settings = _settings(seeds, codes, kind, space, loop, frames_per_transition, grid_w, grid_h,
                             truncation_psi, fps, camera, radius, turns, gif)
        ids = ([compare_id or self.default_compare] if side_by_side else []) + [model_id or self.default]
        panels = []
        for mid in ids:
            model = self.manager.get(mid, progress=progress_callback(progress))
            panels.append(Panel(model.G, model.force_fp32, label=model.card.id))
        folder = Path(tempfile.mkdtemp(prefix="stylecore-video-"))
        steps = render_video_steps(panels, settings, folder / f"{panels[-1].label}-walk.mp4", VideoLimits.from_env(),
                                   batch_size=16 if self.manager.device.type == "cuda" else 4,
                                   cancel=self.renders.cancel_flag(request))
        result = yield from self.renders.drive(request, steps, folder, progress, lambda m: (gr.skip(), gr.skip(), m))
        if result is not None:  # None: stopped
            yield str(result.path), str(result.gif_path) if result.gif_path else None, _status(result, panels)

    def stop(self, request: gr.Request) -> None:
        self.renders.stop(request)

    def _seconds(self, a: dict) -> float:
        """GPU time for a /video request: frames times walks times panels."""
        transitions = count_seeds(a.get("seeds"), 64) * request_number(a, "grid_w", 1) * request_number(a, "grid_h", 1)
        panels = 2 if a.get("side_by_side") else 1
        return 20 + 0.2 * transitions * request_number(a, "frames_per_transition", 30) * panels

    def _load_compare_model(self, a: dict) -> None:
        if a.get("side_by_side"):
            self.manager.get(str(a.get("compare_id") or self.default_compare))

    def layout(self) -> None:
        """Lay out the tab in the current gr.Blocks and wire its events."""
        manager = self.manager
        choices = model_choices(manager)
        video = on_gpu(manager, self.default, seconds=self._seconds, prepare=self._load_compare_model)(
            user_errors(self.video))

        with gr.Tab("Video", id="video"):
            offline_banner(manager)
            with gr.Row():
                with gr.Column(scale=1):
                    model = gr.Dropdown(choices=choices, value=self.default,
                                        label="Model (StyleGAN3 for camera paths)")
                    model_card_panel(manager, model)
                    seeds = gr.Textbox(value="0-2", label="Keyframe seeds",
                                       info="grid columns x rows x keyframes of them, one row of keyframes per walk")
                    codes = gr.File(label="Or keyframe codes (.npz with 'w', walked in w)", file_types=[".npz"],
                                    type="filepath")
                    with gr.Row():
                        kind = gr.Radio(KIND_CHOICES, value="cubic", label="Interpolation")
                        space = gr.Radio(["w", "z"], value="w", label="Space")
                    loop = gr.Checkbox(value=True, label="Loop back to the first keyframe")
                    frames = gr.Slider(1, 240, value=30, step=1, label="Frames per transition")
                    with gr.Row():
                        grid_w = gr.Slider(1, 4, value=1, step=1, label="Grid columns")
                        grid_h = gr.Slider(1, 4, value=1, step=1, label="Grid rows")
                    psi = gr.Slider(-1.0, 2.0, value=0.7, step=0.05, label="Truncation psi (seeds only)")
                    fps = gr.Slider(1, 60, value=30, step=1, label="Frames per second")
                    with gr.Accordion("StyleGAN3 camera path", open=False):
                        camera = gr.Radio(list(CAMERA_PATHS), value="none", label="Camera path")
                        radius = gr.Slider(0.0, 0.5, value=0.1, step=0.01, label="Circle radius / line amplitude",
                                           info="in image widths")
                        turns = gr.Slider(-4.0, 4.0, value=1.0, step=0.25, label="Rotation speed",
                                          info="full turns over the video; whole turns loop seamlessly")
                    with gr.Accordion("StyleGAN2 vs StyleGAN3 side by side (texture sticking)", open=False):
                        side = gr.Checkbox(value=False, label="Render the same walk with a second model on the left")
                        compare = gr.Dropdown(choices=choices, value=self.default_compare,
                                              label="Left model (StyleGAN2)")
                    gif = gr.Checkbox(value=False, label="Also make a GIF")
                    with gr.Row():
                        go = gr.Button("Render video", variant="primary")
                        stop = gr.Button("Stop", variant="stop")
                with gr.Column(scale=2):
                    out_video = gr.Video(label="Video", format=None, loop=True, elem_id="video-output",
                                         interactive=False)
                    out_gif = gr.File(label="GIF")
                    status = gr.Markdown(label="Status", elem_id="video-status")

            event = go.click(video, [model, compare, seeds, codes, kind, space, loop, frames, grid_w, grid_h, psi,
                                     fps, camera, radius, turns, side, gif], [out_video, out_gif, status],
                             api_name="video")
            stop.click(self.stop, None, None, cancels=[event], queue=False, api_visibility="private")
