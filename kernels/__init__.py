"""Optional fast kernels for stylecore.ops (CUDA/C++ built on first use). Not built yet: the
plain-torch reference ops in stylecore/ops are always used."""
