"""The Retrieve and Domains tabs in a real browser (Debian's Chromium via playwright) against `python app.py`
on the demo networks, as a user would use them; one app launch and one page for the module.

Retrieve: search a tiny gallery for a seed by one part and see the nearest images with their distances
(the query itself first, at 0), pick one and borrow the part: the image changes. Then switch to a painted
region, put the query into the editor, paint strokes on its canvas with the mouse and search by them.
Domains: show a seed in the demo styles, then make the morph video: the player loads it and offers the
MP4 for download.
"""
from __future__ import annotations

import re

import pytest
from app_server import launch_app
from browser import BLOCKY, DIFFER, TIMEOUT_MS, local_page, spinbutton, wait_loaded

from stylecore.edit.local_edit import PALETTE_NAMES

expect = pytest.importorskip("playwright.sync_api", reason="the python 'playwright' package is not installed").expect

GALLERY, TOP, SEED, PART = 6, 4, 3, 2
PART_LABEL = f"{PART}: {PALETTE_NAMES[PART]}"
RESULTS = "#retrieve-results .thumbnail-lg"
# Until the gallery's grid shows `n` images, all decoded (a picked result adds a strip of small ones).
DECODED = """([gallery, n]) => {
  const imgs = [...document.querySelectorAll(gallery + ' .thumbnail-lg img')];
  return imgs.length === n && imgs.every(img => img.complete && img.naturalWidth > 0);
}"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with launch_app(["--device", "cpu"], workdir=tmp_path_factory.mktemp("retrieve-app")) as server:
        yield server


@pytest.fixture(scope="module")
def page(browser, app):
    """One page for the module: the Retrieve tests continue where the first left off."""
    with local_page(browser) as page:
        page.goto(app.url)
        page.get_by_role("tab", name="Retrieve").click()
        yield page
        assert not page.outside_requests


def shows(page, selector: str, text: str) -> None:
    """Wait until the element shows `text` (events on this 2-core machine take seconds, not expect's 5 s)."""
    page.locator(selector, has_text=text).wait_for()


def set_number(page, name: str, value: int) -> None:
    """Type a number into the visible box of that name and commit it, as a user does."""
    box = spinbutton(page, name).filter(visible=True)
    box.fill(str(value))
    box.press("Enter")


def decoded(page, gallery: str, count: int) -> None:
    """Wait until the gallery shows `count` decoded images; scrolled into view first, since they load lazily."""
    page.locator(gallery).scroll_into_view_if_needed()
    page.wait_for_function(DECODED, arg=[gallery, count], timeout=TIMEOUT_MS)


def results(page) -> list[str]:
    """The result captions ('seed N: distance'), once all `TOP` images are decoded."""
    decoded(page, "#retrieve-results", TOP)
    return page.locator(f"{RESULTS} .caption-label").all_inner_texts()


def paint(page, canvas, points: list[tuple[float, float]]) -> None:
    """One brush stroke through `points` (fractions of the canvas), pressed from the first to the last."""
    box = canvas.bounding_box()
    at = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=2)  # each move redraws the canvas: slow in software rendering
    page.mouse.up()


def test_retrieve_by_a_part_and_borrow_it(page):
    page.get_by_role("button", name="Advanced").filter(visible=True).click()
    for name, value in (("Gallery size", GALLERY), ("Images to learn parts from", 16), ("Seed", SEED),
                        ("number input for Results", TOP)):
        set_number(page, name, value)
    assert not page.locator("#retrieve-region").is_visible()  # painting only once a painted region is chosen
    page.get_by_label(PART_LABEL).check()
    page.get_by_label(f"0: {PALETTE_NAMES[0]}").uncheck()
    borrow = page.get_by_role("button", name="Borrow this part")
    assert borrow.is_disabled()
    page.get_by_role("button", name="Find similar faces").click()

    captions = results(page)
    assert captions[0] == f"seed {SEED}: 0.000", captions  # the query is in the gallery: its own nearest
    distances = [float(re.fullmatch(r"seed \d+: (\d+\.\d{3})", c).group(1)) for c in captions]
    assert distances == sorted(distances) and distances[1] > 0, captions
    status = page.locator("#retrieve-status").inner_text()  # came with the results
    assert f"The {TOP} images of {GALLERY} (seeds 0-{GALLERY - 1}) whose part {PART} ({PALETTE_NAMES[PART]})" \
        in status, status

    picked = captions[1].split(":")[0].removeprefix("seed ")
    page.locator(RESULTS).nth(1).click()
    expect(spinbutton(page, "Borrow from seed")).to_have_value(picked, timeout=TIMEOUT_MS)
    expect(page.get_by_role("combobox", name="Part to borrow")).to_have_value(PART_LABEL)
    borrow.click()
    shows(page, "#retrieve-transfer-status", f"part {PART} from the reference")
    before, after = page.locator("#retrieve-before img"), page.locator("#retrieve-after img")
    for image in (before, after):
        wait_loaded(page, image)
    assert page.evaluate(DIFFER, [before.element_handle(), after.element_handle()]), "borrowing changed nothing"
    assert after.evaluate(BLOCKY, 7) == [448, 448, True]  # the 64 px result enlarged with crisp pixels


def test_retrieve_by_a_painted_region(page):
    page.get_by_role("radio", name="a region I paint").check()
    expect(page.get_by_label(PART_LABEL)).to_be_hidden(timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Mark a region on the query").click()
    shows(page, "#retrieve-status", "Paint over what to search for")
    # The editor places the image a moment after the event (strokes painted before are dropped); placing it
    # is its first step that Undo can take back.
    expect(page.locator("#retrieve-region").get_by_role("button", name="Undo")).to_be_enabled(timeout=TIMEOUT_MS)
    paint(page, page.locator("#retrieve-region canvas").first, [(0.35, 0.4), (0.65, 0.6)])
    page.get_by_role("button", name="Find similar faces").click()
    page.locator("#retrieve-status", has_text=re.compile("marked region|Could not do that")).wait_for()
    status = page.locator("#retrieve-status").inner_text()
    # the search ran (not "mark the region with the brush"), and says which parts the region covers
    assert "whose marked region (part" in status and "looks most like" in status, status
    assert results(page)[0] == f"seed {SEED}: 0.000"
    # Back to parts: the editor leaves the page (its drawing loop, costly in software rendering, stops with it).
    page.get_by_role("radio", name="the chosen parts").check()
    page.locator("#retrieve-region").wait_for(state="detached")
    assert page.get_by_label(PART_LABEL).is_visible()


def test_domains_and_the_morph_video(page):
    page.get_by_role("tab", name="Domains").click()
    page.get_by_role("button", name="Show in these styles").click()
    decoded(page, "#domains-gallery", 4)
    shows(page, "#domains-status", "3 styles of one code")

    page.get_by_role("button", name="Morph video").click()
    page.get_by_role("button", name="Advanced").filter(visible=True).click()
    set_number(page, "Video frames", 4)
    page.get_by_role("button", name="Make the video").click()
    shows(page, "#domain-morph-status", "4 frames")
    video = page.locator("#domain-morph video")
    video.scroll_into_view_if_needed()
    page.wait_for_function("v => v.readyState >= 1 && v.videoWidth === 64", arg=video.element_handle(),
                           timeout=TIMEOUT_MS)  # Chromium read the MP4
    link = page.locator("#domain-morph a[download]")
    assert link.get_attribute("download") == "demo-to-demo-domain-a.mp4"
    download = page.request.get(link.get_attribute("href"))
    assert download.ok and download.body()[4:8] == b"ftyp"  # an MP4 file
