"""Video tab: latent walks through keyframe seeds or uploaded codes, StyleGAN3 camera paths, and
StyleGAN2 vs StyleGAN3 side by side to show texture sticking. Endpoint: /video.

The simple view asks for the seeds to walk through, how smooth, the camera path (StyleGAN3 models
only) and the side-by-side comparison; the closed Advanced section holds interpolation, space,
grid, variety, frame rate and GIF. The event is a generator that renders batch by batch; its Stop
ends the render and removes the partial file (spaces/renders.py)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Optional

import gradio as gr

from spaces.common import (
    SEED_INFO,
    count_seeds,
    default_model,
    listen,
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
from stylecore.codes.generate import GenerationSettings, is_stylegan3
from stylecore.codes.latents import parse_seeds
from stylecore.video.render import Panel, VideoLimits, VideoResult, VideoSettings, render_video_steps
from stylecore.video.paths import CameraPath

KIND_CHOICES = [("cubic: smooth, loops as gen_video.py", "cubic"), ("linear: straight lines", "linear"),
                ("spherical: keeps the distance from the average image", "spherical")]
SPACE_CHOICES = [("w: the style space (smooth)", "w"), ("z: the input noise (wilder)", "z")]
SOURCE_CHOICES = [("seeds", "seeds"), ("codes from a file (.npz)", "codes")]
CAMERA_CHOICES = [("still", "none"), ("circle", "circle"), ("swing left and right", "line"), ("rotate", "rotate"),
                  ("circle and rotate", "circle+rotate")]
RADIUS_PATHS, TURN_PATHS = ("circle", "line", "circle+rotate"), ("rotate", "circle+rotate")


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


def _panel_name(panel: Panel, camera: CameraPath) -> str:
    """A panel in the status line; a StyleGAN2 panel beside a camera path says that it stays still."""
    still = camera.moves and not is_stylegan3(panel.G)
    return f"{panel.label} (StyleGAN2: no camera path)" if still else panel.label


def _status(result: VideoResult, panels: list[Panel], camera: CameraPath) -> str:
    w, h = result.plan.size
    names = [_panel_name(p, camera) for p in panels]
    layout = f"left: {names[0]}, right: {names[1]}" if len(names) == 2 else names[0]
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
        """Render a latent walk to MP4 (and GIF); yields status lines, then the video, GIF and status.
        Side by side with a camera path, the camera moves the StyleGAN3 panel; a StyleGAN2 one walks still."""
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
            yield (str(result.path), str(result.gif_path) if result.gif_path else None,
                   _status(result, panels, settings.camera))

    def _seconds(self, a: dict) -> float:
        """GPU time for a /video request: frames times walks times panels."""
        transitions = count_seeds(a.get("seeds"), 64) * request_number(a, "grid_w", 1) * request_number(a, "grid_h", 1)
        panels = 2 if a.get("side_by_side") else 1
        return 20 + 0.2 * transitions * request_number(a, "frames_per_transition", 30) * panels

    def _load_compare_model(self, a: dict) -> None:
        if a.get("side_by_side"):
            self.manager.get(str(a.get("compare_id") or self.default_compare))

    def moves_camera(self, model_id: str) -> bool:
        """Whether the model can follow a camera path (StyleGAN3, or an architecture decided when read)."""
        card = self.manager.zoo.get(model_id) if model_id in self.manager.zoo else None
        return card is None or card.architecture in ("stylegan3", "auto")

    def camera_control(self, model_id: str, camera: str) -> dict:
        """The camera path only for models that can follow it; a hidden path is reset to 'still'."""
        can = self.moves_camera(model_id)
        return gr.update(visible=can, value=camera if can else "none")

    @staticmethod
    def path_controls(camera: str) -> tuple:
        """The radius and the turns only for the camera paths that use them."""
        return gr.update(visible=camera in RADIUS_PATHS), gr.update(visible=camera in TURN_PATHS)

    @staticmethod
    def source_controls(source: str) -> tuple:
        """Seeds and their variety for a walk through seeds, the upload for a walk through codes.
        Codes are walked in w, so the space goes back to w; choosing seeds clears an uploaded file,
        which would otherwise still be walked."""
        codes = source == "codes"
        upload = gr.update(visible=True) if codes else gr.update(visible=False, value=None)
        space = gr.update(visible=False, value="w") if codes else gr.update(visible=True)
        return gr.update(visible=not codes), upload, gr.update(visible=not codes), space

    def layout(self) -> None:
        """Lay out the tab in the current gr.Blocks and wire its events."""
        manager = self.manager
        choices = model_choices(manager)
        video = on_gpu(manager, self.default, seconds=self._seconds, prepare=self._load_compare_model)(
            user_errors(self.video))
        camera_shown = self.moves_camera(self.default)

        with gr.Tab("Video", id="video"):
            offline_banner(manager)
            with gr.Row():
                with gr.Column(scale=1):
                    model = gr.Dropdown(choices=choices, value=self.default, label="Model", elem_id="video-model",
                                        info="StyleGAN3 models can also move the camera")
                    model_card_panel(manager, model)
                    source = gr.Radio(SOURCE_CHOICES, value="seeds", label="Walk through",
                                      info="the video morphs from one keyframe image to the next")
                    seeds = gr.Textbox(value="0-2", label="Keyframe seeds",
                                       info=f"one keyframe per seed, e.g. 0-2 or 5, 9, 13; {SEED_INFO}")
                    codes = gr.File(label="Keyframe codes (.npz with 'w', e.g. from the Inversion tab)",
                                    file_types=[".npz"], type="filepath", visible=False)
                    frames = gr.Slider(1, 240, value=30, step=1, label="Frames per transition",
                                       info="frames from one keyframe to the next: more = a slower, smoother walk")
                    loop = gr.Checkbox(value=True, label="Loop back to the first keyframe")
                    camera = gr.Radio(CAMERA_CHOICES, value="none", label="Camera path (StyleGAN3)",
                                      visible=camera_shown, info="the view moves over the image during the video")
                    radius = gr.Slider(0.0, 0.5, value=0.1, step=0.01, label="Circle radius / swing",
                                       info="in image widths", visible=False)
                    turns = gr.Slider(-4.0, 4.0, value=1.0, step=0.25, label="Rotation turns",
                                      info="per video; negative = clockwise", visible=False)
                    side = gr.Checkbox(value=False, label="Side by side with StyleGAN2",
                                       info="the same walk on a second model at the left: StyleGAN2's fine detail "
                                            "sticks to the screen (texture sticking), StyleGAN3's moves with the "
                                            "image; a camera path moves only StyleGAN3")
                    compare = gr.Dropdown(choices=choices, value=self.default_compare, label="Left model",
                                          visible=False)
                    with gr.Row():
                        go = gr.Button("Render video", variant="primary")
                        stop = gr.Button("Stop", variant="stop", interactive=False)
                    with gr.Accordion("Advanced", open=False):
                        kind = gr.Radio(KIND_CHOICES, value="cubic", label="Interpolation")
                        space = gr.Radio(SPACE_CHOICES, value="w", label="Space")
                        grid_w = gr.Slider(1, 4, value=1, step=1, label="Grid columns",
                                           info="several walks at once: give columns x rows x keyframes seeds")
                        grid_h = gr.Slider(1, 4, value=1, step=1, label="Grid rows")
                        psi = gr.Slider(-1.0, 2.0, value=0.7, step=0.05, label="Variety",
                                        info="truncation psi: 1 = full variety; lower = more typical images")
                        fps = gr.Slider(1, 60, value=30, step=1, label="Frames per second")
                        gif = gr.Checkbox(value=False, label="Also make a GIF")
                with gr.Column(scale=2):
                    out_video = gr.Video(label="Video", format=None, loop=True, elem_id="video-output",
                                         interactive=False, elem_classes=["natural-video"])
                    out_gif = gr.File(label="GIF", visible=False)
                    status = gr.Markdown(elem_id="video-status")

            model.change(self.camera_control, [model, camera], [camera], api_visibility="private")
            camera.change(self.path_controls, [camera], [radius, turns], api_visibility="private")
            source.change(self.source_controls, [source], [seeds, codes, psi, space], api_visibility="private")
            side.change(lambda on: gr.update(visible=on), [side], [compare], api_visibility="private")
            gif.change(lambda on: gr.update(visible=on), [gif], [out_gif], api_visibility="private")
            inputs = [model, compare, seeds, codes, kind, space, loop, frames, grid_w, grid_h, psi, fps, camera,
                      radius, turns, side, gif]
            self.renders.stoppable(go, stop, lambda: listen(go.click, video, inputs, [out_video, out_gif, status],
                                                            status, api_name="video"))
