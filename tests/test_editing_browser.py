"""The Editing tab in a real browser (Debian's Chromium via playwright) against `python app.py`, plus
its API through gradio_client on the same launch.

Open the tab, apply a StyleSpace edit and a GANSpace edit to the built-in demo model and see the
before/after images load and differ; show the part map; then drive /edit with an uploaded .npz code
and a direction for another generator (a clear error, the app keeps serving).
"""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
from app_server import api_client, launch_app
from browser import PIXELS, TIMEOUT_MS


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


def wait_loaded(page, img, previous_src: str = "") -> str:
    """Wait until `img` shows a decoded picture whose src differs from `previous_src`; return the src."""
    img.wait_for()
    page.wait_for_function("([img, old]) => img.complete && img.naturalWidth > 0 && img.src !== old",
                           arg=[img.element_handle(), previous_src], timeout=TIMEOUT_MS)
    return img.get_attribute("src")


def test_edit_in_the_browser(page, app, tmp_path):
    page.goto(app.url)
    page.get_by_role("tab", name="Editing").click()
    model = page.get_by_role("combobox", name="Model")
    model.wait_for()
    assert "Built-in demo network" in model.input_value() and "untrained" in model.input_value()

    page.get_by_role("radio", name="StyleSpace").check()
    page.get_by_role("spinbutton", name="Channel").fill("5")
    page.get_by_role("button", name="Apply edit").click()
    status = page.get_by_test_id("markdown").filter(has_text="StyleSpace channel 6_5")
    status.first.wait_for()
    before, after = image_in(page, "Before"), image_in(page, "After")
    before_src, after_src = wait_loaded(page, before), wait_loaded(page, after)
    assert before.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [64, 64]
    assert after.evaluate("img => img.naturalWidth") == 64
    assert before.evaluate(PIXELS) != after.evaluate(PIXELS), "the edit did not change the image"
    for label, name in (("Edited code (.npz)", "demo-edited"), ("Edited image (PNG)", "demo-edited")):
        assert name in block(page, label).inner_text(), label
    page.screenshot(path=str(tmp_path / "stylespace.png"), full_page=True)

    # GANSpace on the same code: a different result, computed with the PCA shown beside it.
    page.get_by_role("radio", name="GANSpace").check()
    page.get_by_role("spinbutton", name="PCA samples").fill("2000")
    page.get_by_role("button", name="Apply edit").click()
    page.get_by_test_id("markdown").filter(has_text="GANSpace component 0").first.wait_for()
    wait_loaded(page, after, after_src)
    assert before.evaluate(PIXELS) != after.evaluate(PIXELS)
    page.get_by_role("button", name="Compute PCA and show variance").click()
    page.get_by_text("explain", exact=False).first.wait_for()

    # Parts: the k-means part map of the image.
    page.get_by_role("radio", name="Local (parts)").check()
    page.get_by_role("spinbutton", name="Samples").fill("4")
    page.get_by_role("button", name="Show parts").click()
    wait_loaded(page, image_in(page, "Part map"))
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
        assert "GANSpace component 1" in status
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
