"""A full queue: `python app.py --queue-size 1 --concurrency 1`, more requests than fit.

Gradio's queue holds the requests waiting for a worker (not the ones running): with one worker
per event and room for one waiting request, two /video renders fit (one running, one waiting).
The test makes that state on purpose (A running, B waiting), then fires a burst of requests at
the same instant from threads: gradio_client users and a raw POST to /gradio_api/call/video.
Every one of them must be refused at once with a message that says the queue is full (Gradio 6:
HTTP 503 "Queue is full. Max size is 1 and size is 1." on the raw API, gradio_client turns the
503 into QueueError "Queue is full! Please try again."; Gradio's page shows an error toast with its
fixed text "This application is currently busy. Please try again.", not tested here). A and B still
finish with correct videos, and the app serves the next request. One launch, loopback only, bounded
in count and time.
"""
from __future__ import annotations

import contextlib
import re
import threading
import time
from pathlib import Path

import pytest

from app_server import api_client, launch_app

BURST = 5  # requests fired at once while the queue is full: 4 gradio_client users + 1 raw POST
FRAMES = 20  # frames per transition of A: 2 transitions -> 41 frames, several seconds on a CPU
WAIT_S = 60


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("queue-full-app")
    with launch_app(["--device", "cpu", "--queue-size", "1", "--concurrency", "1"], workdir=workdir) as server:
        yield server


def _video_kwargs(seeds: str, frames: int) -> dict:
    return dict(model_id="demo-sg3", seeds=seeds, frames_per_transition=frames, loop=False, fps=10,
                api_name="/video")


def _check_video(result, frames: int) -> None:
    video, gif, status = result
    path = Path(video["video"] if isinstance(video, dict) else video)
    assert path.suffix == ".mp4" and path.stat().st_size > 0, path
    assert f"{frames} frames, 64x64" in status, status


def _wait_for(job, codes, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if job.status().code in codes:
            return
        if job.done():
            job.result()  # raises the job's error, if any
            pytest.fail(f"the request finished before it was {what}: make it longer")
        time.sleep(0.05)
    pytest.fail(f"the request was not {what} within {WAIT_S} s: {job.status()}")


def _raw_post(url: str) -> tuple[int, str]:
    import httpx

    with httpx.Client(trust_env=False, timeout=30) as http:  # model_id and seeds; the rest are defaults
        response = http.post(f"{url}gradio_api/call/video", json={"data": ["demo-sg3", "5, 6"]})
    return response.status_code, response.text


def test_overflow_is_refused_clearly_and_accepted_requests_finish(app, tmp_path):
    from gradio_client.utils import QueueError, Status

    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(api_client(app, tmp_path / "downloads"))
        # The burst's users connect first (each Client reads the app's config), so the burst itself
        # is only their requests.
        users = [stack.enter_context(api_client(app, tmp_path / f"user{k}")) for k in range(BURST - 1)]

        # A runs (the only worker of /video), B waits in the queue: the queue (size 1) is now full.
        job_a = client.submit(**_video_kwargs("0, 1, 2", FRAMES))
        _wait_for(job_a, (Status.PROCESSING, Status.ITERATING, Status.PROGRESS), "running")
        job_b = client.submit(**_video_kwargs("3, 4", 2))
        _wait_for(job_b, (Status.IN_QUEUE,), "waiting in the queue")

        # The burst: BURST requests released at the same instant.
        barrier = threading.Barrier(BURST)
        outcomes: dict[str, object] = {}

        def user(k: int) -> None:
            barrier.wait(timeout=30)
            try:
                outcomes[f"client{k}"] = users[k].predict(**_video_kwargs(f"{10 + k}, {20 + k}", 2))
            except Exception as exc:  # noqa: BLE001 - checked below
                outcomes[f"client{k}"] = exc

        def raw() -> None:
            barrier.wait(timeout=30)
            outcomes["raw"] = _raw_post(app.url)

        threads = [threading.Thread(target=user, args=(k,)) for k in range(BURST - 1)]
        threads.append(threading.Thread(target=raw))
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=WAIT_S)
        assert not any(t.is_alive() for t in threads), "a refused request did not come back"
        a_running = not job_a.done()
        note = "" if a_running else f" (but A ended before the burst was answered: {job_a.status()})"

        assert len(outcomes) == BURST
        status, body = outcomes.pop("raw")
        assert status == 503, f"the raw POST was not refused: {status} {body}{note}"
        assert re.search(r"Queue is full\. Max size is 1", body), body
        for name, outcome in outcomes.items():
            assert isinstance(outcome, QueueError), f"{name} was not refused: {outcome!r}{note}"
            assert "queue is full" in str(outcome).lower(), f"{name}: unclear refusal {outcome!r}"
        assert a_running, f"A ended before the burst was answered{note}: make A longer"

        # The accepted requests still finish with the right videos.
        _check_video(job_a.result(timeout=WAIT_S * 2), 2 * FRAMES + 1)  # two transitions
        _check_video(job_b.result(timeout=WAIT_S), 2 + 1)  # one transition of 2 frames, plus the last

        # And the next request is served (the queue is empty again).
        _check_video(client.predict(**_video_kwargs("7, 8", 2)), 2 + 1)
        gallery, grid, status = client.predict(model_id="demo", seeds="3", api_name="/generate")
        assert gallery[0]["caption"] == "seed 3"
    assert app.alive()
    print(f"\nqueue-full test: {time.monotonic() - began:.1f} s")
    assert "Traceback" not in app.log(), app.log()[-3000:]
