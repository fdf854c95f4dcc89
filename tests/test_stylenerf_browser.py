"""The StyleNeRF tab in a real browser (Debian's Chromium via playwright) against `python app.py`:
open the tab on its simple view, render a view of the built-in StyleNeRF demo network (shown whole,
enlarged with crisp pixels), drag the yaw slider and see the image change, enter a bad seed and see
the message while the view stays. One app launch; the browser may only talk to 127.0.0.1."""
from __future__ import annotations

import numpy as np
import pytest
from app_server import launch_app
from browser import TIMEOUT_MS


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with launch_app(["--device", "cpu"], workdir=tmp_path_factory.mktemp("stylenerf-app")) as server:
        yield server


def view_pixels(page, previous_src: str = "") -> tuple[str, np.ndarray]:
    """Wait for a decoded view image (other than `previous_src`); return its src and RGB pixels."""
    handle = page.wait_for_function(
        """prev => {
            const img = document.querySelector('#stylenerf-view img');
            return img && img.complete && img.naturalWidth > 0 && img.src !== prev ? img.src : null;
        }""", arg=previous_src, timeout=TIMEOUT_MS)
    src = handle.json_value()
    data = page.evaluate(
        """() => {
            const img = document.querySelector('#stylenerf-view img');
            const c = document.createElement('canvas');
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            const ctx = c.getContext('2d');
            ctx.drawImage(img, 0, 0);
            return [c.width, c.height, Array.from(ctx.getImageData(0, 0, c.width, c.height).data)];
        }""")
    w, h, flat = data
    return src, np.asarray(flat, dtype=np.uint8).reshape(h, w, 4)[..., :3]


def test_render_and_turn_the_camera_in_a_browser(page, app, tmp_path):
    page.goto(app.url)
    page.get_by_role("tab", name="StyleNeRF").click()
    model = page.get_by_role("combobox", name="StyleNeRF model")
    model.wait_for()
    assert "Demo StyleNeRF" in model.input_value() and "built-in" in model.input_value()
    # The simple view: seed, yaw, pitch; quality and the second seed closed under Advanced, orbit closed.
    seed = page.get_by_role("spinbutton", name="Seed", exact=True)
    assert seed.is_visible() and page.get_by_role("slider", name="Pitch: look from above / below").is_visible()
    for hidden in ("Field of view (degrees)", "Appearance seed", "Frames per second"):
        assert not page.get_by_text(hidden).first.is_visible(), hidden

    page.get_by_role("button", name="Render view").click()
    src, front = view_pixels(page)
    # The 64 px view enlarged 7 times with whole pixels, shown whole in its frame.
    assert front.shape == (448, 448, 3) and front.std() > 1
    assert np.array_equal(front, front[::7, ::7].repeat(7, axis=0).repeat(7, axis=1))
    fit = page.evaluate("""() => {
        const img = document.querySelector('#stylenerf-view img'), r = img.getBoundingClientRect();
        const frame = document.querySelector('#stylenerf-view').getBoundingClientRect();
        return [getComputedStyle(img).objectFit, r.top >= frame.top && r.bottom <= frame.bottom && r.width == r.height];
    }""")
    assert fit[0] != "cover" and fit[1], fit
    status = page.locator("#stylenerf-status")
    status.filter(has_text="rendered").wait_for()
    assert "yaw +0 deg" in status.inner_text() and "untrained" in status.inner_text()

    # Drag the yaw slider to the right: on release the view is rendered again from the new camera.
    slider = page.locator("input[type=range][aria-label*='Yaw']")
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.9, y, steps=8)
    page.mouse.up()
    turned_src, turned = view_pixels(page, src)
    assert turned_src != src
    assert np.abs(turned.astype(int) - front).mean() > 1, "the view did not change with the yaw"
    status.filter(has_text="yaw +2").wait_for()  # about +23 degrees
    page.screenshot(path=str(tmp_path / "stylenerf.png"), full_page=True)

    # A user error after it: the message in the status line, the view stays, no "Error" badge.
    seed.fill("-1")
    seed.press("Enter")
    status.filter(has_text="Could not do that").wait_for()
    assert "Seed must be from 0 to 4294967295, got -1" in status.inner_text()
    assert page.locator("#stylenerf-view img").get_attribute("src") == turned_src
    assert page.get_by_text("Error", exact=True).count() == 0
    assert page.outside_requests == []
    assert app.alive(), app.log()


def test_api_endpoints(app, tmp_path):
    """/stylenerf and /stylenerf_orbit through gradio_client: a PNG view, an H.264 MP4, clear errors."""
    from app_server import api_client
    from PIL import Image

    AppError = pytest.importorskip("gradio_client.exceptions").AppError
    with api_client(app, tmp_path) as client:
        image, status = client.predict("demo-nerf", 5, 0.7, -0.5, 0.3, 14, 8, True, 2, api_name="/stylenerf")
        with Image.open(image) as im:
            assert im.format == "PNG" and im.size == (64, 64)
        assert "geometry seed 5, appearance seed 2" in status and "yaw -14 deg" in status
        video, status = client.predict("demo-nerf", 5, 0.7, 0.0, 12, 6, False, 0, 8, 12, 1.0,
                                       api_name="/stylenerf_orbit")
        path = video["video"] if isinstance(video, dict) else video
        data = open(path, "rb").read()
        assert data[4:8] == b"ftyp" and b"avc1" in data[:4096] and "orbit video rendered" in status
        with pytest.raises(AppError, match="maximum"):  # Gradio checks the slider range first
            client.predict("demo-nerf", 5, 0.7, 0.0, 0.0, 500, 8, False, 0, api_name="/stylenerf")
        with pytest.raises(AppError, match="not in the list of choices"):  # a StyleGAN2 model
            client.predict("demo", 5, 0.7, 0.0, 0.0, 12, 8, False, 0, api_name="/stylenerf")
