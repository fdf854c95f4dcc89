"""Command line: `stylecore` (installed with `pip install -e .`) or `python -m stylecore`, with the
sub-commands models, generate, video, invert, convert and bench.

Results go to stdout, progress to stderr on one line that is rewritten in place and always ended
before anything else is printed. Files are named by model and seed, under out/ of the current folder
unless told otherwise, so that runs of different models or seeds never overwrite each other.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from stylecore.engine.threads import configure_environment

if TYPE_CHECKING:  # the parser and --help import no torch
    from stylecore.engine.manager import LoadedModel, ModelManager
    from stylecore.engine.zoo import Zoo
    from stylecore.video.render import Panel

configure_environment()  # the OpenMP wait policy: before anything imports torch

OUT = Path("out")  # the default output folder, in the current folder (git-ignored in the checkout)


class StatusLine:
    """The progress of the running command: one stderr line rewritten in place (a `Progress`).

    `end()` closes the line, so that a result or an error printed next starts on a fresh line rather
    than after the progress text.
    """

    def __init__(self) -> None:
        self._width = 0  # characters on the open line; 0 when none is open

    def __call__(self, fraction: float, message: str) -> None:
        text = f"[{fraction:4.0%}] {message}"
        if sys.stderr.isatty():  # a wrapped line could not be rewritten with \r
            text = text[:shutil.get_terminal_size().columns - 1]
        sys.stderr.write("\r" + text.ljust(self._width))  # padded over the longer text it replaces
        sys.stderr.flush()
        self._width = max(len(text), 1)

    def end(self) -> None:
        if self._width:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._width = 0


STATUS = StatusLine()


class _LogLines(logging.Handler):
    """Log records (and Python warnings) on stderr, each on a line of its own: the progress line is ended
    first, so that an engine's warning never lands in the middle of it."""

    def emit(self, record: logging.LogRecord) -> None:
        STATUS.end()
        sys.stderr.write(self.format(record) + "\n")


def _count(n: int, noun: str) -> str:
    """'1 image', '4 images'."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _seeds_name(seeds: Sequence[int]) -> str:
    """The seeds part of a file name: 'seed0007' for one, 'seeds0000-0003' for several (first and last)."""
    return f"seed{seeds[0]:04d}" if len(seeds) == 1 else f"seeds{seeds[0]:04d}-{seeds[-1]:04d}"


def _zoo(args: argparse.Namespace) -> Zoo:
    """The built-in model cards and those of --models."""
    from stylecore.engine.zoo import Zoo

    return Zoo.from_sources(args.models)


def _load(manager: ModelManager, spec: str) -> LoadedModel:
    """The loaded model of a zoo id, or of a spec (hf://..., an https URL, a path) added to the zoo first."""
    zoo = manager.zoo
    return manager.get(spec if spec in zoo else zoo.add_spec(spec).id, progress=STATUS)


def _pin(card) -> str:
    """How a file's bytes are fixed: a Hub commit and/or a known SHA-256; NVIDIA's URLs have neither."""
    parts = []
    if card.repo_id:
        parts.append(f"@{card.revision[:12]}" if card.revision else "@main (unpinned)")
    if card.sha256:
        parts.append(f"sha256 {card.sha256[:12]}")
    elif card.url:
        parts.append("sha256 recorded at first download")
    return ", ".join(parts) or "-"


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def cmd_models(args: argparse.Namespace) -> int:
    """List the model cards (download state, source, pin, license), then encoders and auxiliary files."""
    from stylecore.engine import hub
    from stylecore.perception.align import LANDMARKS_CARD
    from stylecore.inversion.encoder_cards import ENCODER_CARDS
    from stylecore.perception.identity import ARCFACE_CARD
    from stylecore.perception.metrics import VGG16_CARD

    header = ("id", "architecture", "res", "domain", "state", "source", "pin", "license")

    def row(card) -> tuple[str, ...]:
        return (card.id, card.architecture, str(card.resolution or "?"), card.domain, hub.download_state(card),
                card.source, _pin(card), card.license.split(";")[0])

    _table([header] + [row(card) for card in _zoo(args).cards()])
    if not args.all:
        return 0
    print("\nencoders (Inversion tab)")
    _table([header] + [row(card) for card in ENCODER_CARDS])
    print("\nauxiliary files")
    _table([("id", "source", "pin", "license")] + [(c.id, c.source, _pin(c), c.license.split(";")[0])
                                                  for c in (VGG16_CARD, LANDMARKS_CARD, ARCFACE_CARD)])
    return 0


def _pair(text: str) -> tuple[float, float]:
    parts = [float(p) for p in text.split(",")]
    if len(parts) != 2:
        raise argparse.ArgumentTypeError("give two numbers, e.g. 0.1,-0.2")
    return parts[0], parts[1]


def cmd_generate(args: argparse.Namespace) -> int:
    """Generate one PNG per seed, <model>-seed0000.png, into --outdir (and optionally a grid)."""
    from PIL import Image

    from stylecore.engine.manager import ModelManager
    from stylecore.codes.generate import GenerationSettings, generate_images, image_grid
    from stylecore.codes.latents import parse_seeds

    manager = ModelManager(_zoo(args), device=args.device)
    seeds = parse_seeds(args.seeds, max_count=10000)
    model = _load(manager, args.model)
    settings = GenerationSettings(truncation_psi=args.trunc, truncation_cutoff=args.cutoff,
                                  noise_mode=args.noise_mode, class_idx=args.class_idx,
                                  translate=args.translate, rotate_degrees=args.rotate)
    images = generate_images(model.G, seeds, settings, force_fp32=model.force_fp32, progress=STATUS)
    STATUS.end()
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    names = [f"{model.card.id}-{_seeds_name([seed])}.png" for seed in seeds]
    for name, img in zip(names, images):
        Image.fromarray(img).save(outdir / name)
    listed = names[0] if len(names) == 1 else f"{names[0]} ... {names[-1]}"
    print(f"wrote {_count(len(names), 'image')} to {outdir}: {listed}")
    if args.grid:
        grid = outdir / f"{model.card.id}-grid-{_seeds_name(seeds)}.png"
        Image.fromarray(image_grid(images)).save(grid)
        print(f"wrote {grid}")
    return 0


def _grid(text: str) -> tuple[int, int]:
    try:
        cols, rows = (int(p) for p in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("give columns x rows, e.g. 2x2") from None
    return cols, rows


def _video_path(args: argparse.Namespace, panels: Sequence[Panel], seeds: Sequence[int]) -> Path:
    """--out, or out/<models>-<seeds or codes file>[-<camera>].mp4."""
    if args.out:
        return Path(args.out)
    parts = ["-vs-".join(panel.label for panel in panels), Path(args.codes).stem if args.codes else _seeds_name(seeds)]
    if args.camera != "none":
        parts.append(args.camera)
    return OUT / ("-".join(parts) + ".mp4")


def cmd_video(args: argparse.Namespace) -> int:
    """Render a latent walk (optionally with a camera path, or side by side with --compare) to MP4."""
    from stylecore.engine.manager import ModelManager
    from stylecore.codes.generate import GenerationSettings
    from stylecore.codes.latents import parse_seeds
    from stylecore.video.render import Panel, VideoSettings, render_video
    from stylecore.video.paths import CameraPath

    manager = ModelManager(_zoo(args), device=args.device)
    panels = []
    for spec in ([args.compare] if args.compare else []) + [args.model]:
        model = _load(manager, spec)
        panels.append(Panel(model.G, model.force_fp32, label=model.card.id))
    seeds = tuple(parse_seeds(args.seeds, max_count=10000))
    settings = VideoSettings(
        seeds=seeds, codes_path=args.codes, kind=args.kind,
        space=args.space, loop=not args.no_loop, frames_per_transition=args.frames_per_transition,
        grid=args.grid, fps=args.fps, camera=CameraPath(args.camera, args.radius, args.turns), gif=args.gif,
        generation=GenerationSettings(truncation_psi=args.trunc, truncation_cutoff=args.cutoff,
                                      noise_mode=args.noise_mode, class_idx=args.class_idx,
                                      translate=args.translate, rotate_degrees=args.rotate))
    result = render_video(panels, settings, _video_path(args, panels, seeds), batch_size=args.batch, progress=STATUS)
    STATUS.end()
    w, h = result.plan.size
    print(f"wrote {result.path}: {_count(result.plan.frames, 'frame')}, {w}x{h}, {result.plan.fps:g} fps "
          f"({result.plan.seconds:.1f} s), rendered at {result.frames_per_second:.1f} frames/s"
          + (f"; GIF {result.gif_path}" if result.gif_path else ""))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """Read a checkpoint so its converted copy lands in the cache; print what it holds and what loading costs.

    The first load in a process also pays one-time set-up (the network code, torch's lazily imported
    parts: seconds), which a load from the cache in a running app does not; so the cached load is
    timed on its own, by loading once more.
    """
    from stylecore.formats.loader import load_generator

    G = load_generator(args.path)
    info = G.checkpoint_info
    params = sum(p.numel() for p in G.parameters())
    print(f"{args.path}: {info['architecture']}, {G.img_resolution}x{G.img_resolution}, z_dim {G.z_dim}, "
          f"w_dim {G.w_dim}, c_dim {G.c_dim}, num_ws {G.num_ws}, {params:,} parameters")
    del G
    how = "read from the cache" if info["cached"] else "converted and cached"
    print(f"format: {info['source']}; {how} in {info['load_seconds']:.2f} s (the process's one-time set-up included)")
    again = load_generator(args.path).checkpoint_info
    if again["cached"]:
        print(f"a load from the cache takes {again['load_seconds']:.2f} s")
    return 0


def cmd_bench_load(args: argparse.Namespace) -> int:
    """Time the first load of a checkpoint (cache entry removed) against a cached load, after an untimed
    load that pays the process's one-time set-up."""
    from stylecore.formats import cache
    from stylecore.formats.loader import load_generator

    load_generator(args.path)
    key = cache.file_sha256(args.path)
    first, cached = [], []
    for _ in range(args.repeat):
        for p in cache.entry_paths(key):
            p.unlink(missing_ok=True)
        index = cache.cache_dir() / "index.json"
        index.unlink(missing_ok=True)  # the first load hashes the file too
        t0 = time.perf_counter()
        load_generator(args.path)
        first.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        G = load_generator(args.path)
        cached.append(time.perf_counter() - t0)
        if not G.checkpoint_info["cached"]:
            raise OSError(f"the converted copy could not be cached in {cache.cache_dir()}: nothing to compare")
    size = Path(args.path).stat().st_size / 2 ** 20
    f, c = min(first), min(cached)
    print(f"{args.path} ({size:.0f} MiB, {G.checkpoint_info['source']})")
    print(f"first load (hash + read + convert + cache write): {f:.3f} s")
    print(f"cached load: {c:.3f} s")
    print(f"speed-up: {f / c:.1f}x (best of {args.repeat})")
    return 0


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _impl_list(text: str) -> list[str]:
    from stylecore.ops.impl import IMPLS

    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [n for n in names if n not in IMPLS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown implementation(s) {bad or text!r}; choose from {', '.join(IMPLS)}")
    return names


def cmd_bench_generator(args: argparse.Namespace) -> int:
    """Latency, img/s, peak memory and error of each ops implementation on a released-size generator."""
    import torch

    from stylecore.bench.generator import bench_generator, format_table
    from stylecore.engine.manager import resolve_device

    from stylecore.engine.threads import usable_cores

    device = resolve_device(args.device)
    precision = args.precision or ("fp16" if device.type == "cuda" else "fp32")
    repeat = args.repeat or (20 if device.type == "cuda" else 3)
    rows = [row for res in args.res
            for row in bench_generator(args.arch, res, args.batch, device, args.impl, precision, repeat,
                                       graphs=args.graphs, contend=args.contend, contend_mode=args.contend_mode,
                                       cores=args.threads or None)]
    cores = args.threads or usable_cores()
    name = (torch.cuda.get_device_name(device) if device.type == "cuda" else
            f"CPU ({cores} threads per request alone, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '')!r})")
    print(format_table(rows, f"{name}, torch {torch.__version__}"))
    return 0


def cmd_bench_video(args: argparse.Namespace) -> int:
    """Frames per second of video generation with a random-weight StyleGAN3-T of released size."""
    from stylecore.bench.video import bench_video

    r = bench_video(args.res, args.device, args.frames, args.batch)
    print(f"StyleGAN3-T {r['res']}x{r['res']} on {r['device']} ({r['dtype']}), {_count(r['frames'], 'frame')}, "
          f"batch {r['batch_size']}; one render, timed after a warm-up batch")
    print(f"making the frames (synthesis to uint8): {r['synthesis_fps']:.2f} frames/s")
    print(f"the whole render (+ H.264 encoding): {r['video_fps']:.2f} frames/s ({r['mp4_bytes'] / 1024:.0f} KiB MP4)")
    return 0


def cmd_bench_stylenerf(args: argparse.Namespace) -> int:
    """Seconds per view of a random-weight StyleNeRF of the released FFHQ configuration."""
    from stylecore.bench.stylenerf import bench_stylenerf, format_report

    print(format_report(bench_stylenerf(args.res, args.device, args.repeat, args.threads, args.fp32)))
    return 0


def _methods_arg(text: str) -> list[str]:
    from stylecore.inversion.methods import METHOD_KINDS

    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in METHOD_KINDS]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(f"methods are a comma list of {', '.join(METHOD_KINDS)}")
    return kinds


def _lpips_backbone(random_backbone: bool) -> str:
    """Which LPIPS the numbers are: the published metric, or one that only ranks results against each other."""
    return ("random VGG16 backbone, values not comparable with published ones" if random_backbone else
            "pretrained VGG16 backbone (the published metric)")


def cmd_invert(args: argparse.Namespace) -> int:
    """Invert one image (or a seed's image) with each method; write PNGs, .npz codes and metrics.json into
    --outdir, by default out/<model>-invert-<seed or image name>."""
    import json

    from PIL import Image

    from stylecore.perception.align import prepare_image, read_image
    from stylecore.engine.manager import ModelManager
    from stylecore.inversion.compare import compare_on, save_result, save_weights, seed_target
    from stylecore.inversion.methods import choose

    if (args.image is None) == (args.seed is None):
        raise ValueError("give either --image or --seed")
    manager = ModelManager(_zoo(args), device=args.device)
    model = _load(manager, args.model)
    G = model.G
    if args.image is not None:
        prepared = prepare_image(read_image(args.image), G.img_resolution, args.align, model.card.domain,
                                 args.crop_if_no_face)
        target, note = prepared.image, prepared.message
    else:
        target, note = seed_target(G, args.seed, args.trunc, model.force_fp32)[0], f"seed {args.seed}"
    specs = choose(args.methods, {kind: getattr(args, f"{kind}_steps", None) for kind in args.methods},
                   args.encoder or "", args.iterations)
    comparison = compare_on(manager, model, target, specs, progress=STATUS, schedule=args.schedule)
    STATUS.end()
    name = Path(args.image).stem if args.image is not None else _seeds_name([args.seed])
    outdir = Path(args.outdir) if args.outdir else OUT / f"{model.card.id}-invert-{name}"
    outdir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(target).save(outdir / "target.png")
    backbone = _lpips_backbone(comparison.random_lpips)
    print(f"LPIPS: {backbone}")
    rows = []
    for spec, r in zip(specs, comparison.results):
        Image.fromarray(r.image).save(outdir / f"{spec.kind}.png")
        save_result(outdir / f"{spec.kind}.npz", r)
        save_weights(outdir / f"{spec.kind}-tuned-weights.safetensors", r)  # PTI, HyperStyle: the code's own weights
        rows.append({"method": r.method, "space": r.space, "steps": r.steps, "seconds": round(r.seconds, 3),
                     **{k: round(v, 5) for k, v in r.metrics.items()}})
        print(f"{r.method:45s} {r.space:3s} LPIPS {r.metrics['lpips']:.4f}  PSNR {r.metrics['psnr']:6.2f} dB  "
              f"MSE {r.metrics['mse']:.5f}  {r.seconds:7.2f} s")
    for line in comparison.notes:
        print(line)
    (outdir / "metrics.json").write_text(json.dumps(
        {"target": note, "lpips_backbone": backbone, "random_lpips": comparison.random_lpips, "results": rows,
         "notes": comparison.notes}, indent=1))
    print(f"{note}; wrote target.png, one PNG and .npz per method (PTI and HyperStyle: also their tuned weights as "
          f".safetensors) and metrics.json to {outdir}")
    return 0


BENCH_INVERT_METHODS = ("w", "wplus", "pti", "hyperstyle")  # stylecore.bench.invert.METHODS, without torch


def _bench_invert_methods(text: str) -> list[str]:
    """The rows --methods names, each once, in order."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if not kinds or any(k not in BENCH_INVERT_METHODS for k in kinds):
        raise argparse.ArgumentTypeError(f"methods are a comma list of {','.join(BENCH_INVERT_METHODS)}")
    return list(dict.fromkeys(kinds))


def _c2f_steps(args: argparse.Namespace) -> int:
    """W/W+ steps of the coarse-to-fine schedule: --c2f-steps, or half the full schedule's."""
    return args.c2f_steps or max(1, args.steps // 2)


def _bench_invert_rows(res: int, args: argparse.Namespace, where: str) -> None:
    """The rows --methods asks for at `res`, each printed when done (a 1024 px run takes minutes)."""
    from stylecore.bench import invert as bench
    from stylecore.bench.encoders import bench_encoders
    from stylecore.codes.schedule import COARSE_TO_FINE, FULL, Schedule
    from stylecore.engine.manager import resolve_device
    from stylecore.engine.released import random_released_generator

    G = random_released_generator("sg2", res, resolve_device(args.device))
    res = G.img_resolution  # the rows are labelled with what G draws
    schedule = Schedule(COARSE_TO_FINE, coarse_fraction=args.coarse_fraction, coarse_lr_scale=args.coarse_lr_scale)
    setup = bench.prepare(G, args.seed)
    for method in (m for m in args.methods if m in ("w", "wplus")):
        steps = {FULL: args.steps, COARSE_TO_FINE: _c2f_steps(args)}
        print(bench.format_report(bench.bench_schedules(setup, method, steps, schedule), res, method), flush=True)
    if "pti" in args.methods:
        runs = bench.bench_pti(setup, args.pti_steps, [FULL, COARSE_TO_FINE], schedule)
        print(bench.format_pti(runs, res, where), flush=True)
    if "hyperstyle" in args.methods:
        print(bench.format_hyperstyle(bench.bench_hyperstyle(setup), res, where), flush=True)
    if args.encoders:
        for label, seconds in bench_encoders(G).items():
            print(f"  {label:22s} {seconds:9.3f} s/image (encoder at 256x256 + decoding)")


def cmd_bench_invert(args: argparse.Namespace) -> int:
    """Inversion's cost on a random-weight StyleGAN2 config-f with a random-backbone LPIPS, per resolution:
    W / W+ full-resolution against coarse-to-fine (seconds per step, to the result, final quality), PTI's
    pivot and tuning steps projected to its budgets, a HyperStyle image, beside the published GPU figures.
    Threads: the usable cores (or --threads), as every request of the engine gets them."""
    import torch

    from stylecore.engine.manager import resolve_device
    from stylecore.engine.threads import request_threads

    dev = resolve_device(args.device)
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    with request_threads(args.threads or None) as threads:
        name = where if dev.type == "cuda" else f"CPU, {threads} threads"
        print(f"inversion on {dev} ({name}), torch {torch.__version__}, random weights: only the times are "
              f"meaningful (and W/W+ quality against each other); target: seed {args.seed} (psi 0.7); W/W+ full: "
              f"{args.steps} steps; coarse-to-fine: {_c2f_steps(args)} steps, "
              f"{args.coarse_fraction:g} of them at 256 px (at most half the output size) with the learning rate "
              f"x{args.coarse_lr_scale:g}; PTI: {args.pti_steps} timed steps per phase and schedule; "
              "published figures: the trained models on a GPU")
        for res in args.res:
            _bench_invert_rows(res, args, where)
    return 0


def cmd_bench_styleclip(args: argparse.Namespace) -> int:
    """Time per edit of StyleCLIP's three methods with a random-weight StyleGAN2 config-f generator
    and a random-weight CLIP ViT-B/32 (relevance table random too: its cost is measured separately)."""
    import numpy as np
    import torch

    from stylecore.codes.schedule import schedule_named
    from stylecore.perception.clip import build_clip
    from stylecore.edit import styleclip as sc
    from stylecore.edit.styleclip_mapper import LEVELS, LatentMapper
    from stylecore.engine.manager import resolve_device
    from stylecore.engine.released import random_released_generator

    dev = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def timed(run, repeats: int) -> float:
        run()  # warm-up
        sync()
        start = time.perf_counter()
        for _ in range(repeats):
            run()
        sync()
        return (time.perf_counter() - start) / repeats

    clip = build_clip("ViT-B-32-quickgelu", device=dev)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"StyleCLIP on {dev} ({name}), random weights, CLIP ViT-B/32; "
          "paper (one GPU): global direction ~72 ms, mapper ~75 ms, optimization ~98 s")
    for res in args.res:
        G = random_released_generator("sg2", res, dev)
        synth = {"noise_mode": "const", "force_fp32": dev.type != "cuda"}
        ws = G.mapping(torch.randn(1, 512, device=dev), None, truncation_psi=0.7)
        stats = sc.style_stats(G, n_samples=1000)
        layers = sc.relevant_layers(G)
        channels = sum(l.channels for l in layers)
        rng = np.random.default_rng(0)
        fs = rng.standard_normal((channels, clip.embed_dim)).astype(np.float32)
        table = sc.ChannelRelevance(fs / np.linalg.norm(fs, axis=1, keepdims=True), tuple(l.index for l in layers),
                                    stats, "random")
        prompt = "a smiling face with curly hair"
        edit = sc.global_direction(G, clip, table, prompt, "a face", beta=0.1)
        fresh = iter(range(1_000_000))
        text_s = timed(lambda: sc.text_direction(clip, f"{prompt} {next(fresh)}", f"a face {next(fresh)}"), 1)
        glob = timed(lambda: sc.global_edit(G, ws, sc.global_direction(G, clip, table, prompt, "a face", 0.1),
                                            4.0, **synth), args.repeats)
        mapper = LatentMapper("levels", tuple(n for n, _, _ in LEVELS)).to(dev) if G.num_ws == 18 else None

        def run_mapper() -> None:
            with torch.no_grad():
                G.synthesis(sc.apply_mapper(mapper, ws, 1.0), **synth)

        mapper_s = timed(run_mapper, args.repeats) if mapper is not None else float("nan")
        schedule = schedule_named(args.schedule, dev)
        step = timed(lambda: sc.optimize_latent(G, clip, ws, prompt, sc.OptimizeConfig(steps=args.steps),
                                                schedule=schedule, **synth), 1) / args.steps
        batch = ws.expand(8, -1, -1)

        def render_encode() -> None:
            with torch.no_grad():
                clip.encode_images(G.synthesis(batch, **synth))

        table_s = timed(render_encode, 1) / 8
        print(f"{res:5d}px  global direction {glob * 1000:8.1f} ms/edit (text encoding of 2×79 prompts, first use: "
              f"{text_s * 1000:.0f} ms; cached after)  moved {edit.channels} channels")
        print(f"{res:5d}px  latent mapper    {mapper_s * 1000:8.1f} ms/edit" + ("" if mapper is not None else
                                                                                 " (mappers need 18 W+ rows: 1024 px)"))
        print(f"{res:5d}px  optimization     {step * 1000:8.1f} ms/step -> {step * 40:7.1f} s at 40 steps, "
              f"{step * 300:7.1f} s at 300 steps")
        print(f"{res:5d}px  relevance table  {table_s * 1000:8.1f} ms per render+encode -> "
              f"{table_s * channels * 200 / 3600:6.2f} h for {channels} channels × 100 images")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from stylecore.inversion.methods import ITERATIONS, METHODS as INVERSION_METHODS
    from stylecore.codes.schedule import SCHEDULES, Schedule

    prog = "python -m stylecore" if Path(sys.argv[0]).name == "__main__.py" else "stylecore"
    parser = argparse.ArgumentParser(prog=prog, description="StyleGAN engine command line")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list known models: download state, source, pinned revision, license")
    p.add_argument("--models", help="TOML/JSON file of extra model cards")
    p.add_argument("--all", action="store_true", help="also list the encoders and the auxiliary files")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("generate", help="generate images from seeds")
    p.add_argument("--model", default="demo", help="model id, hf://owner/repo/file.pkl[@rev] or a local path")
    p.add_argument("--models", help="TOML/JSON file of extra model cards")
    p.add_argument("--seeds", default="0-3", help="seeds, e.g. 0-7,42")
    p.add_argument("--trunc", type=float, default=1.0, help="truncation psi")
    p.add_argument("--cutoff", type=int, default=None, help="truncation cutoff (first N ws)")
    p.add_argument("--noise-mode", default="const", choices=["const", "random", "none"])
    p.add_argument("--class", dest="class_idx", type=int, default=None, help="class for conditional models")
    p.add_argument("--translate", type=_pair, default=(0.0, 0.0), help="StyleGAN3: x,y in image widths")
    p.add_argument("--rotate", type=float, default=0.0, help="StyleGAN3: degrees")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--grid", action="store_true", help="also write <model>-grid-seeds<first>-<last>.png")
    p.add_argument("--outdir", default=str(OUT), help="where <model>-seed0000.png ... go (default: out/)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("video", help="render a latent walk or StyleGAN3 camera path to MP4 (and GIF)")
    p.add_argument("--model", default="demo-sg3", help="model id, hf://owner/repo/file.pkl[@rev] or a local path")
    p.add_argument("--compare", default=None, help="side by side: this model (e.g. a StyleGAN2) on the left")
    p.add_argument("--models", help="TOML/JSON file of extra model cards")
    p.add_argument("--seeds", default="0-2", help="keyframe seeds, grid columns x rows x keyframes of them")
    p.add_argument("--codes", default=None, help=".npz of W/W+ keyframe codes (key 'w') instead of seeds")
    p.add_argument("--kind", default="cubic", choices=["cubic", "linear", "spherical"], help="interpolation")
    p.add_argument("--space", default="w", choices=["w", "z"], help="walk in z or in w")
    p.add_argument("--no-loop", action="store_true", help="end on the last keyframe instead of looping")
    p.add_argument("--frames-per-transition", "--w-frames", type=int, default=60)
    p.add_argument("--grid", type=_grid, default=(1, 1), help="walks as columns x rows, e.g. 2x2")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--trunc", type=float, default=1.0, help="truncation psi")
    p.add_argument("--cutoff", type=int, default=None, help="truncation cutoff (first N ws)")
    p.add_argument("--noise-mode", default="const", choices=["const", "random", "none"])
    p.add_argument("--class", dest="class_idx", type=int, default=None, help="class for conditional models")
    p.add_argument("--translate", type=_pair, default=(0.0, 0.0), help="StyleGAN3: x,y in image widths")
    p.add_argument("--rotate", type=float, default=0.0, help="StyleGAN3: degrees")
    p.add_argument("--camera", default="none", choices=["none", "circle", "line", "rotate", "circle+rotate"],
                   help="StyleGAN3 camera path over the whole video")
    p.add_argument("--radius", type=float, default=0.1, help="circle radius / line amplitude in image widths")
    p.add_argument("--turns", type=float, default=1.0, help="rotation: full turns over the video")
    p.add_argument("--gif", action="store_true", help="also write a GIF beside the MP4")
    p.add_argument("--batch", type=int, default=8, help="images per synthesis call")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--out", default=None,
                   help="output .mp4 path (default: out/<model>-seeds<first>-<last>[-<camera>].mp4)")
    p.set_defaults(func=cmd_video)

    p = sub.add_parser("convert", help="read a checkpoint and cache its converted copy")
    p.add_argument("path")
    p.set_defaults(func=cmd_convert)

    bench_parser = sub.add_parser(
        "bench", help="benchmarks; without a sub-command: generator speed per ops implementation",
        description="Without a sub-command: time a released-size generator (random weights) with each ops "
                    "implementation and print latency, img/s, peak memory and the error against the reference ops.")
    bench_parser.add_argument("--arch", default="sg3t", choices=["sg2", "sg3t", "sg3r"])
    bench_parser.add_argument("--res", type=int, nargs="+", default=[256], choices=[256, 512, 1024])
    bench_parser.add_argument("--batch", type=_int_list, default=[1], help="comma list of batch sizes, e.g. 1,16")
    bench_parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    bench_parser.add_argument("--impl", type=_impl_list, default=["ref", "auto"],
                              help="comma list of ref, fast, auto (default ref,auto)")
    bench_parser.add_argument("--precision", default=None, choices=["fp16", "fp32", "bf16"],
                              help="fp16: the released fp16 layers (GPU default); fp32 (CPU default); "
                                   "bf16: autocast")
    bench_parser.add_argument("--repeat", type=int, default=0, help="timed calls per row (0: 20 on GPU, 3 on CPU)")
    bench_parser.add_argument("--threads", type=int, default=0,
                              help="CPU threads shared by the requests (0: the usable cores)")
    bench_parser.add_argument("--contend", type=int, default=0, metavar="N",
                              help="also time every implementation under load: N busy processes, or N requests")
    bench_parser.add_argument("--contend-mode", default="processes", choices=["processes", "requests"],
                              help="processes: N busy-loop processes beside it; requests: N concurrent "
                                   "generations in this process against N one after another")
    bench_parser.add_argument("--graphs", action="store_true",
                              help="GPU: also time each implementation replayed from a CUDA graph")
    bench_parser.set_defaults(func=cmd_bench_generator)
    bench = bench_parser.add_subparsers(dest="bench")
    p = bench.add_parser("load", help="first load vs cached load of a checkpoint")
    p.add_argument("path")
    p.add_argument("--repeat", type=int, default=3)
    p.set_defaults(func=cmd_bench_load)
    p = bench.add_parser("stylenerf", help="seconds per view of StyleNeRF (random weights, released FFHQ config)")
    p.add_argument("--res", type=int, default=256, choices=[256, 512, 1024])
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--repeat", type=int, default=3, help="timed views per setting (the best is reported)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--fp32", action="store_true", help="GPU: float32 throughout (default: fp16 upsampler blocks)")
    p.set_defaults(func=cmd_bench_stylenerf)
    p = bench.add_parser("video", help="frames per second of video generation (random-weight StyleGAN3-T)")
    p.add_argument("--res", type=int, default=256, choices=[256, 512, 1024])
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--batch", type=int, default=0, help="images per synthesis call (0: 16 on GPU, 2 on CPU)")
    p.set_defaults(func=cmd_bench_video)
    p = sub.add_parser("invert", help="invert an image (or a seed's image) with several methods and compare them")
    p.add_argument("--model", default="demo", help="model id, hf://owner/repo/file.pkl[@rev] or a local path")
    p.add_argument("--models", help="TOML/JSON file of extra model cards")
    p.add_argument("--image", default=None, help="the image to invert")
    p.add_argument("--seed", type=int, default=None, help="instead of --image: invert this seed's image")
    p.add_argument("--trunc", type=float, default=0.7, help="truncation psi for --seed")
    p.add_argument("--align", default="auto", choices=["auto", "align", "crop", "resize"],
                   help="auto: FFHQ alignment for face models, centre crop otherwise")
    p.add_argument("--crop-if-no-face", action="store_true", help="centre crop instead of failing without a face")
    p.add_argument("--methods", type=_methods_arg, default=["w", "wplus"],
                   help=f"comma list: {','.join(INVERSION_METHODS)}")
    for m in INVERSION_METHODS.values():
        if m.steps is not None:
            p.add_argument(f"--{m.kind}-steps", type=int, default=m.steps.full,
                           help=f"steps of {m.label}" + (f"; {m.steps.note}" if m.steps.note else ""))
    p.add_argument("--encoder", default=None, help="encoder id or .pt path (encoder, hybrid)")
    p.add_argument("--iterations", type=int, default=ITERATIONS.full, help=ITERATIONS.name)
    p.add_argument("--schedule", default="auto", choices=["auto", *SCHEDULES],
                   help="coarse-to-fine: the early steps on a StyleGAN2's 256 px image, the last ones at full "
                        "resolution; full: every step at full resolution; auto: coarse-to-fine on a CPU, full on a GPU")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--outdir", default=None, help="default: out/<model>-invert-<seed0005 or the image's name>")
    p.set_defaults(func=cmd_invert)
    p = bench.add_parser("invert", help="inversion time (W, W+, PTI, HyperStyle; random weights) beside the "
                                        "published figures; full-resolution against coarse-to-fine")
    p.add_argument("--res", type=int, nargs="+", default=[1024], choices=[256, 512, 1024])
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--methods", type=_bench_invert_methods, default=list(BENCH_INVERT_METHODS),
                   help=f"comma list of the rows to run: {','.join(BENCH_INVERT_METHODS)} (default: all)")
    p.add_argument("--steps", type=int, default=20, help="W/W+ steps of the full-resolution schedule")
    p.add_argument("--c2f-steps", type=int, default=0,
                   help="W/W+ steps of the coarse-to-fine schedule (0: half --steps)")
    p.add_argument("--coarse-fraction", type=float, default=Schedule.coarse_fraction,
                   help="share of the coarse-to-fine steps run at 256 px")
    p.add_argument("--coarse-lr-scale", type=float, default=Schedule.coarse_lr_scale,
                   help="learning-rate multiplier of the coarse steps")
    p.add_argument("--seed", type=int, default=0, help="the target is this seed's image")
    p.add_argument("--pti-steps", type=int, default=4,
                   help="timed steps of each PTI phase (W pivot, tuning) per schedule, at least 2; projected to "
                        "the tab's default and the paper's 450 + 350")
    p.add_argument("--encoders", action="store_true", help="also time the encoders (hybrid = encoder + W+ part)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: the usable cores)")
    p.set_defaults(func=cmd_bench_invert)

    p = bench.add_parser("styleclip", help="time per edit of StyleCLIP's three methods (random weights)")
    p.add_argument("--res", type=int, nargs="+", default=[256, 1024], choices=[256, 512, 1024])
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--repeats", type=int, default=5, help="timed edits per method")
    p.add_argument("--steps", type=int, default=3, help="timed optimization steps")
    p.add_argument("--schedule", default="auto", choices=["auto", *SCHEDULES],
                   help="optimization: coarse-to-fine (the early steps at 256 px) or full; auto: by device")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.set_defaults(func=cmd_bench_styleclip)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command; returns the exit status: 0 done, 2 a usage or input error (one line, no traceback)."""
    args = build_parser().parse_args(argv)
    from stylecore.formats.errors import CheckpointError  # after parsing: `--help` needs no torch
    from stylecore.engine.remote import ModelUnavailable

    try:
        return args.func(args)
    except BrokenPipeError:
        raise  # stdout's reader has gone, no input error: see `run`
    except (ValueError, KeyError, OSError, CheckpointError, ModelUnavailable) as exc:
        STATUS.end()
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2
    finally:
        STATUS.end()  # a traceback, too, starts on a line of its own


def run() -> None:
    """The `stylecore` command and `python -m stylecore`: `main`, with the engine's log records and warnings
    printed as lines of their own, and a quiet end with status 141 (what a command killed by SIGPIPE
    reports) when stdout's reader stops early (`stylecore models | head -3`); the engine's own pipes
    (ffmpeg) report their failures as other errors."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[_LogLines()])
    logging.captureWarnings(True)
    try:
        status = main()
        sys.stdout.flush()  # here rather than at exit, where a failure could only print a traceback
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # for Python's own flush at exit
        status = 141
    sys.exit(status)


if __name__ == "__main__":
    run()
