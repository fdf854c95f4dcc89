"""The CUDA kernels against the plain-torch reference ops in stylecore.ops.

The numeric tests on the GPU need one (they run on the lent GPU machine and are skipped elsewhere).
Without a GPU the kernels' own code still runs through a CPU emulation
(kernels/csrc/cpu_emulation.cpp, built here with g++), and the plain-Python parts (activation
defaults, the adjoint resampling used for gradients, the None fallbacks) are checked directly.
References are computed in float64 on the CPU.
"""
from __future__ import annotations

import ctypes
import math
import random
import shutil
import subprocess
from dataclasses import dataclass
from typing import Optional

import pytest
import torch

import kernels
from kernels import ops as kops
from kernels.extensions import CSRC
from stylecore.ops.bias_act import ACTIVATIONS
from stylecore.ops.bias_act import bias_act as ref_bias_act
from stylecore.ops.filtered_lrelu import filtered_lrelu as ref_filtered_lrelu
from stylecore.ops.args import filter_size
from stylecore.ops.upfirdn2d import upfirdn2d as ref_upfirdn2d

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 3e-2}  # max error / max |reference|
FACTORS = (1, 2, 4)
ACTS = tuple(kops.ACTIVATION_DEFAULTS)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    assert got.shape == want.shape, (tuple(got.shape), tuple(want.shape))
    return ((got.detach().double().cpu() - want.detach()).abs().max() / want.abs().max().clamp_min(1e-12)).item()


# --- cases ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UpfirdnCase:
    shape: tuple[int, int, int, int]
    taps: Optional[tuple[int, ...]]  # None, (k,) separable, (h, w) 2-D
    up: tuple[int, int]
    down: tuple[int, int]
    padding: tuple[int, int, int, int]
    flip_filter: bool
    gain: float
    seed: int

    def inputs(self) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """x and f in float64 on the CPU; the filter is random, so a wrong flip shows."""
        g = torch.Generator().manual_seed(self.seed)
        x = torch.randn(self.shape, generator=g, dtype=torch.float64)
        f = None if self.taps is None else torch.randn(self.taps, generator=g, dtype=torch.float64)
        return x, f

    def kwargs(self) -> dict:
        return dict(up=self.up, down=self.down, padding=list(self.padding), flip_filter=self.flip_filter,
                    gain=self.gain)

    def resampling(self) -> kops.Resampling:
        return kops.Resampling(self.up, self.down, self.padding, self.flip_filter, self.gain)

    def __str__(self) -> str:
        return (f"{'x'.join(map(str, self.shape))}-f{self.taps}-up{self.up}-down{self.down}-pad{self.padding}"
                f"-flip{int(self.flip_filter)}-gain{self.gain}")


def upfirdn_cases(seed: int, count: int, max_size: int = 24, max_planes: int = 4) -> list[UpfirdnCase]:
    rng = random.Random(seed)
    cases = []
    while len(cases) < count:
        up = (rng.choice(FACTORS), rng.choice(FACTORS))
        down = (rng.choice(FACTORS), rng.choice(FACTORS))
        if rng.random() < 0.7:  # mostly the same factor on both axes, as the networks use
            up, down = (up[0], up[0]), (down[0], down[0])
        kind = rng.choice(("none", "separable", "2d"))
        taps = {"none": None, "separable": (rng.randint(1, 12),), "2d": (rng.randint(1, 8), rng.randint(1, 8))}[kind]
        fw = 1 if taps is None else taps[-1]
        fh = 1 if taps is None else taps[0]
        h, w = rng.randint(1, max_size), rng.randint(1, max_size)
        padding = tuple(rng.randint(-3, 8) for _ in range(4))
        if w * up[0] + padding[0] + padding[1] < fw or h * up[1] + padding[2] + padding[3] < fh:
            continue  # no output: the op is undefined
        shape = (rng.randint(1, 2), rng.randint(1, max_planes), h, w)
        gain = rng.choice((1.0, 0.5, float(up[0] * up[1])))
        cases.append(UpfirdnCase(shape, taps, up, down, padding, rng.random() < 0.5, gain, rng.randrange(1 << 30)))
    return cases


@dataclass(frozen=True)
class FilteredLreluCase:
    shape: tuple[int, int, int, int]
    fu_taps: Optional[tuple[int, ...]]
    fd_taps: Optional[tuple[int, ...]]
    bias: bool
    up: int
    down: int
    padding: tuple[int, int, int, int]
    gain: float
    slope: float
    clamp: Optional[float]
    flip_filter: bool
    seed: int

    def inputs(self) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed)
        x = torch.randn(self.shape, generator=g, dtype=torch.float64)
        fu = None if self.fu_taps is None else torch.randn(self.fu_taps, generator=g, dtype=torch.float64)
        fd = None if self.fd_taps is None else torch.randn(self.fd_taps, generator=g, dtype=torch.float64)
        b = torch.randn(self.shape[1], generator=g, dtype=torch.float64) if self.bias else None
        return x, fu, fd, b

    def kwargs(self) -> dict:
        return dict(up=self.up, down=self.down, padding=list(self.padding), gain=self.gain, slope=self.slope,
                    clamp=self.clamp, flip_filter=self.flip_filter)

    def __str__(self) -> str:
        return (f"{'x'.join(map(str, self.shape))}-fu{self.fu_taps}-fd{self.fd_taps}-b{int(self.bias)}-up{self.up}"
                f"-down{self.down}-pad{self.padding}-clamp{self.clamp}-flip{int(self.flip_filter)}")


def filtered_lrelu_cases(seed: int, count: int, max_size: int = 16) -> list[FilteredLreluCase]:
    rng = random.Random(seed)

    def taps() -> Optional[tuple[int, ...]]:
        kind = rng.choice(("none", "separable", "2d"))
        return {"none": None, "separable": (rng.randint(1, 12),), "2d": (rng.randint(1, 8), rng.randint(1, 8))}[kind]

    def size(t: Optional[tuple[int, ...]], axis: int) -> int:
        return 1 if t is None else (t[0] if len(t) == 1 else t[axis])

    cases = []
    while len(cases) < count:
        up, down = rng.choice(FACTORS), rng.choice(FACTORS)
        fu, fd = taps(), taps()
        h, w = rng.randint(1, max_size), rng.randint(1, max_size)
        padding = tuple(rng.randint(-3, 9) for _ in range(4))
        mid_w = w * up + padding[0] + padding[1] - size(fu, 1) + 1
        mid_h = h * up + padding[2] + padding[3] - size(fu, 0) + 1
        if mid_w < size(fd, 1) or mid_h < size(fd, 0):
            continue
        cases.append(FilteredLreluCase(
            (rng.randint(1, 2), rng.randint(1, 4), h, w), fu, fd, rng.random() < 0.7, up, down, padding,
            rng.choice((math.sqrt(2), 1.0)), rng.choice((0.2, 0.0, 0.5)), rng.choice((None, 0.5, 2.0)),
            rng.random() < 0.5, rng.randrange(1 << 30)))
    return cases


UPFIRDN_CASES = upfirdn_cases(seed=1, count=40)
FILTERED_LRELU_CASES = filtered_lrelu_cases(seed=2, count=40)


# --- no GPU needed -------------------------------------------------------------------------------

def test_activation_defaults_match_reference():
    assert set(kops.ACTIVATION_DEFAULTS) == set(ACTIVATIONS)
    for name, spec in ACTIVATIONS.items():
        assert kops.ACTIVATION_DEFAULTS[name] == pytest.approx((spec.def_alpha, spec.def_gain)), name


@pytest.mark.parametrize("case", UPFIRDN_CASES, ids=str)
def test_adjoint_resampling_is_the_reference_gradient(case: UpfirdnCase):
    """The backward of kernels.ops.upfirdn2d is upfirdn2d with Resampling.adjoint: check that
    identity with the reference op alone."""
    x, f = case.inputs()
    x.requires_grad_(True)
    y = ref_upfirdn2d(x, f, **case.kwargs())
    dy = torch.randn_like(y)
    (want,) = torch.autograd.grad(y, x, dy)
    taps = filter_size(f)
    adj = case.resampling().adjoint((x.shape[3], x.shape[2]), (y.shape[3], y.shape[2]), taps)
    got = ref_upfirdn2d(dy, f, up=adj.up, down=adj.down, padding=list(adj.padding), flip_filter=adj.flip_filter,
                        gain=adj.gain)
    assert relative_error(got, want) < 1e-12


def test_ops_decline_cpu_and_float64_without_building(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLECORE_KERNELS_CACHE", str(tmp_path / "cache"))
    x = torch.randn(1, 2, 8, 8)
    f = torch.ones(4) / 4
    assert kops.upfirdn2d(x, f, up=2) is None
    assert kops.bias_act(x, torch.zeros(2), act="lrelu") is None
    assert kops.filtered_lrelu(x, f, f, up=2, down=2) is None
    if torch.cuda.is_available():
        assert kops.upfirdn2d(x.double().cuda(), f.cuda(), up=2) is None
    assert not (tmp_path / "cache").exists()


# --- the kernels' code on the CPU ----------------------------------------------------------------

def _ptr(t: Optional[torch.Tensor]) -> Optional[ctypes.c_void_p]:
    return None if t is None else ctypes.c_void_p(t.data_ptr())


class EmulatedKernels:
    """The compiled modules' functions, with the kernels run by cpu_emulation.cpp on float32 CPU
    tensors; `shared_limit`, `threads` and `grid_z` vary tiling, thread loops and the plane loop."""

    def __init__(self, lib: ctypes.CDLL, shared_limit: int, threads: int, grid_z: int):
        self.lib, self.shared_limit, self.threads, self.grid_z = lib, shared_limit, threads, grid_z

    def _launch(self, emulate, *args) -> None:
        for limit in (self.shared_limit, 48 * 1024):  # a tight limit may not fit a large filter at all
            if emulate(*args, limit, self.threads, self.grid_z) == 0:
                return
        raise AssertionError("the emulated kernel refused the call")

    def upfirdn2d(self, x, f, up_x, up_y, down_x, down_y, px0, px1, py0, py1, flip_filter, gain):
        x = x.float().contiguous()
        f = None if f is None else f.float().contiguous()
        fh, fw = (1, 1) if f is None else f.shape
        n, c, h, w = x.shape
        out = torch.full((n, c, (h * up_y + py0 + py1 - fh) // down_y + 1, (w * up_x + px0 + px1 - fw) // down_x + 1),
                         float("nan"))
        self._launch(self.lib.emulate_upfirdn2d, _ptr(out), _ptr(x), _ptr(f), n * c, h, w, fh, fw, up_x, up_y,
                     down_x, down_y, px0, px1, py0, py1, int(flip_filter), ctypes.c_float(gain))
        return out

    def filtered_lrelu(self, x, fu, fd, b, up, down, px0, px1, py0, py1, gain, slope, clamp, flip_filter):
        x = x.float().contiguous()
        fu = None if fu is None else fu.float().contiguous()
        fd = None if fd is None else fd.float().contiguous()
        separable = all(f is None or f.ndim == 1 for f in (fu, fd))
        fuh, fuw = (1, 1) if fu is None else (fu.shape[0], fu.shape[-1])
        fdh, fdw = (1, 1) if fd is None else (fd.shape[0], fd.shape[-1])
        n, c, h, w = x.shape
        mid_h, mid_w = h * up + py0 + py1 - fuh + 1, w * up + px0 + px1 - fuw + 1
        out = torch.full((n, c, (mid_h - fdh) // down + 1, (mid_w - fdw) // down + 1), float("nan"))
        self._launch(self.lib.emulate_filtered_lrelu, _ptr(out), _ptr(x), _ptr(b), _ptr(fu), _ptr(fd), n * c, c, h, w,
                     fuh, fuw, fdh, fdw, up, down, px0, px1, py0, py1, ctypes.c_float(gain), ctypes.c_float(slope),
                     ctypes.c_float(clamp), int(flip_filter), int(separable))
        return out

    def bias_act(self, x, b, dim, act, alpha, gain, clamp):
        x = x.float().contiguous()
        b = None if b is None else b.float().contiguous()
        out = torch.full_like(x, float("nan"))
        inner = math.prod(x.shape[dim + 1:])
        self.lib.emulate_bias_act(_ptr(out), _ptr(x), _ptr(b), x.numel(), inner, x.shape[dim], ACTS.index(act),
                                  ctypes.c_float(alpha), ctypes.c_float(gain), ctypes.c_float(clamp))
        return out


@pytest.fixture(scope="module")
def emulation_lib(tmp_path_factory) -> ctypes.CDLL:
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler for the CPU emulation")
    library = tmp_path_factory.mktemp("emulation") / "kernels_emulation.so"
    done = subprocess.run([cxx, "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", f"-I{CSRC}",
                           str(CSRC / "cpu_emulation.cpp"), "-o", str(library)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return ctypes.CDLL(str(library))


def emulated(lib: ctypes.CDLL, index: int) -> EmulatedKernels:
    return EmulatedKernels(lib, shared_limit=(48 * 1024, 4096, 1024)[index % 3], threads=(32, 64)[index % 2],
                           grid_z=(1, 2, 7)[index % 3])


@pytest.mark.parametrize("index", range(len(UPFIRDN_CASES)))
def test_emulated_upfirdn2d_matches_reference(emulation_lib, index: int):
    case = UPFIRDN_CASES[index]
    x, f = case.inputs()
    want = ref_upfirdn2d(x, f, **case.kwargs())
    got = kops.run_upfirdn2d(emulated(emulation_lib, index), x, f, case.resampling())
    assert relative_error(got, want) < 1e-5, str(case)


@pytest.mark.parametrize("index", range(len(FILTERED_LRELU_CASES)))
def test_emulated_filtered_lrelu_matches_reference(emulation_lib, index: int):
    case = FILTERED_LRELU_CASES[index]
    x, fu, fd, b = case.inputs()
    want = ref_filtered_lrelu(x, fu, fd, b, **case.kwargs())
    kw = case.kwargs()
    got = kops.run_filtered_lrelu(emulated(emulation_lib, index), x.float(), fu, fd, b, kw.pop("up"), kw.pop("down"),
                                  **kw)
    assert relative_error(got, want) < 1e-5, str(case)


@pytest.mark.parametrize("act", ACTS)
def test_emulated_bias_act_matches_reference(emulation_lib, act: str):
    module = emulated(emulation_lib, 0)
    for dim, clamp in ((1, None), (0, 1.5), (2, None)):
        x = torch.randn(3, 5, 7, dtype=torch.float64) * 4
        b = torch.randn(x.shape[dim], dtype=torch.float64)
        want = ref_bias_act(x, b, dim=dim, act=act, alpha=0.3, gain=1.7, clamp=clamp)
        got = module.bias_act(x, b, dim, act, 0.3, 1.7, -1.0 if clamp is None else clamp)
        assert relative_error(got, want) < 1e-5, (act, dim, clamp)


# --- on the GPU ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def built() -> None:
    """The extensions, built (or found in the cache) for this GPU; a failed build fails the tests."""
    for name, spec in kernels.EXTENSIONS.items():
        result = kernels.ensure_built(spec)
        if result.module is None:
            pytest.fail(f"{name}: {result.status}: {result.reason}")


def on_gpu(t: Optional[torch.Tensor], dtype: torch.dtype) -> Optional[torch.Tensor]:
    return None if t is None else t.to("cuda", dtype)


LARGE_UPFIRDN_CASES = [  # several tiles per image; more planes than a grid's z dimension
    UpfirdnCase((4, 32, 67, 93), (12,), (2, 2), (1, 1), (6, 5, 6, 5), False, 4.0, 11),
    UpfirdnCase((2, 16, 130, 70), (4, 4), (1, 1), (2, 2), (1, 1, 1, 1), True, 1.0, 12),
    UpfirdnCase((1, 70000, 3, 2), (3,), (2, 2), (1, 1), (1, 1, 1, 1), False, 4.0, 13),
]


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("case", UPFIRDN_CASES + LARGE_UPFIRDN_CASES, ids=str)
def test_upfirdn2d_matches_reference(built, case: UpfirdnCase, dtype: torch.dtype):
    x, f = case.inputs()
    want = ref_upfirdn2d(x, f, **case.kwargs())
    got = kops.upfirdn2d(on_gpu(x, dtype), on_gpu(f, torch.float32), **case.kwargs())
    assert got is not None and got.dtype == dtype
    assert relative_error(got, want) < TOLERANCE[dtype]


@needs_cuda
@pytest.mark.parametrize("case", UPFIRDN_CASES[:20], ids=str)
def test_upfirdn2d_gradient_matches_reference(built, case: UpfirdnCase):
    x, f = case.inputs()
    x_ref = x.clone().requires_grad_(True)
    y_ref = ref_upfirdn2d(x_ref, f, **case.kwargs())
    dy = torch.randn_like(y_ref)
    (want,) = torch.autograd.grad(y_ref, x_ref, dy)
    x_gpu = on_gpu(x, torch.float32).requires_grad_(True)
    y = kops.upfirdn2d(x_gpu, on_gpu(f, torch.float32), **case.kwargs())
    (got,) = torch.autograd.grad(y, x_gpu, on_gpu(dy, torch.float32))
    assert relative_error(got, want) < 1e-4


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("act", ACTS)
def test_bias_act_matches_reference(built, act: str, dtype: torch.dtype):
    g = torch.Generator().manual_seed(3)
    for shape, dim, clamp, with_bias in (((4, 16, 9, 9), 1, None, True), ((8, 33), 1, 0.7, True),
                                         ((5, 6, 7), 2, None, True), ((4, 16, 9, 9), 1, 2.0, False)):
        x = torch.randn(shape, generator=g, dtype=torch.float64) * 3
        b = torch.randn(shape[dim], generator=g, dtype=torch.float64) if with_bias else None
        want = ref_bias_act(x, b, dim=dim, act=act, clamp=clamp)
        got = kops.bias_act(on_gpu(x, dtype), on_gpu(b, dtype), dim=dim, act=act, clamp=clamp)
        assert got is not None and got.dtype == dtype
        assert relative_error(got, want) < TOLERANCE[dtype], (shape, dim, clamp, with_bias)


@needs_cuda
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("clamp", [None, 0.8])
def test_bias_act_gradients_match_reference(built, act: str, clamp: Optional[float]):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(4, 6, 5, 5, generator=g, dtype=torch.float64) * 2
    b = torch.randn(6, generator=g, dtype=torch.float64)
    x_ref, b_ref = x.clone().requires_grad_(True), b.clone().requires_grad_(True)
    y_ref = ref_bias_act(x_ref, b_ref, act=act, alpha=0.3, gain=1.3, clamp=clamp)
    dy = torch.randn_like(y_ref)
    want_x, want_b = torch.autograd.grad(y_ref, (x_ref, b_ref), dy)
    x_gpu, b_gpu = on_gpu(x, torch.float32).requires_grad_(True), on_gpu(b, torch.float32).requires_grad_(True)
    y = kops.bias_act(x_gpu, b_gpu, act=act, alpha=0.3, gain=1.3, clamp=clamp)
    got_x, got_b = torch.autograd.grad(y, (x_gpu, b_gpu), on_gpu(dy, torch.float32))
    assert relative_error(got_x, want_x) < 1e-4
    assert relative_error(got_b, want_b) < 1e-4


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("case", FILTERED_LRELU_CASES, ids=str)
def test_filtered_lrelu_matches_reference(built, case: FilteredLreluCase, dtype: torch.dtype):
    x, fu, fd, b = case.inputs()
    want = ref_filtered_lrelu(x, fu, fd, b, **case.kwargs())
    got = kops.filtered_lrelu(on_gpu(x, dtype), on_gpu(fu, torch.float32), on_gpu(fd, torch.float32),
                              on_gpu(b, torch.float32), **case.kwargs())
    assert got is not None and got.dtype == dtype
    assert relative_error(got, want) < TOLERANCE[dtype]


@needs_cuda
def test_filtered_lrelu_declines_when_gradients_are_needed(built):
    x = torch.randn(1, 2, 8, 8, device="cuda", requires_grad=True)
    f = torch.ones(4, device="cuda") / 4
    assert kops.filtered_lrelu(x, f, f, up=2, down=2, padding=3) is None
    with torch.no_grad():
        assert kops.filtered_lrelu(x, f, f, up=2, down=2, padding=3) is not None


@needs_cuda
def test_forward_passes_capture_in_a_cuda_graph(built):
    """No host copies or syncs inside the ops: they replay from a CUDA graph with the same results."""
    x = torch.randn(2, 8, 16, 16, device="cuda")
    f = torch.tensor([1.0, 3.0, 3.0, 1.0], device="cuda") / 8
    b = torch.randn(8, device="cuda")

    def forward() -> torch.Tensor:
        y = kops.upfirdn2d(x, f, up=2, padding=[2, 1, 2, 1], gain=4)
        y = kops.bias_act(y, b, act="lrelu", clamp=256)
        return kops.filtered_lrelu(y, f, f, b, up=2, down=2, padding=3)

    with torch.no_grad():
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            eager = forward()  # warm-up outside capture
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            captured = forward()
        graph.replay()
        torch.cuda.synchronize()
    assert torch.equal(captured, eager)
