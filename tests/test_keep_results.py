"""spaces.common.keep_results: in the browser a user error keeps every earlier result and says what went
wrong in the status line; an API caller gets the error; real faults are not disguised as user errors.
(The browser side, toast and no badge, is checked on the real tabs in the browser test modules.)"""
from __future__ import annotations

import types
import warnings

import gradio as gr
import pytest

from spaces.common import SEED_MAX, keep_results, plain, required_seed, user_errors

BROWSER = types.SimpleNamespace(target=object())  # what Gradio passes when a component triggered the event
API = types.SimpleNamespace(target=None)


def double(x: float, progress: gr.Progress = gr.Progress()):
    if x < 0:
        raise ValueError("x must be positive")
    if x == 13:
        raise RuntimeError("a real fault")
    return x * 2, "done"


def count_up(x: float):
    yield x, "first"
    if x < 0:
        raise ValueError("negative")
    yield x + 1, "second"


@pytest.fixture(scope="module")
def parts():
    with gr.Blocks():
        return gr.Number(), gr.Markdown()


def call(fn, *args, event):
    """fn's result (a generator's items as a list), with gr.Warning, outside a request a Python warning, quiet."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fn(*args, _stylecore_event=event)
        return list(result) if isinstance(result, types.GeneratorType) else result


def test_browser_error_keeps_results_and_fills_status(parts):
    value, status = parts
    wrapped = keep_results(user_errors(double), [value, status], status)
    assert call(wrapped, 2, event=BROWSER) == (4, "done")
    kept, line = call(wrapped, -1, event=BROWSER)
    assert kept == gr.skip()
    assert "x must be positive" in line and "Could not" in line


def test_api_caller_gets_the_error(parts):
    value, status = parts
    wrapped = keep_results(user_errors(double), [value, status], status)
    with pytest.raises(gr.Error, match="x must be positive"):
        call(wrapped, -1, event=API)


def test_real_fault_is_not_a_user_error(parts):
    value, status = parts
    wrapped = keep_results(user_errors(double), [value, status], status)
    with pytest.raises(RuntimeError, match="a real fault"):
        call(wrapped, 13, event=BROWSER)


def test_generator_keeps_what_it_streamed(parts):
    value, status = parts
    wrapped = keep_results(user_errors(count_up), [value, status], status)
    assert call(wrapped, 1, event=BROWSER) == [(1, "first"), (2, "second")]
    first, failed = call(wrapped, -1, event=BROWSER)
    assert first == (-1, "first") and failed[0] == gr.skip() and "negative" in failed[1]


def test_gradio_sees_the_event_parameter(parts):
    """Gradio passes gr.EventData only to a parameter annotated with it; Progress keeps its default."""
    from gradio.utils import get_type_hints
    import inspect

    value, status = parts
    wrapped = keep_results(user_errors(double), [value, status], status)
    assert get_type_hints(wrapped)["_stylecore_event"] is gr.EventData
    assert isinstance(inspect.signature(wrapped).parameters["progress"].default, gr.Progress)


def test_one_seed_range_in_plain_numbers():
    assert required_seed(SEED_MAX) == 2 ** 32 - 1
    with pytest.raises(ValueError, match="from 0 to 4294967295, got 4294967296"):
        required_seed(2 ** 32)
    assert plain(0.5) == "0.5" and plain(1e-6) == "1e-06" and plain(10000.0) == "10000"


def test_one_log_line_per_user_error_and_no_traceback(parts, caplog):
    """The console gets one line per input error; Gradio is told not to print a traceback for it."""
    value, status = parts
    wrapped = keep_results(user_errors(double), [value, status], status)
    with caplog.at_level("WARNING", logger="stylecore.app"):
        call(wrapped, -1, event=BROWSER)
        with pytest.raises(gr.Error) as raised:
            call(wrapped, -1, event=API)
    assert [r.getMessage() for r in caplog.records] == ["user error in double: x must be positive"] * 2
    assert raised.value.print_exception is False
