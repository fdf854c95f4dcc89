"""The hub in a real browser: Debian's Chromium, driven by playwright, against `python app.py`.

Open the page, pick the built-in demo model in the Model dropdown, generate seeds 0-1 and see
both images load; mix styles; enter bad seeds and see the error; generate again. One app launch;
the browser may only talk to 127.0.0.1 (every other request is aborted and listed).
"""
from __future__ import annotations

import re

import pytest
from app_server import launch_app
from browser import TIMEOUT_MS

DEMO_LABEL = re.compile(r"^Built-in demo network .*- built-in$")
OTHER_LABEL = re.compile(r"^Built-in StyleGAN3 demo network .*- built-in$")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with launch_app(["--device", "cpu"], workdir=tmp_path_factory.mktemp("browser-app")) as server:
        yield server


def gallery_images(page):
    return page.locator(".gallery-container .thumbnail-item img")


def wait_for_gallery(page, count: int) -> None:
    """Until the gallery shows `count` thumbnails, all of them decoded (naturalWidth > 0)."""
    page.wait_for_function(
        """n => {
            const imgs = [...document.querySelectorAll('.gallery-container .thumbnail-item img')];
            return imgs.length === n && imgs.every(img => img.complete && img.naturalWidth > 0);
        }""", arg=count, timeout=TIMEOUT_MS)


def test_generate_mix_error_and_recover_in_a_browser(page, app, tmp_path):
    page.goto(app.url)
    model = page.get_by_role("combobox", name="Model")
    model.wait_for()

    # Pick another model, then the built-in demo, through the dropdown itself.
    model.click()
    page.get_by_role("option", name=OTHER_LABEL).click()
    assert OTHER_LABEL.match(model.input_value())
    model.click()
    page.get_by_role("option", name=DEMO_LABEL).click()
    assert DEMO_LABEL.match(model.input_value()), model.input_value()
    assert "untrained" in model.input_value()

    seeds = page.get_by_role("textbox", name=re.compile(r"^Seeds"))  # not "Row seeds"/"Column seeds"
    seeds.fill("0-1")
    generate = page.get_by_role("button", name="Generate", exact=True)
    generate.click()
    wait_for_gallery(page, 2)
    images = gallery_images(page)
    assert images.count() == 2
    widths = [images.nth(i).evaluate("img => img.naturalWidth") for i in range(2)]
    assert all(w > 0 for w in widths) and widths[0] == 64, widths
    # The status line, not the demo-networks banner above the tab, which also says "untrained".
    status = page.get_by_test_id("markdown").filter(has_text="untrained").filter(has_text="64x64")
    status.first.wait_for()
    assert "untrained demo network" in status.first.inner_text()
    page.screenshot(path=str(tmp_path / "generate.png"), full_page=True)

    # Style mixing: open the accordion, mix, and see the (3+1) x (3+1) matrix of 64px cells.
    page.get_by_text("Style mixing", exact=True).click()
    page.get_by_role("button", name="Mix styles").click()
    matrix = page.locator(".block", has=page.get_by_test_id("block-label").filter(has_text="Style mixing matrix"))
    matrix_img = matrix.last.locator("img").first
    matrix_img.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=matrix_img.element_handle(),
                           timeout=TIMEOUT_MS)
    assert matrix_img.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [256, 256]

    # Bad seeds: the error shows in the page and the app keeps working.
    seeds.fill("abc")
    generate.click()
    error = page.get_by_text("cannot read seed", exact=False).first
    error.wait_for(state="visible")
    assert "'abc'" in error.inner_text()
    page.screenshot(path=str(tmp_path / "error.png"), full_page=True)

    seeds.fill("4")
    generate.click()
    wait_for_gallery(page, 1)
    assert app.alive()
