"""Video generation speed: frames per second of a StyleGAN3-T walk at a released model's size,
with random weights (the speed does not depend on the weights, and no download is needed).

Two figures from one timed render, after an untimed batch that pays the first call's costs (filter
set-up, kernel choice, allocator growth): the time spent making frames (the walk's W interpolation,
synthesis and the copy to uint8 frames) and the whole render (the same plus H.264 encoding into an
MP4, until ffmpeg has finished the file). Taken from the same pass, the second can never be the
faster one, as two separate passes on a busy machine could make it look.
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import torch

from stylecore.engine.manager import resolve_device
from stylecore.video.render import Panel, VideoLimits, VideoSettings, frame_batches, plan_video
from stylecore.video.writer import Mp4Writer


def bench_video(res: int = 256, device: str = "auto", frames: int = 32, batch_size: int = 0,
                keyframes: int = 2) -> dict:
    """Time a looping `keyframes`-key walk of about `frames` frames; returns the figures as a dict."""
    from stylecore.engine.released import random_released_generator

    dev = resolve_device(device)
    G = random_released_generator("sg3t", res, dev)
    force_fp32 = dev.type != "cuda"  # the released models run their fp16 layers in fp16 on GPUs
    batch_size = batch_size or (16 if dev.type == "cuda" else 2)
    panel = Panel(G, force_fp32=force_fp32)
    settings = VideoSettings(seeds=tuple(range(keyframes)), frames_per_transition=math.ceil(frames / keyframes),
                             fps=60)
    plan = plan_video([panel], settings, VideoLimits(max_frames=100_000, max_side=16384))

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    next(frame_batches([panel], settings, plan, batch_size))  # warm-up: the same batches as the timed pass
    sync()
    synthesis = 0.0
    with tempfile.TemporaryDirectory(prefix="stylecore-bench-") as folder:
        path = Path(folder) / "bench.mp4"
        start = time.perf_counter()
        with Mp4Writer(path, plan.size, plan.fps) as writer:
            batches = frame_batches([panel], settings, plan, batch_size)
            while True:
                t0 = time.perf_counter()
                batch = next(batches, None)  # uint8 frames on the host: synchronised with the device
                synthesis += time.perf_counter() - t0
                if batch is None:
                    break
                writer.write(batch)
        total = time.perf_counter() - start
        size = path.stat().st_size
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    return {"res": res, "device": name, "frames": plan.frames, "batch_size": batch_size,
            "dtype": "float32" if force_fp32 else "float16 layers where the model has them",
            "synthesis_fps": plan.frames / synthesis, "video_fps": plan.frames / total, "mp4_bytes": size}
