"""Low-pass FIR filter design for the alias-free (StyleGAN3) layers.

Checkpoints carry the designed filters as buffers, so this is only needed when a network is
freshly constructed; scipy is therefore imported lazily, inside the function.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch


def design_lowpass_filter(
    numtaps: int,
    cutoff: float,
    width: float,
    fs: float,
    radial: bool = False,
) -> Optional[torch.Tensor]:
    """Kaiser-windowed low-pass filter, 1-D separable or 2-D radial (jinc); None for one tap.

    Separable: `scipy.signal.firwin(numtaps, cutoff, width=width, fs=fs)` (DC gain 1).
    Radial: jinc `J1(2*pi*cutoff*r) / (pi*r)` on the tap grid, times the outer product of a
    1-D Kaiser window whose beta matches the transition width, normalised to sum 1.
    Returned as a float32 CPU tensor; `None` means the identity (no filtering).
    """
    numtaps = int(numtaps)
    if numtaps < 1:
        raise ValueError(f"numtaps must be at least 1, got {numtaps}")
    if numtaps == 1:
        return None

    import scipy.signal  # lazy: only freshly constructed networks design filters

    if not radial:
        f = scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
        return torch.from_numpy(np.asarray(f, dtype=np.float32))

    import scipy.special

    x = (np.arange(numtaps, dtype=np.float64) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    with np.errstate(divide="ignore", invalid="ignore"):
        f = scipy.special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    # Odd tap counts put a sample at r = 0; there J1(2 pi c r) / (pi r) tends to c.
    f = np.where(r == 0, cutoff, f)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    w = np.kaiser(numtaps, beta)
    f = f * np.outer(w, w)
    f = f / np.sum(f)
    return torch.from_numpy(np.asarray(f, dtype=np.float32))
