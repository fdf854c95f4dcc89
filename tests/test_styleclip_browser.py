"""The StyleCLIP tab in a real browser (Debian's Chromium via playwright) against `python app.py`,
and its /styleclip API through gradio_client on the same launch.

The app gets a tiny random-weight CLIP from a fake Hub (`hf-hub:` layout: open_clip_config.json and
open_clip_model.safetensors), so the whole path (download through the hub module, relevance table
for the demo generator, edit) runs offline. The browser sees the simple view (Advanced closed),
mapper mode with only the mapper's controls (and the reason no mapper is offered for the demo
network, Edit disabled until there is one), then a global-direction edit with before/after enlarged
and a strip; an empty prompt afterwards leaves those results in place with a message and no "Error"
badge. The API then runs the optimisation and a mapper on an uploaded code, and bad prompts come
back as messages while the app keeps serving.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("open_clip")

from app_server import api_client, launch_app  # noqa: E402
from browser import DIFFER, TIMEOUT_MS  # noqa: E402
from clip_hub import tiny_clip_hub  # noqa: E402
from test_styleclip import _mapper_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with tiny_clip_hub() as env:
        with launch_app(["--device", "cpu"], env=env, workdir=tmp_path_factory.mktemp("styleclip-app")) as server:
            yield server


def block(page, label: str):
    label_re = re.compile(rf"^\s*{re.escape(label)}\s*$")
    return page.locator(".block", has=page.get_by_test_id("block-label").filter(has_text=label_re)).last


def wait_image(page, label: str) -> str:
    img = block(page, label).locator("img").first
    img.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle(),
                           timeout=TIMEOUT_MS)
    return img.get_attribute("src")


def labelled(page, label: str):
    """The controls labelled `label` (their accessible name goes on with the info line)."""
    return page.get_by_label(label)


def visible(page, *labels: str) -> list[bool]:
    """Whether a control with each label is shown (in any tab: the labels are the StyleCLIP tab's own)."""
    return [labelled(page, label).filter(visible=True).count() > 0 for label in labels]


def test_global_direction_in_the_browser(page, app, tmp_path):
    page.goto(app.url)
    page.get_by_role("tab", name="StyleCLIP").click()
    target = page.get_by_label("Target text")
    edit = page.get_by_role("button", name="Edit", exact=True)
    target.wait_for()
    # The simple view: β, the relevance table's size and the CLIP model wait in the closed Advanced section.
    assert visible(page, "Neutral text", "Disentanglement threshold (β)", "CLIP model") == [True, False, False]
    page.get_by_text("Advanced", exact=True).filter(visible=True).first.click()
    labelled(page, "CLIP model").filter(visible=True).wait_for()

    # Mapper mode shows the mapper's controls only, says why none is offered here, and waits for one.
    page.get_by_role("radio", name="Latent mapper").check()
    page.get_by_text("no mapper exists for this model").wait_for()
    assert visible(page, "Target text", "Neutral text", "Disentanglement threshold (β)", "CLIP model",
                   "Strengths for the strip") == [False, False, False, False, True]
    # the button's state comes from its own event, which may land after the mapper note on a loaded machine
    page.wait_for_function("b => b.disabled", arg=edit.element_handle(), timeout=15_000)
    assert edit.is_disabled()

    page.get_by_role("radio", name="Global direction").check()
    target.fill("a smiling face with curly hair 😀")
    labelled(page, "Images per channel").fill("1")
    edit.click()
    page.get_by_test_id("markdown").filter(has_text="channels moved").first.wait_for(timeout=180_000)
    wait_image(page, "Before"), wait_image(page, "After")
    before, after = block(page, "Before").locator("img").first, block(page, "After").locator("img").first
    assert page.evaluate(DIFFER, [before.element_handle(), after.element_handle()]), "the edit did not change the image"
    after_src = after.get_attribute("src")
    assert block(page, "Before").locator("img").first.evaluate("i => i.naturalWidth") == 448  # 64 px, enlarged
    assert block(page, "Strip").locator("img").count() >= 5
    assert "demo-styleclip" in block(page, "Edited code (.npz)").inner_text()
    page.screenshot(path=str(tmp_path / "styleclip.png"), full_page=True)

    # An error after a success: a message, the results kept, no "Error" badge.
    target.fill("   ")
    edit.click()
    page.get_by_test_id("markdown").filter(has_text="the target text is empty").first.wait_for()
    assert block(page, "After").locator("img").first.get_attribute("src") == after_src
    assert page.locator("[data-testid=status-tracker] .error").count() == 0
    assert not page.outside_requests


def test_styleclip_api(app, tmp_path):
    from gradio_client import handle_file

    code = tmp_path / "code.npz"
    with api_client(app, tmp_path / "downloads") as client:
        before, after, strip, png, code_out, status = client.predict(
            "demo", "seed", 2, 0.7, 0, None, None, "Latent optimization", "a face with curly hair", "a face",
            4.0, 0.15, False, "", 1, 5, 0.1, 0.008, None, "", 1.0, "", api_name="/styleclip")
        assert "CLIP loss" in status and code_out.endswith(".npz")
        with np.load(code_out) as data:
            assert data["w"].shape[0] == 1
            np.savez(code, w=data["w"])
        # Bad prompts are messages, not crashes; the app keeps serving.
        for prompt in ("", "x" * 5000):
            with pytest.raises(Exception, match="empty|characters"):
                client.predict("demo", "file", 0, 0.7, 0, handle_file(str(code)), None, "Global direction", prompt,
                               "a face", 4.0, 0.15, False, "0", 1, 5, 0.1, 0.008, None, "", 1.0, "",
                               api_name="/styleclip")
        # A mapper needs W+ of StyleGAN2 1024 (18 × 512): on the demo network that is a clear error.
        mapper = tmp_path / "curly_hair.pt"
        mapper.write_bytes(_mapper_checkpoint())
        with pytest.raises(Exception, match="18, 512"):
            client.predict("demo", "seed", 0, 0.7, 0, None, None, "Latent mapper", "a face", "a face", 4.0, 0.15,
                           False, "", 1, 5, 0.1, 0.008, handle_file(str(mapper)), "", 1.0, "",
                           api_name="/styleclip")
        result = client.predict("demo", "file", 0, 0.7, 0, handle_file(str(code)), None, "Global direction",
                                "a face 😀", "a face", 0.0, 0.0, False, "0, 3", 1, 5, 0.1, 0.008, None, "", 1.0, "",
                                api_name="/styleclip")
        assert "α 0" in result[-1] and len(result[2]) == 2
