"""A synthesis call captured once as a CUDA graph and replayed.

At batch 1 a StyleGAN forward on a GPU is bound by launching its hundreds of small kernels, not by
computing them; a graph launches them all in one go. The forward passes allow it: they read no
host tensor and never read a value back (tests/test_capturable.py).
"""
from __future__ import annotations

from typing import Any

import torch

WARMUP_CALLS = 3  # allocator growth and kernel choice happen before the capture, not in it


class GraphedSynthesis:
    """`G.synthesis(ws, **kwargs)` for ws of one fixed shape, replayed from a CUDA graph.

    The result is a view of the graph's output buffer: the next call overwrites it, so copy it
    to keep it. Not for concurrent use from several threads.
    """

    def __init__(self, G: torch.nn.Module, ws: torch.Tensor, **kwargs: Any):
        if ws.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device; the codes are on {ws.device}")
        self.static_ws = ws.detach().clone()
        side = torch.cuda.Stream(ws.device)
        side.wait_stream(torch.cuda.current_stream(ws.device))
        with torch.no_grad(), torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                G.synthesis(self.static_ws, **kwargs)
        torch.cuda.current_stream(ws.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(self.graph):
            self.static_out = G.synthesis(self.static_ws, **kwargs)

    def __call__(self, ws: torch.Tensor) -> torch.Tensor:
        if ws.shape != self.static_ws.shape:
            raise ValueError(f"this graph was captured for codes of shape {tuple(self.static_ws.shape)}, "
                             f"got {tuple(ws.shape)}")
        self.static_ws.copy_(ws)
        self.graph.replay()
        return self.static_out
