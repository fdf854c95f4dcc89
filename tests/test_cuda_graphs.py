"""A synthesis call replayed from a CUDA graph gives the eager result for every new code (GPU only;
on the CPU it refuses clearly)."""
from __future__ import annotations

import pytest
import torch

from stylecore.ops.cuda_graphs import GraphedSynthesis
from stylecore.engine.demo import build_demo_generator
from stylecore.ops.impl import use_impl

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_cpu_codes_are_refused():
    G = build_demo_generator("stylegan2")
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        GraphedSynthesis(G, torch.zeros(1, G.num_ws, G.w_dim))


@needs_cuda
@pytest.mark.parametrize("impl", ["ref", "auto"])
@pytest.mark.parametrize("architecture", ["stylegan2", "stylegan3"])
def test_replay_matches_eager_for_new_codes(architecture, impl):
    G = build_demo_generator(architecture).cuda().eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    codes = [G.mapping(torch.randn(2, G.z_dim, generator=gen).cuda(), None) for _ in range(3)]
    with use_impl(impl), torch.no_grad():
        graphed = GraphedSynthesis(G, codes[0], noise_mode="const")
        for ws in codes:
            eager = G.synthesis(ws, noise_mode="const")
            torch.testing.assert_close(graphed(ws), eager, rtol=0, atol=1e-5)
        with pytest.raises(ValueError, match="captured for codes of shape"):
            graphed(codes[0][:1])
