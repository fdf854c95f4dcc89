"""What CUDA graphs and torch.compile need of the synthesis forward passes (the original StyleGAN3
cannot be captured), checked without a GPU:
- they trace as one graph (torch.compile, fullgraph=True, eager backend: nothing is compiled): no
  `.item()`, no data-dependent Python branches, in the reference ops and on the fast CPU path;
- on a device other than the CPU ('meta' stands in for CUDA) they never touch a host tensor (no
  copy from the host inside forward) and never read a value back (`.item()` fails on meta).
"""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from stylecore.engine.demo import build_demo_generator
from stylecore.ops.impl import use_impl
from stylecore.engine.released import random_released_generator


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def synthesis_kwargs(architecture: str) -> dict:
    kwargs = {"noise_mode": "const"}
    if architecture == "stylegan3":  # the per-call input transform of translate/rotate
        angle = torch.tensor(0.3)
        kwargs["transform"] = torch.stack([torch.stack([angle.cos(), -angle.sin(), torch.tensor(0.1)]),
                                           torch.stack([angle.sin(), angle.cos(), torch.tensor(-0.05)]),
                                           torch.tensor([0.0, 0.0, 1.0])])
    return kwargs


@pytest.mark.parametrize("impl", ["ref", "auto"])
@pytest.mark.parametrize("architecture", ["stylegan2", "stylegan3"])
def test_synthesis_traces_as_one_graph(architecture, impl):
    G = build_demo_generator(architecture).eval().requires_grad_(False)
    ws = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0)), None)
    kwargs = synthesis_kwargs(architecture)
    with use_impl(impl), torch.no_grad():
        eager = G.synthesis(ws, **kwargs)
        traced = torch.compile(G.synthesis, fullgraph=True, backend="eager")(ws, **kwargs)
    torch.testing.assert_close(traced, eager, rtol=0, atol=1e-6)


class HostTensorOps(TorchDispatchMode):
    """Records every op that reads a CPU tensor."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        tensors = [t for t in tree_leaves((args, kwargs or {})) if isinstance(t, torch.Tensor)]
        if any(t.device.type == "cpu" for t in tensors):
            self.found.append(f"{func} on {[(tuple(t.shape), str(t.device)) for t in tensors]}")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("impl", ["auto", "torch"])
@pytest.mark.parametrize("network", ["demo-stylegan2", "demo-stylegan3", "sg2-1024", "sg3t-1024", "sg3r-1024"])
def test_synthesis_on_a_device_never_touches_the_host(network, impl):
    if network.startswith("demo-"):
        architecture = network[5:]
        G = build_demo_generator(architecture)
    else:
        architecture = "stylegan2" if network.startswith("sg2") else "stylegan3"
        G = random_released_generator(network.split("-")[0], 1024)
    ws = G.mapping(torch.randn(2, G.z_dim), None).to("meta")
    G = G.to("meta").eval().requires_grad_(False)
    kwargs = {k: v.to("meta") if isinstance(v, torch.Tensor) else v for k, v in synthesis_kwargs(architecture).items()}
    ops = HostTensorOps()
    with use_impl(impl), torch.no_grad(), ops:
        img = G.synthesis(ws, **kwargs)
    assert img.shape == (2, 3, G.img_resolution, G.img_resolution) and img.device.type == "meta"
    assert ops.found == [], "forward reads host tensors: " + "; ".join(ops.found[:5])
