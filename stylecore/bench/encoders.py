"""Seconds per image of the encoder methods with random weights of the released configuration
(IR-SE50 encoders, 256x256 input): one pass for pSp and e4e, ReStyle's iterations, each including
the decoding at the generator's resolution, as the published per-image times do."""
from __future__ import annotations

import time

import torch

from stylecore.inversion.encoders import EncoderModel, encode, decode, restyle
from stylecore.networks.encoders import BackboneEncoder, Encoder4Editing, GradualStyleEncoder

RELEASED = {  # kind -> (encoder class, input channels)
    "psp": (GradualStyleEncoder, 3),
    "e4e": (Encoder4Editing, 3),
    "restyle_e4e": (BackboneEncoder, 6),
}


def random_encoder_model(kind: str, G: torch.nn.Module) -> EncoderModel:
    """An EncoderModel of the released architecture with random encoder weights around decoder G."""
    cls, input_nc = RELEASED[kind]
    torch.manual_seed(0)
    device = next(G.parameters()).device
    encoder = cls(input_nc=input_nc, n_styles=G.num_ws).to(device).eval().requires_grad_(False)
    latent_avg = G.mapping.w_avg.detach().clone().repeat(G.num_ws, 1)
    return EncoderModel(kind=kind, encoder_type=cls.__name__, encoder=encoder, decoder=G, latent_avg=latent_avg,
                        n_styles=G.num_ws, input_nc=input_nc, input_size=(256, 256), output_rows=None)


def bench_encoders(G: torch.nn.Module, repeat: int = 3, iterations: int = 5) -> dict[str, float]:
    """Best-of-`repeat` seconds per image for each released encoder kind."""
    device = next(G.parameters()).device
    image = torch.rand(1, 3, G.img_resolution, G.img_resolution, device=device) * 2 - 1
    times: dict[str, float] = {}
    for kind in RELEASED:
        model = random_encoder_model(kind, G)

        def run() -> None:
            with torch.no_grad():
                if model.iterative:
                    restyle(model, image, iterations=iterations)
                else:
                    decode(model, encode(model, image))

        run()  # warm-up
        best = float("inf")
        for _ in range(repeat):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            run()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - start)
        label = f"{kind} ({iterations} iterations)" if model.iterative else kind
        times[label] = best
    return times
