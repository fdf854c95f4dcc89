"""Write a random-weight generator of a released configuration in any real checkpoint format,
for benchmarks: `python -m tests.writers.released --arch sg2 --res 1024 --format ada OUT.pkl`."""
from __future__ import annotations

import argparse

import torch

from stylecore.networks import build_generator
from tests.writers.official_pickle import SG3_STYLEGAN2_SRC, SG3_STYLEGAN3_SRC, ADA_NETWORKS_SRC, write_official_pickle
from tests.writers.rosinality import write_rosinality_pt
from tests.writers.tf_pickle import write_tf_pickle

CONFIGS = {
    "sg2": lambda res: dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3,
                            mapping_kwargs={"num_layers": 8}, channel_base=32768 if res >= 512 else 16384,
                            channel_max=512, num_fp16_res=4, conv_clamp=256),
    "sg3t": lambda res: dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3,
                             mapping_kwargs={"num_layers": 2}, channel_base=32768 if res >= 512 else 16384,
                             channel_max=512, magnitude_ema_beta=0.999),
    "sg3r": lambda res: dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3,
                             mapping_kwargs={"num_layers": 2}, channel_base=65536 if res >= 512 else 32768,
                             channel_max=1024, conv_kernel=1, use_radial_filters=True, magnitude_ema_beta=0.999),
}


def write_released(path: str, arch: str, res: int, fmt: str, seed: int = 0) -> None:
    torch.manual_seed(seed)
    kwargs = CONFIGS[arch](res)
    G = build_generator("stylegan3" if arch.startswith("sg3") else "stylegan2", kwargs)
    if fmt in ("ada", "sg3"):
        src = {"ada": ADA_NETWORKS_SRC, "sg3": SG3_STYLEGAN3_SRC if arch.startswith("sg3") else SG3_STYLEGAN2_SRC}[fmt]
        write_official_pickle(path, G, kwargs, flavour=fmt, module_src=src)
    elif fmt == "tf":
        write_tf_pickle(path, G, dict(kwargs, conv_clamp=None, num_fp16_res=0))
    elif fmt == "rosinality":
        write_rosinality_pt(path, G, kind="convert_weight")
    else:
        raise ValueError(f"unknown format {fmt}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", choices=sorted(CONFIGS), default="sg2")
    parser.add_argument("--res", type=int, default=1024)
    parser.add_argument("--format", choices=["ada", "sg3", "tf", "rosinality"], default="ada")
    parser.add_argument("out")
    a = parser.parse_args()
    write_released(a.out, a.arch, a.res, a.format)
    print(f"wrote {a.out}")
