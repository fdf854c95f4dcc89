"""The hot ops (bias_act, upfirdn2d, conv2d_resample, filtered_lrelu): the reference torch code, fast
CPU paths, and dispatch to the CUDA kernels of kernels/ once they are built and checked."""
from __future__ import annotations

from stylecore.ops import cuda_kernels, kernel_check

cuda_kernels.GATE.install(kernel_check.prepare_cuda)
