"""When the ops use the CUDA kernels: built and self-checked once per device, in the background
under `auto`, with one notice and the torch ops when a build or the check fails. The gate's logic
and the self-check run here on the CPU with stand-in kernel modules; the real kernels on a GPU are
tested in test_kernels_cuda.py."""
from __future__ import annotations

import threading
import types

import torch

from stylecore.ops.bias_act import bias_act
from stylecore.ops.cuda_kernels import KernelGate, cuda_kernel_ops
from stylecore.ops.kernel_check import self_check
from stylecore.ops.filtered_lrelu import filtered_lrelu
from stylecore.ops.impl import use_impl
from stylecore.ops.upfirdn2d import upfirdn2d

CPU = torch.device("cpu")


def test_failed_preparation_prints_one_line_and_keeps_the_torch_ops(capfd):
    calls = []

    def prepare(device):
        calls.append(device)
        return "upfirdn2d: nvcc failed: error: expected ';'"

    gate = KernelGate(prepare)
    assert gate.usable(CPU, wait=True) is False
    assert gate.usable(CPU, wait=False) is False and gate.usable(CPU, wait=True) is False
    assert len(calls) == 1, "a failed build is not retried on every call"
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert lines == ["stylecore: CUDA kernels not used on cpu (upfirdn2d: nvcc failed: error: expected ';'); "
                     "using the torch ops"]


def test_an_exception_while_preparing_is_a_notice_not_a_crash(capfd):
    def prepare(device):
        raise OSError("no space left on device")

    assert KernelGate(prepare).usable(CPU, wait=True) is False
    assert "OSError: no space left on device" in capfd.readouterr().err


def test_auto_never_waits_for_a_build_and_fast_does():
    release = threading.Event()
    gate = KernelGate(lambda device: None if release.wait(30) else "timed out")
    assert gate.usable(CPU, wait=False) is False  # building in the background: torch ops serve meanwhile
    assert gate.usable(CPU, wait=False) is False
    release.set()
    assert gate.usable(CPU, wait=True) is True
    assert gate.usable(CPU, wait=False) is True


def reference_stand_in(scale_upfirdn2d: float = 1.0, skip: str = "") -> types.SimpleNamespace:
    """A module with kernels.ops' functions, computing with the reference ops (optionally wrong)."""
    def run(op, name):
        def call(x, *args, **kwargs):
            if name == skip:
                return None
            with use_impl("ref"):
                y = op(x, *args, **kwargs)
            return y * scale_upfirdn2d if name == "upfirdn2d" else y
        return call

    return types.SimpleNamespace(upfirdn2d=run(upfirdn2d, "upfirdn2d"), bias_act=run(bias_act, "bias_act"),
                                 filtered_lrelu=run(filtered_lrelu, "filtered_lrelu"))


def test_self_check_accepts_agreeing_kernels_and_names_a_wrong_one():
    assert self_check(reference_stand_in(), CPU) is None
    reason = self_check(reference_stand_in(scale_upfirdn2d=1.001), CPU)
    assert reason.startswith("upfirdn2d disagrees with the reference ops on torch.float32: max relative error 1.0e-03")
    reason = self_check(reference_stand_in(scale_upfirdn2d=1.05), CPU)
    assert reason.startswith("upfirdn2d disagrees with the reference ops on torch.float32")
    assert self_check(reference_stand_in(skip="filtered_lrelu"), CPU) == "filtered_lrelu did not run on torch.float32"


def test_self_check_catches_a_kernel_wrong_only_in_half_precision():
    stand_in = reference_stand_in()
    correct = stand_in.bias_act
    stand_in.bias_act = lambda x, *a, **k: correct(x, *a, **k) * (1.03 if x.dtype == torch.float16 else 1.0)
    assert self_check(stand_in, CPU).startswith("bias_act disagrees with the reference ops on torch.float16")


def test_cpu_tensors_never_go_to_the_cuda_kernels():
    for impl in ("ref", "fast", "auto"):
        with use_impl(impl):
            assert cuda_kernel_ops(torch.zeros(1, 1, 4, 4)) is None
