"""`bench invert` at a tiny size: the demo generator stands in for the released one and a SMALL HyperStyle
for the released widths, so one run of the command makes every row (W/W+ schedules, PTI's timed phases and
projections, a HyperStyle image) in seconds. Checked: each row is there, with positive, finite times and
the published figure on it. The speed itself is measured by `python -m stylecore bench invert`, never here."""
from __future__ import annotations

import io
import math
from contextlib import redirect_stdout
from typing import Any, Callable

import pytest

from stylecore.__main__ import build_parser, main
from stylecore.bench import invert as bench
from stylecore.codes.schedule import COARSE_TO_FINE, FULL
from stylecore.engine.demo import build_demo_generator
from stylecore.inversion.hyperstyle_random import SMALL, random_hyperstyle
from stylecore.inversion.methods import METHODS

RES = 64  # the demo generator's; its coarse steps run at 32 px
DEFAULT = METHODS["pti"].steps.default
BUDGETS = [f"tab default {DEFAULT}+{DEFAULT}", "paper 450+350"]


@pytest.fixture(scope="module")
def setup() -> bench.Bench:
    return bench.prepare(build_demo_generator().eval().requires_grad_(False), seed=1)


def _kept(monkeypatch: pytest.MonkeyPatch, name: str, results: dict[str, Any]) -> None:
    """bench.<name> as it is, its result kept in `results[name]` for the test to look at."""
    real: Callable[..., Any] = getattr(bench, name)

    def keep(*args: Any, **kwargs: Any) -> Any:
        results[name] = real(*args, **kwargs)
        return results[name]

    monkeypatch.setattr(bench, name, keep)


@pytest.fixture(scope="module")
def command(setup) -> tuple[list[str], dict[str, Any]]:
    """`bench invert` with every row (the default), 2 steps each: its stdout lines, and the PTI and
    HyperStyle results."""
    results: dict[str, Any] = {}
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, redirect_stdout(out):
        mp.setattr("stylecore.engine.released.random_released_generator", lambda arch, res, device: setup.G)
        mp.setattr(bench, "prepare", lambda G, seed: setup)  # the LPIPS and W statistics made once
        mp.setattr(bench, "random_hyperstyle", lambda G, **released: random_hyperstyle(G, **SMALL))
        _kept(mp, "bench_pti", results)
        _kept(mp, "bench_hyperstyle", results)
        assert main(["bench", "invert", "--res", "256", "--device", "cpu", "--steps", "2", "--pti-steps", "2",
                     "--threads", "1"]) == 0
    return out.getvalue().splitlines(), results


def _positive(seconds: float) -> bool:
    return math.isfinite(seconds) and seconds > 0


def test_every_row_is_printed_and_said_to_be_random_weights(command):
    lines, _ = command
    assert lines[0].startswith("inversion on cpu (CPU, 1 threads)") and "random weights" in lines[0]
    for label in ("W (projector)", "W+ (Image2StyleGAN)", "PTI (W pivot + pivotal tuning)", "HyperStyle"):
        assert sum(line.startswith(f"{RES}px {label}") for line in lines) == 1, label


def test_pti_times_both_phases_under_both_schedules_beside_the_published_figure(command):
    lines, results = command
    full, c2f = results["bench_pti"]
    assert (full.schedule, c2f.schedule) == (FULL, COARSE_TO_FINE)
    assert full.pivot.result.resolutions == full.tuning.result.resolutions == [RES, RES]
    assert c2f.pivot.result.resolutions == c2f.tuning.result.resolutions == [32, RES]
    for run in (full, c2f):
        for phase in (run.pivot, run.tuning):
            assert all(_positive(phase.per_step(size)) for size in phase.result.resolutions)
        assert list(run.projected) == BUDGETS and all(_positive(s) for s in run.projected.values())
    assert full.projected[BUDGETS[1]] == pytest.approx(450 * full.pivot.per_step(RES) + 350 * full.tuning.per_step(RES))
    header = next(i for i, line in enumerate(lines) if line.startswith(f"{RES}px PTI"))
    assert "CPU times on random weights" in lines[header] and all(b in lines[header] for b in BUDGETS)
    rows = lines[header + 1:header + 3]
    assert rows[0].split()[:2] == [FULL, f"2@{RES}"] and rows[1].split()[:2] == [COARSE_TO_FINE, f"1@32+1@{RES}"]
    assert all("published (PTI, 450 + 350 steps): ~56 s/image on a V100-class GPU" in row for row in rows)


def test_hyperstyle_time_per_image_is_printed_beside_the_published_one(command):
    lines, results = command
    assert _positive(results["bench_hyperstyle"])
    row = next(line for line in lines if line.startswith(f"{RES}px HyperStyle"))
    assert "(5 passes, released widths, untrained), CPU time on random weights" in row
    assert f"{results['bench_hyperstyle']:.2f} s/image" in row
    assert "published (HyperStyle, 5 passes): ~1.2 s/image on a V100-class GPU" in row


def test_pti_needs_two_steps_to_time_both_resolutions(setup):
    with pytest.raises(ValueError, match="at least 2"):
        bench.bench_pti(setup, 1, [FULL])


def test_the_rows_are_chosen_by_methods():
    parse = build_parser().parse_args
    assert parse(["bench", "invert"]).methods == ["w", "wplus", "pti", "hyperstyle"]
    assert parse(["bench", "invert", "--methods", "pti, hyperstyle,pti"]).methods == ["pti", "hyperstyle"]
    with pytest.raises(SystemExit):
        parse(["bench", "invert", "--methods", "w,encoder"])
