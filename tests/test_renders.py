"""Stop ends a render at once and leaves no file, whether the render waits between steps (Gradio
cancelled the event and will never resume it) or is in the middle of a step."""
from __future__ import annotations

import threading
import time
import types

import pytest

pytest.importorskip("gradio")

from spaces.renders import StoppableRenders  # noqa: E402
from stylecore.progress import Cancelled  # noqa: E402


def steps_writing(folder, cancelled, step_seconds: float, started: threading.Event):
    """A render: one partial file, a step at a time, checking its cancel flag before each yield."""
    part = folder / ".walk.part.mp4"
    part.write_bytes(b"")
    try:
        for k in range(100):
            started.set()
            time.sleep(step_seconds)
            with part.open("ab") as f:
                f.write(b"frame")
            if cancelled():
                raise Cancelled("cancelled")
            yield (k + 1) / 100, f"step {k + 1}"
    finally:
        part.unlink(missing_ok=True)  # what the MP4 writer does on an error or a close
    return folder / "walk.mp4"


def no_progress(fraction, desc=None):
    pass


@pytest.mark.parametrize("step_seconds", [0.0, 0.5])
def test_stop_removes_the_partial_file_and_folder(tmp_path, step_seconds):
    renders = StoppableRenders()
    request = types.SimpleNamespace(session_hash="browser-1")
    folder = tmp_path / "stylecore-video-x"
    folder.mkdir()
    started = threading.Event()
    steps = steps_writing(folder, renders.cancel_flag(request), step_seconds, started)
    event = renders.drive(request, steps, folder, no_progress, lambda message: message)
    assert next(event) == "step 1"  # like Gradio: one update shown ...
    updates = []
    if step_seconds:  # ... then the next step is being rendered in a worker thread when Stop comes
        worker = threading.Thread(target=lambda: updates.extend(event), daemon=True)
        started.clear()
        worker.start()
        started.wait(5)
    t0 = time.monotonic()
    renders.stop(request)  # (otherwise the event waits between steps: Gradio never resumes it)
    assert time.monotonic() - t0 < 5
    if step_seconds:
        worker.join(5)
        assert updates == ["Stopped after: step 1. No file was written."], "a Stop is reported, not an error"
    assert not folder.exists(), "Stop must remove the partial file and its folder"


def test_stop_of_another_session_or_without_a_render_changes_nothing(tmp_path):
    renders = StoppableRenders()
    mine, other = types.SimpleNamespace(session_hash="a"), types.SimpleNamespace(session_hash="b")
    renders.stop(other)  # nothing running: no error
    folder = tmp_path / "f"
    folder.mkdir()
    event = renders.drive(mine, steps_writing(folder, renders.cancel_flag(mine), 0.0, threading.Event()), folder,
                          no_progress, lambda message: message)
    next(event)
    renders.stop(other)
    assert (folder / ".walk.part.mp4").exists()
    assert next(event) == "step 2"
    event.close()  # a Gradio cancel that reaches the generator cleans up too
    assert not folder.exists()
