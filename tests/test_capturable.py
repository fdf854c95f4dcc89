"""The synthesis forward passes trace as one graph (torch.compile, fullgraph=True): no host syncs,
no `.item()`, no data-dependent Python branches, in the reference ops and on the fast CPU path.
That is what CUDA graphs and torch.compile need on a GPU (the original StyleGAN3 cannot be captured);
tracing with the eager backend checks it here without compiling anything."""
from __future__ import annotations

import pytest
import torch

from stylecore.demo import build_demo_generator
from stylecore.ops.impl import use_impl


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("impl", ["ref", "auto"])
@pytest.mark.parametrize("architecture", ["stylegan2", "stylegan3"])
def test_synthesis_traces_as_one_graph(architecture, impl):
    G = build_demo_generator(architecture).eval().requires_grad_(False)
    ws = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0)), None)
    kwargs = {"noise_mode": "const"}
    if architecture == "stylegan3":  # the per-call input transform of translate/rotate
        angle = torch.tensor(0.3)
        kwargs["transform"] = torch.stack([torch.stack([angle.cos(), -angle.sin(), torch.tensor(0.1)]),
                                           torch.stack([angle.sin(), angle.cos(), torch.tensor(-0.05)]),
                                           torch.tensor([0.0, 0.0, 1.0])])
    with use_impl(impl), torch.no_grad():
        eager = G.synthesis(ws, **kwargs)
        traced = torch.compile(G.synthesis, fullgraph=True, backend="eager")(ws, **kwargs)
    torch.testing.assert_close(traced, eager, rtol=0, atol=1e-6)
