"""The hub in a real browser: Debian's Chromium, driven by playwright, against `python app.py`.

Open the page on the simple view (Advanced closed, translate/rotate only for StyleGAN3), pick the
built-in demo model in the Model dropdown, generate seeds 0-1 and see both images load, enlarged with
crisp pixels; mix styles; enter bad layers and bad seeds and see the message while the earlier
results stay, with no "Error" badge; generate one image and see it whole. One app launch; the
browser may only talk to 127.0.0.1 (every other request is aborted and listed).
"""
from __future__ import annotations

import re

import pytest
from app_server import launch_app
from browser import BLOCKY, TIMEOUT_MS

DEMO_LABEL = re.compile(r"^Demo StyleGAN2 .*· built-in$")
OTHER_LABEL = re.compile(r"^Demo StyleGAN3 .*· built-in$")


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


def no_error_badges(page) -> bool:
    """Gradio marks the outputs of an event that raised with a red "Error"; a user error must not."""
    return page.get_by_text("Error", exact=True).count() == 0


def test_generate_mix_error_and_recover_in_a_browser(page, app, tmp_path):
    page.goto(app.url)
    model = page.get_by_role("combobox", name="Model")
    model.wait_for()

    # The simple view: seeds, variety, Generate; research controls under a closed Advanced.
    seeds = page.get_by_role("textbox", name=re.compile(r"^Seeds"))  # not "Row seeds"/"Column seeds"
    seeds.wait_for()  # the tab's controls render after the model list (a loaded machine takes a moment)
    assert seeds.is_visible() and page.get_by_role("slider", name="Variety").is_visible()
    assert not page.get_by_role("spinbutton", name="Truncation cutoff").is_visible()
    sideways = page.get_by_role("slider", name="Move sideways (StyleGAN3)")
    assert not sideways.is_visible()  # the demo network is StyleGAN2

    # Pick another model (StyleGAN3: translate and rotate appear), then the built-in demo, through the dropdown.
    model.click()
    page.get_by_role("option", name=OTHER_LABEL).click()
    assert OTHER_LABEL.match(model.input_value())
    sideways.wait_for()
    model.click()
    page.get_by_role("option", name=DEMO_LABEL).click()
    assert DEMO_LABEL.match(model.input_value()), model.input_value()
    assert "untrained" in model.input_value()
    sideways.wait_for(state="hidden")

    seeds.fill("0-1")
    generate = page.get_by_role("button", name="Generate", exact=True)
    generate.click()
    wait_for_gallery(page, 2)
    images = gallery_images(page)
    assert images.count() == 2
    # 64 px images shown enlarged 7 times with whole pixels (crisp, not a blurred thumbnail).
    assert images.first.evaluate(BLOCKY, 7) == [448, 448, True]
    status = page.locator("#generate-status")
    status.filter(has_text="64x64").wait_for()
    assert "untrained demo network" in status.inner_text()
    page.screenshot(path=str(tmp_path / "generate.png"), full_page=True)

    # Style mixing: open the accordion, mix, and see the (3+1) x (3+1) matrix of 64px cells, shown twice as large.
    page.get_by_text("Style mixing", exact=True).click()
    page.get_by_role("button", name="Mix styles").click()
    matrix_img = page.locator("#generate-mix img")
    page.wait_for_function("() => { const i = document.querySelector('#generate-mix img');"
                           " return i && i.complete && i.naturalWidth > 0; }", timeout=TIMEOUT_MS)
    assert matrix_img.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [512, 512]
    matrix_src = matrix_img.get_attribute("src")

    # User errors after those results: a message in the event's status line, every result left in place.
    page.get_by_role("textbox", name="Layers taken from the columns").fill("0-99")
    page.get_by_role("button", name="Mix styles").click()
    page.locator("#generate-mix-status", has_text="Could not do that").wait_for()
    assert "layers" in page.locator("#generate-mix-status").inner_text()
    seeds.fill("abc")
    generate.click()
    status.filter(has_text="Could not do that").wait_for()
    assert "cannot read seed 'abc'" in status.inner_text()
    assert gallery_images(page).count() == 2 and matrix_img.get_attribute("src") == matrix_src
    assert no_error_badges(page)
    page.screenshot(path=str(tmp_path / "error.png"), full_page=True)

    # One image: shown whole (contain, inside the gallery's visible area), large, not cropped to a thumbnail.
    seeds.fill("4")
    generate.click()
    wait_for_gallery(page, 1)
    box = gallery_images(page).first.evaluate("""img => {
        const r = img.getBoundingClientRect(), wrap = img.closest('.grid-wrap').getBoundingClientRect();
        return {fit: getComputedStyle(img).objectFit, w: r.width, h: r.height,
                inside: r.top >= wrap.top && r.bottom <= wrap.bottom && r.left >= wrap.left && r.right <= wrap.right};
    }""")
    assert box["fit"] == "contain" and box["inside"] and box["w"] == box["h"] >= 256, box
    assert app.alive()


def test_domains_and_retrieve_open_on_their_simple_views(page, app):
    """The Domains and Retrieve tabs open on their simple view (research settings in the closed Advanced
    section, Borrow disabled until there are results), and Domains renders one face through the demo
    network and its three demo domains."""
    page.goto(app.url)
    page.get_by_role("tab", name="Domains").click()
    show = page.get_by_role("button", name="Show in these styles")
    show.wait_for()
    assert page.get_by_label("Video frames").filter(visible=True).count() == 0  # in the closed Advanced section
    show.click()
    page.wait_for_function(
        """() => {
            const label = [...document.querySelectorAll('[data-testid=block-label]')]
                .find(l => l.textContent.trim() === 'The face in each style');
            const imgs = label ? [...label.closest('.block').querySelectorAll('.thumbnail-item img')] : [];
            return imgs.length === 4 && imgs.every(img => img.complete && img.naturalWidth === 448);
        }""", timeout=TIMEOUT_MS)
    page.get_by_text("3 styles of one code").wait_for()
    assert no_error_badges(page)

    page.get_by_role("tab", name="Retrieve").click()
    page.get_by_role("button", name="Find similar faces").wait_for()
    assert page.get_by_label("Gallery size").filter(visible=True).count() == 0
    assert page.get_by_role("button", name="Borrow this part").is_disabled()
    assert not page.outside_requests
