"""The Editing tab in a real browser (Debian's Chromium via playwright) against `python app.py`, plus
its API through gradio_client on the same launch.

Open the tab on the built-in demo model and see its simple view (the research settings in closed
Advanced accordions, only the controls the mode uses); apply a StyleSpace edit and see before/after
load enlarged and differ; then a bad channel: a warning and a status line, the earlier result kept
and no Error badge; show the part map with its colour swatches and apply a local edit with the
default selectivity, which changes the image. Through the API: an uploaded .npz code, and a
direction for another generator (a clear error, the app keeps serving).
"""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
from app_server import api_client, launch_app
from browser import DIFFER, TIMEOUT_MS, spinbutton, wait_loaded


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with launch_app(["--device", "cpu"], workdir=tmp_path_factory.mktemp("editing-app")) as server:
        yield server


def block(page, label: str):
    """The innermost component block with this label."""
    label_re = re.compile(rf"^\s*{re.escape(label)}\s*$")
    return page.locator(".block", has=page.get_by_test_id("block-label").filter(has_text=label_re)).last


def image_in(page, label: str):
    return block(page, label).locator("img").first


def markdown(page, text: str):
    return page.get_by_test_id("markdown").filter(has_text=text).first


def check_simple_view(page) -> None:
    """What a first visit sees: seed, method, the GANSpace direction and amount, and Apply; the research
    settings behind closed Advanced accordions; nothing the demo model or the mode does not use."""
    for name in ("Seed", "Direction"):
        assert spinbutton(page, name).is_visible(), name
    assert page.get_by_role("slider", name="range slider for Amount").is_visible()
    assert page.get_by_role("radio", name=re.compile(r"\((GANSpace|InterFaceGAN|StyleSpace|local)\)")).count() == 4
    assert page.get_by_role("button", name="Apply edit").is_enabled()
    advanced = page.locator(".label-wrap").filter(has_text=re.compile(r"^\s*Advanced:"), visible=True)
    assert advanced.count() == 2  # the starting image, GANSpace (the other modes' are not shown)
    hidden = [spinbutton(page, "Images sampled"), page.get_by_role("slider", name="range slider for Variety"),
              spinbutton(page, "Class"), block(page, "Code (.npz)").filter(visible=True),
              page.get_by_role("combobox", name="Attribute")]
    assert [h.count() for h in hidden] == [0] * len(hidden), "an Advanced accordion or an unused control is open"
    advanced.filter(has_text="GANSpace").click()
    spinbutton(page, "Images sampled").wait_for()


def test_edit_in_the_browser(page, app, tmp_path):
    page.goto(app.url)
    page.get_by_role("tab", name="Editing").click()
    model = page.get_by_role("combobox", name="Model")
    model.wait_for()
    assert "Demo StyleGAN2" in model.input_value() and "untrained" in model.input_value()
    check_simple_view(page)

    # The advanced GANSpace table (its PCA is reused by the API test below).
    spinbutton(page, "Images sampled").fill("2000")
    page.get_by_role("button", name="Compute the directions and show their variance").click()
    markdown(page, "These 32 directions (from 2000 sampled codes) explain").wait_for()

    page.get_by_role("radio", name="StyleSpace").check()
    spinbutton(page, "Channel").fill("5")
    apply = page.get_by_role("button", name="Apply edit")
    apply.click()
    markdown(page, "StyleSpace channel 6_5").wait_for()
    before, after = image_in(page, "Before"), image_in(page, "After")
    before_src, after_src = wait_loaded(page, before), wait_loaded(page, after)
    # the 64 px demo images are enlarged for the eye (crisp pixels), the PNG offered keeps the real size
    width, height = before.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert width == height and width > 64 and width % 64 == 0, (width, height)
    assert page.evaluate(DIFFER, [before.element_handle(), after.element_handle()]), "the image did not change"
    for label in ("Edited code (.npz)", "Edited image (PNG)"):
        assert "demo-edited" in block(page, label).inner_text(), label

    # An error after a success: a warning and a status line; the result stays, with no Error badge.
    spinbutton(page, "Channel").fill("9999")
    apply.click()
    toast = page.get_by_test_id("toast-body").filter(has_text="Channel must be from 0 to 63, got 9999")
    toast.first.wait_for()
    markdown(page, "Could not do that:").wait_for()
    assert (before.get_attribute("src"), after.get_attribute("src")) == (before_src, after_src)
    assert page.get_by_text("Error", exact=True).count() == 0, "an output shows Gradio's Error badge"
    page.screenshot(path=str(tmp_path / "kept-after-error.png"), full_page=True)

    # A local edit: the parts with a colour swatch each, then the default selectivity changes the image.
    page.get_by_role("radio", name="local").check()
    page.locator(".label-wrap").filter(has_text="Advanced: parts").click()
    spinbutton(page, "Images to learn parts from").fill("4")
    page.get_by_role("button", name="Show the parts").click()
    assert page.wait_for_function("img => img.complete && img.naturalWidth", arg=image_in(page, "Part map")
                                  .element_handle(), timeout=TIMEOUT_MS).json_value() == width  # enlarged too
    swatches = page.locator(".part-legend .part-swatch").evaluate_all(
        "all => all.map(s => [getComputedStyle(s).backgroundColor, s.getBoundingClientRect().width > 8])")
    assert ["rgb(230, 25, 75)", True] in swatches  # part 0's, red
    chosen = markdown(page, "This image shows parts")
    chosen.wait_for()
    part = int(re.search(r"Part (\d+) \(", chosen.inner_text()).group(1))
    assert spinbutton(page, "Part").input_value() == str(part)
    apply.click()
    status = markdown(page, f"part {part} from the reference")
    status.wait_for()
    wait_loaded(page, after, after_src)
    change = float(re.search(r"pixel change ([\d.]+)", status.inner_text()).group(1))
    assert change > 0, status.inner_text()
    page.screenshot(path=str(tmp_path / "parts.png"), full_page=True)
    assert app.alive()
    assert not page.outside_requests or all("127.0.0.1" not in u for u in page.outside_requests)


def test_edit_api_with_a_code_file_and_a_foreign_direction(app, tmp_path):
    import torch
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    from stylecore.codes.latents import load_latents, save_latents

    code = save_latents(tmp_path / "code.npz", torch.randn(1, 10, 64) * 0.1)  # the demo network: 10 W+ rows of 64
    with api_client(app, tmp_path / "downloads") as client:
        before, after, png, code_out, status = client.predict(
            model_id="demo", source="file", code_file=handle_file(str(code)), method="GANSpace",
            pca_samples=2000, component=1, pca_strength=0.0, api_name="/edit")
        assert "GANSpace direction 1" in status
        edited = load_latents(code_out, 10, 64)
        assert torch.allclose(edited, load_latents(code, 10, 64))  # strength 0: the same code back
        assert png.endswith(".png") and os.path.getsize(png) > 0

        boundary = tmp_path / "boundary_Smiling.npy"
        np.save(boundary, np.ones((1, 512)) / np.sqrt(512))
        with pytest.raises(AppError, match="made for another generator"):
            client.predict(model_id="demo", method="InterFaceGAN", boundary="upload",
                           boundary_file=handle_file(str(boundary)), api_name="/edit")
        rows = client.predict(model_id="demo", top=3, search_layers="9", api_name="/find_channels")[0]
        assert len(rows["data"]) == 3 and {r[0] for r in rows["data"]} == {9}
    assert app.alive()
