"""Load: 16 gradio_client users at once on 127.0.0.1 against one `python app.py` on the CPU.

One launch with the queue set explicitly (--concurrency 2 per event, --queue-size 64). Each user
runs its own Client in a thread and makes ROUNDS requests over the cheap demo endpoints (generate,
style mix, a GANSpace edit, a StyleNeRF view, a tiny video walk, a 2-step W+ inversion of a seed),
all within TOTAL_SECONDS. Every result is checked (shapes, files); the latency p50/p95 per
endpoint, the throughput and the app's peak RSS (VmRSS of /proc/<pid>/status, sampled during the
run) are printed (run with -s to see them); timings are not asserted, the RSS bound is.

Then a cancelled request: a long /video job is cancelled while rendering; no .mp4 of it may be
left in the app's temp area, and the next request works.
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app_server import api_client, launch_app

USERS = 16
ROUNDS = 3
CONCURRENCY = 2
QUEUE_SIZE = 64
TOTAL_SECONDS = 420  # the whole load must finish within this (2 slow CPU cores are enough)
RSS_LIMIT = 4 * 1024 ** 3  # demo networks, LPIPS with a random VGG16 and 16 users' buffers fit well below


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("load-app")
    args = ["--device", "cpu", "--concurrency", str(CONCURRENCY), "--queue-size", str(QUEUE_SIZE)]
    with launch_app(args, env={"STYLECORE_LPIPS_BACKBONE": "random"}, workdir=workdir) as server:
        server.workdir = workdir
        yield server


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def png_shape(path) -> tuple:
    with Image.open(path) as im:
        assert im.format == "PNG", f"{path} is {im.format}"
        return np.asarray(im.convert("RGB")).shape


# -- the requests: (api_name, kwargs, check of the result) -------------------------------------


def _generate(client, i):
    gallery, grid, status = client.predict(model_id="demo", seeds=str(i), api_name="/generate")
    assert [g["caption"] for g in gallery] == [f"seed {i}"]
    assert png_shape(gallery[0]["image"]) == (64, 64, 3)


def _style_mix(client, i):
    image, file, status = client.predict(model_id="demo", row_seeds=f"{i}, {i + 1}", col_seeds=str(i + 2),
                                         api_name="/style_mix")
    assert png_shape(image) == (3 * 64, 2 * 64, 3)


def _edit(client, i):
    before, after, png, code, status = client.predict(model_id="demo", seed=i, method="GANSpace", pca_samples=1000,
                                                      pca_components=8, component=1, pca_strength=3.0,
                                                      api_name="/edit")
    assert png_shape(before) == png_shape(after) == (64, 64, 3)
    with np.load(code) as data:
        assert data["w"].shape[-1] == 64


def _stylenerf(client, i):
    image, status = client.predict(model_id="demo-nerf", seed=i, steps=8, api_name="/stylenerf")
    shape = png_shape(image)
    assert shape[0] == shape[1] and shape[2] == 3


def _video(client, i):
    video, gif, status = client.predict(model_id="demo-sg3", seeds=f"{i}, {i + 1}", frames_per_transition=3,
                                        loop=False, fps=10, api_name="/video")
    path = video["video"] if isinstance(video, dict) else video
    assert str(path).endswith(".mp4") and Path(path).stat().st_size > 0
    assert "frames" in status


def _invert(client, i):
    aligned, gallery, table, plot, strip, codes, chosen, status = client.predict(
        model_id="demo", source="seed", seed=i, methods=["wplus"], wplus_steps=2, api_name="/invert")
    assert len(gallery) == 2 and png_shape(gallery[1]["image"]) == (64, 64, 3)
    assert len(codes) == 1
    with np.load(codes[0]) as data:
        assert data["w"].shape[-1] == 64


REQUESTS = [("/generate", _generate), ("/style_mix", _style_mix), ("/edit", _edit), ("/stylenerf", _stylenerf),
            ("/video", _video), ("/invert", _invert)]


def percentile(values, q) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


def test_sixteen_users_at_once(app, tmp_path):
    peak = {"rss": rss_bytes(app.process.pid)}
    start_rss = peak["rss"]
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                peak["rss"] = max(peak["rss"], rss_bytes(app.process.pid))
            except (OSError, AssertionError):
                return
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    results: list[tuple[str, float, str]] = []  # (api, seconds, error or "")
    lock = threading.Lock()
    deadline = time.monotonic() + TOTAL_SECONDS

    def user(u: int) -> None:
        with api_client(app, tmp_path / f"user{u}") as client:
            for k in range(ROUNDS):
                api, fn = REQUESTS[(u + k) % len(REQUESTS)]
                if time.monotonic() > deadline:
                    with lock:
                        results.append((api, 0.0, "not started: past the total time bound"))
                    continue
                began = time.perf_counter()
                try:
                    fn(client, u * 10 + k)
                    error = ""
                except Exception as exc:  # noqa: BLE001 - every failure is reported below
                    error = f"{type(exc).__name__}: {exc}"
                with lock:
                    results.append((api, time.perf_counter() - began, error))

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=USERS) as pool:
        futures = [pool.submit(user, u) for u in range(USERS)]
        for f in futures:
            f.result(timeout=TOTAL_SECONDS + 60)
    wall = time.perf_counter() - began
    done.set()
    sampler.join(timeout=5)

    lines = [f"load: {len(results)} requests from {USERS} users ({ROUNDS} each), queue concurrency {CONCURRENCY} "
             f"per event, queue size {QUEUE_SIZE}, CPU ({os.cpu_count()} cores), demo networks",
             f"load: wall {wall:.1f} s, throughput {len(results) / wall:.2f} requests/s, failures "
             f"{sum(1 for r in results if r[2])}",
             f"load: app RSS {start_rss / 2 ** 20:.0f} MiB at start, peak {peak['rss'] / 2 ** 20:.0f} MiB "
             f"(limit {RSS_LIMIT / 2 ** 20:.0f} MiB)"]
    for api, _ in REQUESTS:
        times = [t for a, t, e in results if a == api and not e]
        if times:
            lines.append(f"load: {api:<11} n={len(times):2d}  p50 {percentile(times, 50):6.2f} s  "
                         f"p95 {percentile(times, 95):6.2f} s  max {max(times):6.2f} s")
    print("\n" + "\n".join(lines))
    failures = [r for r in results if r[2]]
    assert not failures, "failed requests:\n" + "\n".join(f"{a}: {e}" for a, _, e in failures[:10])
    assert len(results) == USERS * ROUNDS
    assert wall <= TOTAL_SECONDS + 60
    assert app.alive()
    assert peak["rss"] < RSS_LIMIT, f"the app's RSS peaked at {peak['rss'] / 2 ** 20:.0f} MiB"


def _mp4s(root: Path) -> set:
    return {p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".mp4", ".gif")
            or p.name.endswith(".mp4.part") or ".mp4" in p.name}


def test_cancelled_video_leaves_no_file_and_the_app_keeps_serving(app, tmp_path):
    from gradio_client.utils import Status

    temp = app.workdir / "tmp"  # TMPDIR of the app: tempfile.mkdtemp folders of the tabs
    before_files = _mp4s(app.workdir)
    before_dirs = set(temp.glob("stylecore-video-*"))
    with api_client(app, tmp_path / "cancel") as client:
        job = client.submit(model_id="demo-sg3", seeds="0-7", frames_per_transition=120, loop=True, fps=30,
                            api_name="/video")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # cancel once it renders: a status line came back
            status = job.status()
            if status.code == Status.ITERATING or (status.progress_data and status.code == Status.PROGRESS) \
                    or len(job.outputs()) > 0:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the video job did not start rendering within 60 s: {job.status()}")
        time.sleep(1.0)
        assert not job.done(), "the job finished before it could be cancelled: make it longer"
        job.cancel()
        time.sleep(3.0)  # the generator is closed between batches; give it that long
        leftovers = _mp4s(app.workdir) - before_files
        new_dirs = [d for d in set(temp.glob("stylecore-video-*")) - before_dirs if d.exists() and any(d.iterdir())]
        assert not leftovers, f"a cancelled video left files behind: {sorted(map(str, leftovers))}"
        assert not new_dirs, f"a cancelled video left folders with files: {new_dirs}"
        gallery, grid, status = client.predict(model_id="demo", seeds="3", api_name="/generate")
        assert gallery[0]["caption"] == "seed 3"
        time.sleep(2.0)
        assert not (_mp4s(app.workdir) - before_files), "the cancelled render went on and wrote its video"
    assert app.alive()
