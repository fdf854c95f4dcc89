"""The Video tab in a real browser: render a short walk of the demo StyleGAN3 network and check that
Chromium loads and plays the H.264 MP4 (Debian's Chromium decodes H.264 through its system ffmpeg)."""
from __future__ import annotations

import time

import pytest
from app_server import launch_app
from browser import local_page


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("video-app")


@pytest.fixture(scope="module")
def app(workdir):
    with launch_app(["--device", "cpu"], workdir=workdir) as server:
        yield server


@pytest.fixture(scope="module")
def page(browser, app):
    """One page for the module: the tests continue on the Video tab the first one opened."""
    with local_page(browser) as page:
        page.goto(app.url, wait_until="networkidle")
        page.get_by_role("tab", name="Video").click()
        yield page


def set_frames_per_transition(page, value: int) -> None:
    box = page.get_by_label("number input for Frames per transition")
    box.fill(str(value))
    box.press("Enter")


def test_video_tab_renders_a_walk_the_browser_plays(page):
    set_frames_per_transition(page, 4)
    page.get_by_role("button", name="Render video").click()
    video = page.locator("#video-output video")
    video.wait_for(state="attached", timeout=60_000)
    assert ".mp4" in video.get_attribute("src")
    state = video.evaluate("""async (v) => {
        if (v.readyState < 2) {
            await new Promise((resolve, reject) => {
                v.addEventListener('loadeddata', resolve, {once: true});
                v.addEventListener('error', () => reject(new Error('video error ' + (v.error && v.error.code))),
                                   {once: true});
                setTimeout(() => reject(new Error('no loadeddata within 20 s')), 20000);
            });
        }
        const loaded = {readyState: v.readyState, duration: v.duration, width: v.videoWidth};
        v.muted = true;
        await v.play();
        const start = v.currentTime;
        await new Promise(resolve => setTimeout(resolve, 500));
        return {...loaded, advanced: v.currentTime - start, error: v.error && v.error.code};
    }""")
    assert state["readyState"] >= 2 and state["error"] is None
    assert state["width"] == 64
    assert abs(state["duration"] - 12 / 30) < 0.05  # 3 keyframes x 4 frames at 30 fps
    assert state["advanced"] > 0
    assert "12 frames, 64x64 at 30 fps" in page.locator("#video-status").inner_text()


def test_stop_ends_the_render_and_leaves_no_file(page, workdir):
    temp = workdir / "tmp"  # the app's TMPDIR (app_server): where the tab renders
    earlier = set(temp.glob("stylecore-video-*"))  # finished videos of other tests stay
    set_frames_per_transition(page, 200)
    page.get_by_role("button", name="Render video").click()
    page.locator("#video-status p", has_text="of 600 frames").wait_for(timeout=60_000)
    assert list(temp.glob("stylecore-video-*/.*.part.mp4")), "the render should be writing its temporary file"
    page.get_by_role("button", name="Stop").click()
    deadline = time.monotonic() + 20
    while set(temp.glob("stylecore-video-*")) - earlier and time.monotonic() < deadline:
        time.sleep(0.2)
    assert set(temp.glob("stylecore-video-*")) == earlier, "Stop must remove the partial video and its folder"
    status = page.locator("#video-status").inner_text()
    assert "of 600 frames" in status, status  # progress or "Stopped after: ...": no finished video replaced it
    page.wait_for_timeout(1000)  # an error would have reached the page by now
    assert page.get_by_test_id("toast-body").count() == 0, "a Stop is not an error"
