"""Writing frames to browser-playable files without ever leaving a half-written one behind.

MP4s are H.264 in yuv420p with the index at the front (`+faststart`), which every current
browser plays; frames go to ffmpeg (the binary shipped in the imageio-ffmpeg wheel, so no
system ffmpeg is needed) through a pipe, into a temporary file beside the target that is
renamed into place only once ffmpeg has finished. GIFs are made from the finished MP4 in two
ffmpeg passes (palette, then dithering), so no frame is ever buffered in memory.
"""
from __future__ import annotations

import itertools
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Generator, Iterable
from pathlib import Path
from types import TracebackType
from typing import Optional, Union

import numpy as np

from stylecore.progress import Cancelled, ShouldStop, stop_requested

GIF_MAX_FPS = 30  # browsers slow down GIF frame delays under 2/100 s; 30 fps stays well clear
MP4_BYTES_PER_PIXEL = 0.1  # generous upper bound for CRF 18 H.264 of generated images (about 1/30 of raw)
GIF_BYTES_PER_PIXEL = 0.6


def ffmpeg_exe() -> str:
    """The ffmpeg of imageio-ffmpeg (its own wheel binary, or IMAGEIO_FFMPEG_EXE)."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a broken install
        raise OSError("video output needs the imageio-ffmpeg package: pip install imageio-ffmpeg") from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


def even_size(width: int, height: int) -> tuple[int, int]:
    """yuv420p needs even sides: odd frames are padded by one pixel."""
    return width + width % 2, height + height % 2


def _temp_beside(target: Path, suffix: str) -> Path:
    """A new hidden file next to `target` (same disk, so the final rename is atomic), created with
    the usual permissions rather than mkstemp's owner-only ones, since it becomes the result."""
    for _ in range(100):
        path = target.parent / f".{target.stem}-{secrets.token_hex(6)}.part{suffix}"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return path
        except FileExistsError:
            continue
    raise OSError(f"cannot create a temporary file in {target.parent}")


def check_free_space(folder: Union[str, Path], needed: int) -> None:
    """Refuse up front when the output folder's disk clearly cannot take the result."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OSError(f"not enough free disk space in {folder}: the video needs about {needed / 2**20:.0f} MiB, "
                      f"{free / 2**20:.0f} MiB are free; ask for fewer frames or a smaller size")


def estimated_bytes(width: int, height: int, frames: int, gif_size: Optional[tuple[int, int]] = None,
                    gif_frames: int = 0) -> int:
    """A rough upper bound of the disk a video (and its GIF) takes, temporary copies included."""
    total = width * height * frames * MP4_BYTES_PER_PIXEL
    if gif_size is not None:
        total += gif_size[0] * gif_size[1] * gif_frames * GIF_BYTES_PER_PIXEL
    return int(total) + 16 * 2 ** 20


class Mp4Writer:
    """`with Mp4Writer(path, (w, h), fps) as out: out.write(frames)`; the file appears at `path` only
    when the block ends without an exception (a cancel, a closed generator, Ctrl-C included)."""

    def __init__(self, path: Union[str, Path], size: tuple[int, int], fps: float, crf: int = 18,
                 preset: str = "medium"):
        self.path = Path(path)
        self.size = (int(size[0]), int(size[1]))
        self.padded = even_size(*self.size)
        self.fps = float(fps)
        self.crf = crf
        self.preset = preset
        self.frames = 0
        self._temp: Optional[Path] = None
        self._proc: Optional[subprocess.Popen] = None

    def __enter__(self) -> "Mp4Writer":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._temp = _temp_beside(self.path, ".mp4")
        w, h = self.padded
        cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", "-nostdin",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{self.fps:.6g}", "-i", "-",
               "-an", "-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf), "-pix_fmt", "yuv420p",
               "-movflags", "+faststart", "-f", "mp4", str(self._temp)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def write(self, frames: np.ndarray) -> None:
        """Append uint8 frames [N, H, W, 3] (or [N, H, W] grey) of the size given at the start."""
        if frames.ndim == 3:
            frames = np.repeat(frames[..., None], 3, axis=-1)
        if frames.dtype != np.uint8 or frames.shape[1:] != (self.size[1], self.size[0], 3):
            raise ValueError(f"frames must be uint8 [N, {self.size[1]}, {self.size[0]}, 3], "
                             f"got {frames.dtype} {list(frames.shape)}")
        if self.padded != self.size:
            pad = ((0, 0), (0, self.padded[1] - self.size[1]), (0, self.padded[0] - self.size[0]), (0, 0))
            frames = np.pad(frames, pad, mode="edge")
        assert self._proc is not None and self._proc.stdin is not None, "use Mp4Writer in a with block"
        try:
            self._proc.stdin.write(np.ascontiguousarray(frames).tobytes())
        except BrokenPipeError:
            raise OSError(f"ffmpeg stopped while writing {self.path.name}: {self._stderr()}") from None
        self.frames += len(frames)

    def _stderr(self) -> str:
        assert self._proc is not None
        if self._proc.stderr is None:
            return ""
        try:
            return (self._proc.stderr.read() or b"").decode(errors="replace").strip()[-2000:]
        except (OSError, ValueError):
            return ""

    def __exit__(self, exc_type: Optional[type], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        proc, temp = self._proc, self._temp
        assert proc is not None and temp is not None
        try:
            if exc_type is None:
                if self.frames == 0:
                    raise ValueError("no frames were written")
                proc.stdin.close()
                rc = proc.wait()
                if rc != 0:
                    raise OSError(f"ffmpeg failed with code {rc} writing {self.path.name}: {self._stderr()}")
                os.replace(temp, self.path)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stderr):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
            temp.unlink(missing_ok=True)


def mp4_steps(path: Union[str, Path], frames: Iterable[np.ndarray], total: int, fps: float,
              cancel: ShouldStop = None) -> Generator[tuple[float, str], None, Path]:
    """Write images [H, W, 3] to an MP4 at `path` as they are made, yielding (fraction, message) after
    each of the `total`; returns the path. The file appears only when complete: `cancel` (checked after
    each frame, before yielding: a cancelled caller may never resume this generator) raises Cancelled
    and leaves nothing behind, as does closing the generator."""
    images = iter(frames)
    first = next(images, None)
    if first is None:
        raise ValueError("no frames to write")
    start = time.perf_counter()
    with Mp4Writer(path, (first.shape[1], first.shape[0]), fps) as writer:
        for k, frame in enumerate(itertools.chain([first], images)):
            writer.write(frame[None])
            if stop_requested(cancel):
                raise Cancelled("the video was stopped; no file was written")
            rate = (k + 1) / max(time.perf_counter() - start, 1e-9)
            yield (k + 1) / total, f"rendered frame {k + 1} of {total} ({rate:.2f} frames/s)"
    return Path(path)


def mp4_to_gif(mp4: Union[str, Path], gif: Union[str, Path], max_side: int = 512, fps: Optional[float] = None) -> Path:
    """Convert a finished MP4 into a looping GIF no larger than `max_side`, at most GIF_MAX_FPS."""
    mp4, gif = Path(mp4), Path(gif)
    rate = min(float(fps or GIF_MAX_FPS), GIF_MAX_FPS)
    scale = (f"fps={rate:.6g},scale='min({max_side},iw)':'min({max_side},ih)':"
             "force_original_aspect_ratio=decrease:flags=lanczos")
    palette = _temp_beside(gif, ".png")
    temp = _temp_beside(gif, ".gif")
    try:
        for cmd in ([ffmpeg_exe(), "-y", "-loglevel", "error", "-nostdin", "-i", str(mp4),
                     "-vf", f"{scale},palettegen=stats_mode=diff", "-update", "1", "-frames:v", "1", str(palette)],
                    [ffmpeg_exe(), "-y", "-loglevel", "error", "-nostdin", "-i", str(mp4), "-i", str(palette),
                     "-lavfi", f"{scale}[v];[v][1:v]paletteuse=dither=sierra2_4a", "-loop", "0", "-f", "gif",
                     str(temp)]):
            done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if done.returncode != 0:
                raise OSError(f"ffmpeg failed making {gif.name}: {done.stderr.decode(errors='replace')[-2000:]}")
        os.replace(temp, gif)
        return gif
    finally:
        palette.unlink(missing_ok=True)
        temp.unlink(missing_ok=True)
