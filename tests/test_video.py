"""Videos: walks, camera paths, side by side, the MP4/GIF files, cancel and limits (demo networks)."""
from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import scipy.interpolate
import torch
from PIL import Image

from stylecore.video import writer as video_writer
from stylecore.__main__ import main
from stylecore.engine.demo import build_demo_generator
from stylecore.codes.generate import GenerationSettings, generate_images, settings_ws
from stylecore.codes.latents import save_latents
from stylecore.progress import Cancelled
from stylecore.video.render import (
    Panel,
    VideoLimits,
    VideoSettings,
    frame_batches,
    plan_video,
    render_video,
    render_video_steps,
)
from stylecore.video.paths import CameraPath, KeyframeWalk, num_frames
from stylecore.video.writer import Mp4Writer


@pytest.fixture(scope="module")
def sg2():
    return build_demo_generator("stylegan2").eval()


@pytest.fixture(scope="module")
def sg3():
    return build_demo_generator("stylegan3").eval()


def decode(path) -> tuple[dict, np.ndarray]:
    """(metadata, frames [N, H, W, 3]) of a video file, read back through ffmpeg."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    frames = np.stack([np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader])
    return meta, frames


def close_to(decoded: np.ndarray, frames: np.ndarray) -> bool:
    """Lossy H.264 (and yuv420p's half-size colour) matches the frames sent in 4x4 block averages."""
    def blocks(a):
        n, h, w, c = a.shape
        return a[:, :h // 4 * 4, :w // 4 * 4].astype(float).reshape(n, h // 4, 4, w // 4, 4, c).mean(axis=(2, 4))
    return decoded.shape == frames.shape and np.abs(blocks(decoded) - blocks(frames)).mean() < 4


def all_frames(panels, settings) -> np.ndarray:
    plan = plan_video(panels, settings, VideoLimits())
    return np.concatenate(list(frame_batches(panels, settings, plan, batch_size=4)))


def test_mp4_decodes_with_the_frames_size_and_fps_asked(sg2, tmp_path):
    settings = VideoSettings(seeds=(0, 1, 2, 3), grid=(2, 1), frames_per_transition=5, fps=24)
    result = render_video(sg2, settings, tmp_path / "walk.mp4")
    meta, frames = decode(result.path)
    assert (meta["codec"], meta["pix_fmt"].split("(")[0], meta["fps"]) == ("h264", "yuv420p", 24.0)
    assert meta["size"] == (128, 64) == result.plan.size
    assert len(frames) == 10 == result.plan.frames
    expected = all_frames([sg2], settings)
    assert close_to(frames, expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.mp4"]  # no temporary file left
    with open(result.path, "rb") as f:  # +faststart: the index (moov) comes before the media data (mdat)
        head = f.read(4096)
    assert 0 <= head.find(b"moov") < max(head.find(b"mdat"), 4096)


def test_odd_frame_sizes_are_padded_to_even(tmp_path):
    with Mp4Writer(tmp_path / "odd.mp4", (33, 17), fps=10) as out:
        out.write(np.full((3, 17, 33, 3), 200, np.uint8))
    meta, frames = decode(tmp_path / "odd.mp4")
    assert meta["size"] == (34, 18) and len(frames) == 3
    with pytest.raises(ValueError, match="uint8"):
        with Mp4Writer(tmp_path / "bad.mp4", (32, 16), fps=10) as out:
            out.write(np.zeros((1, 16, 32, 3), np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]


@pytest.mark.parametrize("kind", ["cubic", "linear", "spherical"])
@pytest.mark.parametrize("loop", [True, False])
def test_walks_pass_through_every_keyframe(kind, loop):
    keys = torch.randn(2, 4, 3, 8)
    walk = KeyframeWalk(keys, kind, frames_per_transition=6, loop=loop)
    assert walk.num_frames == num_frames(4, 6, loop) == (24 if loop else 19)
    codes = walk(range(walk.num_frames))
    assert codes.shape == (walk.num_frames, 2, 3, 8)
    for k in range(4):
        assert torch.allclose(codes[6 * k], keys[:, k], atol=1e-5)


def test_cubic_loop_is_the_gen_video_spline(sg2):
    """gen_video.py: keyframes tiled twice on each side, scipy's cubic interp1d, frame i at i / w_frames."""
    ws = settings_ws(sg2, [0, 1, 2], GenerationSettings(), torch.device("cpu")).detach()
    walk = KeyframeWalk(ws[None], "cubic", frames_per_transition=7, loop=True)
    x = np.arange(-3 * 2, 3 * 3)
    interp = scipy.interpolate.interp1d(x, np.tile(ws.numpy(), [5, 1, 1]), kind="cubic", axis=0)
    expected = np.stack([interp(i / 7) for i in range(21)])
    assert np.allclose(walk(range(21))[:, 0].numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["cubic", "linear", "spherical"])
def test_looping_walk_leads_from_its_last_frame_back_into_the_first(sg2, kind):
    settings = VideoSettings(seeds=(0, 1, 2), kind=kind, frames_per_transition=8, fps=30)
    frames = all_frames([sg2], settings).astype(float)
    steps = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    closing = np.abs(frames[0] - frames[-1]).mean()  # the step a looping player takes
    assert 0 < closing <= 1.5 * steps.max()
    assert closing >= 0.5 * np.median(steps)  # the first frame is not repeated at the end either


def test_translate_path_frames_equal_single_generations(sg3, tmp_path):
    camera = CameraPath("circle+rotate", radius=0.2, turns=1)
    settings = VideoSettings(seeds=(5,), frames_per_transition=4, camera=camera,
                             generation=GenerationSettings(truncation_psi=0.7, translate=(0.05, 0.0)))
    buffer = sg3.synthesis.input.transform.clone()
    result = render_video(Panel(sg3, label="sg3"), settings, tmp_path / "path.mp4")
    frames = all_frames([sg3], settings)
    assert torch.equal(sg3.synthesis.input.transform, buffer), "the model's transform buffer was changed"
    assert len(frames) == 4
    for i, frame in enumerate(frames):
        (tx, ty), degrees = camera.pose(i / 4, (0.05, 0.0))
        single = generate_images(sg3, [5], GenerationSettings(truncation_psi=0.7, translate=(tx, ty),
                                                              rotate_degrees=degrees))[0]
        assert np.abs(frame.astype(int) - single).max() <= 1, f"frame {i}"
    assert not np.array_equal(frames[0], frames[1])  # the camera does move
    _, decoded = decode(result.path)
    assert close_to(decoded, frames)


def test_side_by_side_renders_the_same_walk_with_each_model(sg2, sg3):
    """The tab's default comparison (StyleGAN2 left, StyleGAN3 right) with a camera path: the StyleGAN3
    panel follows the path, the StyleGAN2 one walks still; with no StyleGAN3 panel a path is refused."""
    still = VideoSettings(seeds=(0, 1), frames_per_transition=1, space="z", kind="spherical")
    moving = replace(still, camera=CameraPath("circle", radius=0.25))
    both = all_frames([Panel(sg2, label="sg2"), Panel(sg3, label="sg3")], moving)
    plan = plan_video([Panel(sg2), Panel(sg3)], moving, VideoLimits())
    assert both.shape == (2, 64, 64 * 2 + plan.gap, 3) and plan.gap > 0
    assert np.array_equal(both[:, :, :64], all_frames([Panel(sg2)], still))
    assert np.array_equal(both[:, :, 64 + plan.gap:], all_frames([Panel(sg3)], moving))
    assert (both[:, :, 64:64 + plan.gap] == 0).all()
    with pytest.raises(ValueError, match="sg2 is StyleGAN2"):
        plan_video([Panel(sg2), Panel(sg2, label="sg2")], VideoSettings(camera=CameraPath("rotate")), VideoLimits())


def test_uploaded_codes_are_the_keyframes(sg2, tmp_path):
    ws = settings_ws(sg2, [3, 4], GenerationSettings(truncation_psi=0.5), torch.device("cpu"))
    codes = save_latents(tmp_path / "codes.npz", ws)
    settings = VideoSettings(codes_path=str(codes), kind="linear", loop=False, frames_per_transition=3)
    frames = all_frames([sg2], settings)
    keys = generate_images(sg2, [3, 4], GenerationSettings(truncation_psi=0.5))
    assert len(frames) == 4
    assert np.abs(frames[0].astype(int) - keys[0]).max() <= 1 and np.abs(frames[-1].astype(int) - keys[1]).max() <= 1
    with pytest.raises(ValueError, match="walk them in w"):
        plan_video([sg2], VideoSettings(codes_path=str(codes), space="z"), VideoLimits())


def test_cancel_leaves_no_file(sg2, tmp_path):
    stop = threading.Event()
    settings = VideoSettings(seeds=(0, 1), frames_per_transition=8)
    with pytest.raises(Cancelled):
        render_video(sg2, settings, tmp_path / "cancelled.mp4", batch_size=4, progress=lambda f, m: stop.set(),
                     cancel=stop)
    steps = render_video_steps(sg2, settings, tmp_path / "stopped.mp4", batch_size=4)
    next(steps)
    steps.close()  # what Gradio's Stop button does to the event's generator
    with pytest.raises(Cancelled):
        render_video(sg2, settings, tmp_path / "never.mp4", cancel=lambda: True)
    assert list(tmp_path.iterdir()) == []


def test_limits_are_checked_before_any_work(sg2, sg3, tmp_path, monkeypatch):
    limits = VideoLimits(max_frames=20, max_side=128, max_cells=4)
    cases = [
        (VideoSettings(seeds=(0, 1), frames_per_transition=11), "22 frames is more than the limit of 20"),
        (VideoSettings(seeds=tuple(range(9)), grid=(3, 3), frames_per_transition=1), "at most 4"),
        (VideoSettings(seeds=(0, 1, 2), grid=(2, 1), frames_per_transition=1), "multiple of 2"),
        (VideoSettings(seeds=(0, 1, 2, 3), grid=(4, 1), frames_per_transition=1), "pixels per side"),
        (VideoSettings(seeds=(0,), frames_per_transition=1, fps=0), "fps"),
        (VideoSettings(seeds=(0,), frames_per_transition=1, kind="bezier"), "interpolation"),
        (VideoSettings(seeds=(0,), frames_per_transition=1, camera=CameraPath("circle")), "StyleGAN2"),
        (VideoSettings(seeds=(0,), frames_per_transition=21), "frames per transition"),
    ]
    for settings, message in cases:
        with pytest.raises(ValueError, match=message):
            render_video(sg2, settings, tmp_path / "x.mp4", limits=limits)
    monkeypatch.setenv("STYLECORE_VIDEO_MAX_FRAMES", "5")
    with pytest.raises(ValueError, match="limit of 5"):
        render_video(sg2, VideoSettings(seeds=(0, 1), frames_per_transition=3), tmp_path / "x.mp4")
    monkeypatch.setenv("STYLECORE_VIDEO_MAX_FRAMES", "lots")
    with pytest.raises(ValueError, match="STYLECORE_VIDEO_MAX_FRAMES must be a whole number"):
        VideoLimits.from_env()
    monkeypatch.delenv("STYLECORE_VIDEO_MAX_FRAMES")
    monkeypatch.setattr(video_writer.shutil, "disk_usage", lambda p: type("U", (), {"free": 1000})())
    with pytest.raises(OSError, match="not enough free disk space"):
        render_video(sg2, VideoSettings(seeds=(0,), frames_per_transition=2), tmp_path / "x.mp4")
    assert list(tmp_path.iterdir()) == []


def test_gif_is_made_beside_the_mp4(sg2, tmp_path):
    settings = VideoSettings(seeds=(0, 1), grid=(2, 1), frames_per_transition=6, fps=60, gif=True)
    result = render_video(sg2, settings, tmp_path / "walk.mp4", limits=VideoLimits(gif_max_side=64))
    gif = Image.open(result.gif_path)
    assert gif.size == (64, 32) and gif.info.get("loop") == 0
    assert gif.n_frames == 3 and gif.info["duration"] >= 20  # 60 fps capped at 30 for browsers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.gif", "walk.mp4"]


def test_command_line_video(tmp_path, capsys):
    out = tmp_path / "cli.mp4"
    assert main(["video", "--model", "demo", "--seeds", "0-1", "--frames-per-transition", "2", "--fps", "12",
                 "--kind", "linear", "--device", "cpu", "--out", str(out)]) == 0
    meta, frames = decode(out)
    assert len(frames) == 4 and meta["fps"] == 12.0
    assert "wrote" in capsys.readouterr().out
    assert main(["video", "--model", "demo", "--camera", "rotate", "--device", "cpu", "--out", str(out)]) == 2
    assert "StyleGAN3" in capsys.readouterr().err


DISK_FULL_SCRIPT = r"""
import resource, sys
from pathlib import Path
import numpy as np
from stylecore.video.writer import Mp4Writer
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))  # the 'disk' fills after 64 KiB
target = Path(sys.argv[1])
rng = np.random.default_rng(0)
try:
    with Mp4Writer(target, (256, 256), fps=30) as writer:
        for _ in range(40):
            writer.write(rng.integers(0, 256, (4, 256, 256, 3), dtype=np.uint8))
except OSError as exc:
    print("ERROR", exc)
"""


def test_disk_full_while_writing_leaves_no_file_and_a_clear_error(tmp_path):
    """ffmpeg runs out of space mid-video (a file-size limit stands in for a full disk): the
    writer reports it and neither the video nor its temporary file is left behind."""
    import subprocess
    import sys

    target = tmp_path / "out" / "walk.mp4"
    target.parent.mkdir()
    done = subprocess.run([sys.executable, "-c", DISK_FULL_SCRIPT, str(target)], capture_output=True, text=True,
                          timeout=120, cwd=str(Path(__file__).resolve().parent.parent))
    assert "ERROR ffmpeg" in done.stdout, done.stdout + done.stderr
    assert list(target.parent.iterdir()) == []
