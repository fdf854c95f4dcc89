"""Bad input through the real UI: Debian's Chromium (playwright) against one `python app.py`.

A user uploads a text file where the Inversion tab expects an image, types a step count far over
the limit, uploads a broken .npz where the Editing tab expects a latent code, and gives StyleCLIP an
empty (whitespace) or very long prompt. Each time Gradio's error toast appears with a message that
says what is wrong (its text is checked; no traceback, no bare "Error"), and the same page then gets
a good result from the same tab. StyleCLIP uses a tiny random CLIP served by a fake Hub on
127.0.0.1, LPIPS a random backbone: nothing leaves the machine.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("open_clip")
pytest.importorskip("playwright.sync_api")

from playwright.sync_api import Error as PlaywrightError  # noqa: E402

from app_server import launch_app  # noqa: E402
from browser import TIMEOUT_MS  # noqa: E402
from clip_hub import tiny_clip_hub  # noqa: E402

@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with tiny_clip_hub() as env:
        env["STYLECORE_LPIPS_BACKBONE"] = "random"
        with launch_app(["--device", "cpu"], env=env, workdir=tmp_path_factory.mktemp("bad-input-browser")) as server:
            yield server


def block(page, label: str):
    """The visible component block with exactly this label (the open tab's)."""
    label_re = re.compile(rf"^\s*{re.escape(label)}\s*$")
    return page.locator(".block", has=page.get_by_test_id("block-label").filter(has_text=label_re)) \
        .filter(visible=True).last


def upload(page, label: str, path) -> None:
    """Upload `path` into the file component `label` (clearing what it holds), as a user would."""
    target = block(page, label)
    clear = target.get_by_role("button", name="Clear")
    if clear.count() and clear.first.is_visible():
        clear.first.click()
    target.locator("input[type=file]").set_input_files(str(path))


def expect_error(page, pattern: str, screenshot=None) -> str:
    """Wait for an error toast whose text matches `pattern`; return its text and close every toast."""
    toast = page.get_by_test_id("toast-body").filter(has_text=re.compile(pattern))
    toast.first.wait_for(state="visible", timeout=TIMEOUT_MS)
    assert re.search(r"\b(error|warning)\b", toast.first.get_attribute("class") or ""), toast.first.get_attribute("class")
    text = toast.first.inner_text()
    if screenshot is not None:  # once it has faded in
        page.wait_for_function("t => getComputedStyle(t).opacity === '1'", arg=toast.first.element_handle())
        toast.first.screenshot(path=str(screenshot))
    assert "Traceback" not in text and "site-packages" not in text, text
    for close in page.get_by_test_id("toast-close").all():  # leave no toast for the next check
        try:
            close.click(timeout=2000)
        except PlaywrightError:  # it went by itself meanwhile
            pass
    page.get_by_test_id("toast-body").first.wait_for(state="detached", timeout=10_000)
    return text


def wait_after_image(page) -> None:
    """The good request's result: the 64 px demo image in the After box, loaded."""
    after = block(page, "After").locator("img").first
    after.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0 && img.naturalWidth % 64 === 0", arg=after.element_handle(),
                           timeout=TIMEOUT_MS)


def markdown(page, text: str):
    return page.get_by_test_id("markdown").filter(has_text=text).first


def test_inversion_not_an_image_and_too_many_steps(page, app, tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"these are notes, not pixels\n" * 5)
    page.goto(app.url)
    page.get_by_role("tab", name="Inversion").click()

    # A text file named .png: the upload itself (which aligns the image) says it is not an image,
    # and so does Invert.
    upload(page, "Image", notes)
    expect_error(page, r"notes\.png is not an image this app can read: upload a PNG, JPEG")
    page.get_by_role("button", name="Invert").click()
    expect_error(page, r"notes\.png is not an image this app can read")

    # A step count far over the limit, typed into the number field (in the Advanced section).
    page.get_by_role("radio", name="seed").first.check()
    page.get_by_text("Advanced", exact=True).filter(visible=True).first.click()
    w_steps = page.get_by_role("spinbutton", name=re.compile("^W steps"))
    w_steps.fill("10000000")
    page.get_by_role("spinbutton", name=re.compile(r"^W\+ steps")).fill("1")
    page.get_by_role("button", name="Invert").click()
    expect_error(page, r"W steps must be a whole number from 1 to 10000, got 10000000")

    # The same page, corrected: a result.
    w_steps.fill("1")
    page.get_by_role("button", name="Invert").click()
    markdown(page, "2 of 2 methods ran").wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function("g => [...g.querySelectorAll('img')].filter(i => i.naturalWidth > 0).length >= 3",
                           arg=block(page, "Reconstructions").element_handle(), timeout=TIMEOUT_MS)
    assert app.alive() and not page.outside_requests


def test_editing_broken_code_file(page, app, tmp_path):
    import torch

    from stylecore.codes.latents import save_latents

    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip archive at all\n" * 10)
    renamed = tmp_path / "array.npz"  # a plain .npy under an .npz name
    np.save(tmp_path / "array.npy", np.zeros((1, 64), np.float32))
    renamed.write_bytes((tmp_path / "array.npy").read_bytes())
    good = save_latents(tmp_path / "good.npz", torch.randn(1, 10, 64) * 0.1)  # the demo network: 10 x 64

    page.goto(app.url)
    page.get_by_role("tab", name="Editing").click()
    page.get_by_role("radio", name="file").first.check()
    page.get_by_role("radio", name="StyleSpace").check()
    apply = page.get_by_role("button", name="Apply edit")
    for path, shot in ((broken, tmp_path / "toast-broken-npz.png"), (renamed, None)):
        upload(page, "Code (.npz)", path)
        block(page, "Code (.npz)").locator(f'[aria-label="{path.name}"]').wait_for()
        apply.click()
        text = expect_error(page, rf"{re.escape(path.name)}: not a readable \.npz file \(not a zip archive",
                            screenshot=shot)
        assert "allow_pickle" not in text, f"numpy's advice to load the file unsafely reached the user: {text}"

    upload(page, "Code (.npz)", good)
    block(page, "Code (.npz)").locator('[aria-label="good.npz"]').wait_for()
    apply.click()
    markdown(page, "StyleSpace channel").wait_for(timeout=TIMEOUT_MS)
    wait_after_image(page)
    assert app.alive() and not page.outside_requests


def test_styleclip_empty_and_long_prompts(page, app):
    page.goto(app.url)
    page.get_by_role("tab", name="StyleCLIP").click()
    target = page.get_by_label("Target text")
    edit = page.get_by_role("button", name="Edit", exact=True)

    # Global direction (the default): an empty target is refused at once, before the relevance
    # table (a minute here) would be computed.
    target.fill("   ")
    edit.click()
    expect_error(page, r"the target text is empty: describe the edit")

    # A 5000-character paste: the box keeps Gradio's max_length (1000 characters); longer prompts
    # never leave the browser (the API's own check is in test_api_bad_input).
    target.fill("x" * 5000)
    assert len(target.input_value()) == 1000

    # Latent optimization: empty again, then a good prompt in the same page gives a result.
    page.get_by_role("radio", name="Latent optimization").check()
    page.get_by_role("spinbutton", name=re.compile("^Steps")).fill("2")
    target.fill("")
    edit.click()
    expect_error(page, r"the target text is empty")
    target.fill("a face with curly hair")
    edit.click()
    markdown(page, "CLIP loss").wait_for(timeout=TIMEOUT_MS)
    wait_after_image(page)
    assert app.alive() and not page.outside_requests
