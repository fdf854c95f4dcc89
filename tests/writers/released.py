"""Write a random-weight generator of a released configuration in any real checkpoint format,
for benchmarks: `python -m tests.writers.released --arch sg2 --res 1024 --format ada OUT.pkl`."""
from __future__ import annotations

import argparse

from stylecore.engine.released import ARCHITECTURE, random_released_generator, released_kwargs
from tests.writers.official_pickle import (
    ADA_NETWORKS_SRC,
    SG3_STYLEGAN2_SRC,
    SG3_STYLEGAN3_SRC,
    write_official_pickle,
)
from tests.writers.rosinality import write_rosinality_pt
from tests.writers.tf_pickle import write_tf_pickle


def write_released(path: str, arch: str, res: int, fmt: str, seed: int = 0) -> None:
    kwargs = released_kwargs(arch, res)
    G = random_released_generator(arch, res, seed=seed)
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
    parser.add_argument("--arch", choices=sorted(ARCHITECTURE), default="sg2")
    parser.add_argument("--res", type=int, default=1024)
    parser.add_argument("--format", choices=["ada", "sg3", "tf", "rosinality"], default="ada")
    parser.add_argument("out")
    a = parser.parse_args()
    write_released(a.out, a.arch, a.res, a.format)
    print(f"wrote {a.out}")
