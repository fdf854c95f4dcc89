"""Generator speed with each ops implementation: `python -m stylecore bench --arch ... --impl ...`.

A released-size network with random weights (the speed does not depend on the weights) runs the
same W codes with every requested implementation (and, with --graphs, replayed from a CUDA graph);
each row gives the latency of one synthesis call, images per second, the peak memory of the calls
(CUDA allocator peak; on the CPU the peak RSS of the whole process) and the largest deviation of its
output from the reference ops' output on the same inputs, relative to the reference's largest
magnitude (for bf16: from the fp32 reference). A `conv floor` row times the same network's
convolutions alone (conv_floor.py). Every call runs under the engine's thread policy
(stylecore.engine.threads); with `contend`, every implementation is also timed beside that many
busy processes, or as that many concurrent requests against the same number one after another
(contention.py).
"""
from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from stylecore.bench.contention import at_once, busy_processes, one_after_another
from stylecore.bench.conv_floor import record_convolutions, replay
from stylecore.engine.released import random_released_generator
from stylecore.engine.threads import request_threads
from stylecore.ops.impl import current_impl, use_impl

PRECISIONS = ("fp16", "fp32", "bf16")
CONTEND_MODES = ("processes", "requests")
FLOOR = "conv floor"
QUIET = "quiet"


@dataclass
class BenchRow:
    arch: str
    res: int
    batch: int
    impl: str
    precision: str
    latency_ms: float
    images_per_second: float
    peak_bytes: int
    max_rel_err: Optional[float]  # None for the reference itself and for the rows under load
    condition: str = QUIET  # or the load: "N busy" processes, "N one by one" / "N at once" requests
    requests: int = 1  # synthesis calls timed together (the requests of a "N at once" row)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak memory of a block: CUDA allocator peak, or the process's peak RSS (VmHWM) on the CPU."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            _reset_rss_peak()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self.peak = _rss_peak()


def _reset_rss_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass  # not Linux, or not allowed: the peak then covers the whole process


def _rss_peak() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows: no peak to report
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def synthesize(G: torch.nn.Module, ws: torch.Tensor, precision: str) -> torch.Tensor:
    """One synthesis call: the released fp16 layers in fp16 (GPU) or bfloat16 (CPU), or fp32 throughout."""
    if precision == "bf16" and ws.device.type == "cpu":
        os.environ["STYLECORE_CPU_BF16"] = "1"  # the user-facing CPU mode (networks.layers.reduced_precision)
        try:
            return G.synthesis(ws, noise_mode="const", force_fp32=False).float()
        finally:
            del os.environ["STYLECORE_CPU_BF16"]
    if precision == "bf16":
        raise ValueError("bf16 is the CPU mode; on a GPU the released fp16 layers run in fp16 (--precision fp16)")
    return G.synthesis(ws, noise_mode="const", force_fp32=precision == "fp32").float()


def synthesis_call(G: torch.nn.Module, ws: torch.Tensor, precision: str, graph: bool
                   ) -> Callable[[torch.Tensor], torch.Tensor]:
    """The call to time: eager, or replayed from a CUDA graph captured now for `ws`'s shape."""
    if not graph:
        return lambda codes: synthesize(G, codes, precision)
    from stylecore.ops.cuda_graphs import GraphedSynthesis

    graphed = GraphedSynthesis(G, ws, noise_mode="const", force_fp32=precision == "fp32")
    return lambda codes: graphed(codes).float()


def settle_kernels(device: torch.device) -> None:
    """Wait for the CUDA kernels' build and self-check, so a row measures the steady state. Nothing to wait
    for on a CPU, nor where stylecore is installed (`pip install -e .`) and run without the checkout's kernels/."""
    from stylecore.ops.cuda_kernels import GATE, checkout_kernels

    kernels = checkout_kernels() if device.type == "cuda" else None
    if kernels is not None and kernels.enabled():
        GATE.usable(device, wait=True)


def time_calls(call: Callable[[torch.Tensor], torch.Tensor], ws: torch.Tensor, repeat: int,
               cores: Optional[int] = None) -> tuple[float, int]:
    """(median seconds per call, peak memory bytes) after one warm-up call, as one request."""
    device = ws.device
    with torch.no_grad(), request_threads(cores):
        call(ws)  # warm-up: kernel choice, filter set-up, allocator growth
        _sync(device)
        seconds = []
        with PeakMemory(device) as peak:
            for _ in range(repeat):
                t0 = time.perf_counter()
                call(ws)
                _sync(device)
                seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds), peak.peak


def contended_rows(call: Callable[[torch.Tensor], torch.Tensor], ws: torch.Tensor, repeat: int,
                   cores: Optional[int], count: int, mode: str) -> list[tuple[str, float, int, int]]:
    """(condition, seconds, requests, peak bytes) of `call` under load: beside `count` busy processes,
    or `count` concurrent requests (each its own thread and thread share) and as many one by one."""
    if mode == "processes":
        with busy_processes(count):
            seconds, peak = time_calls(call, ws, repeat, cores)
        return [(f"{count} busy", seconds, 1, peak)]
    impl = current_impl()

    def request() -> None:
        with use_impl(impl), torch.no_grad(), request_threads(cores):
            call(ws)
            _sync(ws.device)

    rows = []
    for label, run in (("one by one", one_after_another), ("at once", at_once)):
        with PeakMemory(ws.device) as peak:
            seconds = run(request, count, repeat)
        rows.append((f"{count} {label}", seconds, count, peak.peak))
    return rows


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out - ref).abs().max() / ref.abs().max().clamp_min(1e-12)).item()


def bench_generator(arch: str, res: int, batches: Sequence[int], device: torch.device, impls: Sequence[str],
                    precision: str, repeat: int, seed: int = 0, graphs: bool = False, contend: int = 0,
                    contend_mode: str = "processes", cores: Optional[int] = None) -> list[BenchRow]:
    """Time `impls` on a released `arch` generator at `res` px for every batch size, then the
    network's convolutions alone (`conv floor`); with `graphs`, each also replayed from a CUDA graph;
    with `contend`, each also under that load (contend_mode: busy processes or concurrent requests).
    `cores`: CPU threads to share among requests (None: the usable cores)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if graphs and device.type != "cuda":
        raise ValueError("CUDA graphs need a GPU: leave out --graphs on the CPU")
    if contend_mode not in CONTEND_MODES:
        raise ValueError(f"contend mode must be one of {', '.join(CONTEND_MODES)}, got {contend_mode!r}")
    G = random_released_generator(arch, res, device, seed=seed)
    rows = []
    for batch in batches:
        gen = torch.Generator().manual_seed(seed + batch)
        z = torch.randn([batch, G.z_dim], generator=gen).to(device)
        with torch.no_grad():
            ws = G.mapping(z, None)
            with use_impl("ref"):  # bf16 is an approximation: its error is stated against exact fp32
                reference = synthesize(G, ws, "fp32" if precision == "bf16" else precision)
        for impl in impls:
            for graph in (False, True) if graphs else (False,):
                with use_impl(impl):
                    if impl != "ref":
                        settle_kernels(device)
                    call = synthesis_call(G, ws, precision, graph)
                    with torch.no_grad():
                        out = call(ws).clone()
                    seconds, peak = time_calls(call, ws, repeat, cores)
                    loaded = contended_rows(call, ws, repeat, cores, contend, contend_mode) if contend else []
                err = None if impl == "ref" and not graph else relative_error(out, reference)
                label = impl + ("+graph" if graph else "")
                rows.append(BenchRow(arch, res, batch, label, precision, seconds * 1000, batch / seconds, peak, err))
                rows += [BenchRow(arch, res, batch, label, precision, s * 1000, n * batch / s, p, None, condition, n)
                         for condition, s, n, p in loaded]
                del call, out
        floor = replay(record_convolutions(lambda: synthesize(G, ws, precision)), device)
        seconds, peak = time_calls(floor, ws, repeat, cores)
        rows.append(BenchRow(arch, res, batch, FLOOR, precision, seconds * 1000, batch / seconds, peak, None))
        del reference, floor
    return rows


def format_table(rows: Sequence[BenchRow], device_name: str) -> str:
    """The rows as an aligned text table. `vs ref`: speed-up over `ref` of the same batch and load;
    `x floor`: latency over the quiet conv floor of the batch; `x quiet` (rows under load): wall time
    over the same implementation's quiet time for the same number of calls."""
    ref = {(r.batch, r.condition): r.latency_ms for r in rows if r.impl == "ref"}
    floor = {r.batch: r.latency_ms for r in rows if r.impl == FLOOR}
    quiet = {(r.batch, r.impl): r.latency_ms for r in rows if r.condition == QUIET}
    lines = [f"device: {device_name}",
             f"{'network':<14}{'batch':>6} {'impl':<11}{'load':<13}{'precision':>9}{'latency ms':>12}{'img/s':>9}"
             f"{'peak MiB':>10}{'vs ref':>8}{'x floor':>9}{'x quiet':>9}{'max rel err':>13}"]
    for r in rows:
        speedup = f"{ref[r.batch, r.condition] / r.latency_ms:.2f}x" if (r.batch, r.condition) in ref else "-"
        over_floor = f"{r.latency_ms / floor[r.batch]:.2f}" if r.batch in floor and r.condition == QUIET else "-"
        over_quiet = "-" if r.condition == QUIET else f"{r.latency_ms / (quiet[r.batch, r.impl] * r.requests):.2f}"
        err = "-" if r.max_rel_err is None else f"{r.max_rel_err:.2e}"
        lines.append(f"{r.arch + '-' + str(r.res):<14}{r.batch:>6} {r.impl:<11}{r.condition:<13}{r.precision:>9}"
                     f"{r.latency_ms:>12.1f}{r.images_per_second:>9.2f}{r.peak_bytes / 2 ** 20:>10.0f}"
                     f"{speedup:>8}{over_floor:>9}{over_quiet:>9}{err:>13}")
    return "\n".join(lines)
