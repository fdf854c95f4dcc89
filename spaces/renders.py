"""Long renders (latent-walk videos, StyleNeRF orbits, domain morphs) as Gradio generator events that
Stop really ends.

Gradio's cancel only stops awaiting the event: a generator waiting between steps would then be
closed (and its temporary file removed) whenever the garbage collector gets to it. So a Stop also
sets the session's cancel flag, which ends a step in progress, and closes a render that waits
between steps itself; either way the partial file and its folder are removed at once.
"""
from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any, Callable, Optional

import gradio as gr

from spaces.common import SessionStopFlags, session_key
from stylecore.progress import Cancelled

STOP_WAIT_SECONDS = 60  # longest a step in progress is waited for
def remove_if_empty(folder: Path) -> None:
    try:
        if not any(folder.iterdir()):
            shutil.rmtree(folder, ignore_errors=True)
    except FileNotFoundError:
        pass  # removed already by the other side of a Stop


class StoppableRenders:
    """The render in progress of each session, and its Stop."""

    def __init__(self) -> None:
        self._flags = SessionStopFlags()
        self._runs: dict[str, tuple[Generator, Path]] = {}
        self._lock = threading.Lock()

    def cancel_flag(self, request: Optional[gr.Request]) -> Callable[[], bool]:
        """A fresh cancel flag for the session's next render (pass it to the step generator)."""
        flag = self._flags.get(request)
        flag.clear()
        return flag.is_set

    def drive(self, request: Optional[gr.Request], steps: Generator, folder: Path, progress: gr.Progress,
              update: Callable[[str], Any]) -> Generator[Any, None, Any]:
        """Run `steps` (yielding (fraction, message)), yielding `update(message)` for the event;
        returns the steps' result, or None when a Stop ended them (then the last update says so)."""
        key = session_key(request)
        with self._lock:
            self._runs[key] = (steps, folder)
        message = "nothing rendered yet"
        try:
            while True:
                try:
                    fraction, message = next(steps)
                except StopIteration as done:
                    return done.value
                except Cancelled:  # the Stop's flag ended a step: a user's choice, not an error
                    yield update(f"Stopped after: {message}. No file was written.")
                    return None
                progress(fraction, desc=message)
                yield update(message)
        finally:
            with self._lock:
                if key in self._runs and self._runs[key][0] is steps:
                    del self._runs[key]
            steps.close()  # a Gradio cancel that reached this generator: the writer removes its file
            remove_if_empty(folder)

    def stop(self, request: Optional[gr.Request]) -> None:
        """End the session's render: at once if it waits between steps, else after the step in
        progress (which then raises on its cancel flag, or is closed here)."""
        self._flags.get(request).set()
        with self._lock:
            run = self._runs.pop(session_key(request), None)
        if run is None:
            return
        steps, folder = run
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while True:
            try:
                steps.close()  # the writer removes its temporary file
                break
            except ValueError:  # "generator already executing": a step is being rendered
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)
        remove_if_empty(folder)

    def stoppable(self, start: gr.Button, stop: gr.Button, wire_render: Callable[[], Any]) -> Any:
        """Wire the render that `start` begins (`wire_render()` wires it and returns its event) with
        `stop` clickable only while it runs: Stop ends it (Gradio's cancel, and this session's render
        through `stop`). The enabling click is wired first: Gradio runs a trigger's events in order."""
        enabled = lambda on: lambda: gr.update(interactive=on)  # noqa: E731
        start.click(enabled(True), None, [stop], queue=False, api_visibility="private")
        render = wire_render()
        render.then(enabled(False), None, [stop], queue=False, api_visibility="private")
        stop.click(self._stopped, None, [stop], cancels=[render], queue=False, api_visibility="private")
        return render

    def _stopped(self, request: gr.Request) -> Any:
        self.stop(request)
        return gr.update(interactive=False)
