"""The Video tab in a real browser: the simple view; render a short walk of the demo StyleGAN3 network
and check that Chromium loads and plays the H.264 MP4 (Debian's Chromium decodes H.264 through its
system ffmpeg) at its own size; a user error keeps the video; side by side with a camera path works
by default; Stop ends a render."""
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
        page.goto(app.url)  # not "networkidle": the session's heartbeat keeps a connection open
        page.get_by_role("tab", name="Video").click()
        yield page


def set_frames_per_transition(page, value: int) -> None:
    box = page.get_by_label("number input for Frames per transition")
    box.fill(str(value))
    box.press("Enter")


def test_video_tab_renders_a_walk_the_browser_plays(page):
    # The simple view: seeds, smoothness, the camera path (StyleGAN3 default model); the rest closed under
    # Advanced; the upload, the radius and the left model only once chosen; Stop only while rendering.
    assert page.get_by_role("textbox", name="Keyframe seeds").is_visible()
    assert page.get_by_role("radio", name="circle", exact=True).is_visible()
    for hidden in ("Interpolation", "Circle radius / swing", "Left model", "Keyframe codes"):
        assert not page.get_by_text(hidden).first.is_visible(), hidden
    assert page.get_by_role("button", name="Stop").is_disabled()
    set_frames_per_transition(page, 4)
    page.get_by_role("button", name="Render video").click()
    video = page.locator("#video-output video")
    video.wait_for(state="attached", timeout=60_000)
    src = video.get_attribute("src")
    assert ".mp4" in src
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
    # At its own size (a small one at least 256 px wide), not stretched to the column.
    assert video.evaluate("v => [v.getBoundingClientRect().width, v.getBoundingClientRect().height]") == [256, 256]
    assert page.get_by_role("button", name="Stop").is_disabled()

    # A user error after it: the message in the status line, the video stays, no "Error" badge.
    seeds = page.get_by_role("textbox", name="Keyframe seeds")
    seeds.fill("abc")
    page.get_by_role("button", name="Render video").click()
    page.locator("#video-status", has_text="Could not do that").wait_for()
    assert "cannot read seed 'abc'" in page.locator("#video-status").inner_text()
    assert video.get_attribute("src") == src
    assert page.get_by_text("Error", exact=True).count() == 0
    page.get_by_test_id("toast-close").click()  # the next tests look for toasts of their own
    page.get_by_test_id("toast-body").wait_for(state="detached")
    seeds.fill("0-2")


def test_side_by_side_with_a_camera_path_works_by_default(page):
    """The left model defaults to the StyleGAN2 demo: the camera moves the StyleGAN3 side only."""
    page.get_by_role("radio", name="circle", exact=True).check()
    page.get_by_label("Side by side with StyleGAN2").check()
    page.get_by_role("combobox", name="Left model").wait_for()  # shown once side by side is chosen
    set_frames_per_transition(page, 1)
    page.get_by_role("button", name="Render video").click()
    status = page.locator("#video-status", has_text="left: demo (StyleGAN2: no camera path), right: demo-sg3")
    status.wait_for(timeout=60_000)
    assert "3 frames, 130x64" in status.inner_text()
    page.get_by_label("Side by side with StyleGAN2").uncheck()
    page.get_by_role("radio", name="still", exact=True).check()


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
