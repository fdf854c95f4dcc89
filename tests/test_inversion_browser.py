"""The Inversion tab in a real browser (Debian's Chromium via playwright) against `python app.py`, and
its /invert API through gradio_client on the same launch.

The app runs offline (its Hub is a closed port): the LPIPS backbone cannot be downloaded, so LPIPS falls
back to a random VGG16 backbone by itself, and the table says so. The browser sees the simple view (Advanced closed, Invert and "Send to the Editing tab"
disabled while there is nothing to do, the codes a download list, not an upload box), inverts a
seed's image with two methods and sees the reconstructions enlarged, metrics, a legend naming each
curve and the codes; a step count far over the limit then leaves every result in place (a message
naming the field, no "Error" badge); a code goes to the Editing tab. The API inverts a real
photograph (aligned with dlib when the model is told it is a face model), and bad inputs (not an
image, 0 bytes, 20000x20000, no face) give clear messages while the app keeps serving.
"""
from __future__ import annotations

import re
import struct
import zlib

import numpy as np
import pytest
from app_server import api_client, launch_app
from browser import local_page

TIMEOUT_MS = 90_000
ENV = {"HF_ENDPOINT": "http://127.0.0.1:9"}  # an unreachable Hub: refused at once
# What the browser reads off the page in one go: the sizes of the shown reconstructions, the legend's
# entries, the table's headers and the "Error" badges on any output.
RESULTS = """g => ({
  widths: [...g.querySelectorAll('img')].map(i => i.naturalWidth),
  legend: [...document.querySelectorAll('.vega-embed text')].map(t => t.textContent),
  headers: [...document.querySelectorAll('.inversion-metrics th')].map(t => t.innerText.trim()),
  badges: [...document.querySelectorAll('[data-testid=status-tracker] .error')].length,
})"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inversion-app")
    models = folder / "faces.json"  # the demo network declared a face model, so 'auto' aligns faces
    models.write_text('[{"id": "demo-faces", "title": "Demo as a face model", "format": "builtin", '
                      '"architecture": "stylegan2", "resolution": 64, "domain": "faces"}]')
    with launch_app(["--device", "cpu", "--models", str(models)], env=ENV, workdir=folder) as server:
        yield server


@pytest.fixture
def page(browser, app):
    with local_page(browser, height=1200, timeout_ms=TIMEOUT_MS) as p:
        yield p


def block(page, label: str):
    label_re = re.compile(rf"^\s*{re.escape(label)}\s*$")
    return page.locator(".block", has=page.get_by_test_id("block-label").filter(has_text=label_re)).last


def test_invert_in_the_browser(page, app, tmp_path):
    page.goto(app.url)
    page.get_by_role("tab", name="Inversion").click()
    # The simple view: research settings wait in the closed Advanced section; nothing to invert or send yet.
    invert = page.get_by_role("button", name="Invert", exact=True)
    send = page.get_by_role("button", name="Send to the Editing tab")
    page.get_by_role("checkbox", name="W optimisation (official projector)").wait_for()
    assert page.get_by_role("spinbutton", name="W steps").is_hidden()
    assert page.get_by_text("Alignment", exact=True).is_hidden()
    assert invert.is_disabled() and send.is_disabled()
    codes = block(page, "Codes (.npz, array 'w')")
    assert codes.locator("input[type=file]").count() == 0, "the codes output looks like an upload box"

    page.get_by_role("radio", name="a seed").filter(visible=True).first.check()
    page.get_by_role("spinbutton", name="Seed").filter(visible=True).first.fill("3")
    page.get_by_text("Advanced", exact=True).filter(visible=True).first.click()
    page.get_by_role("spinbutton", name="W steps").fill("2")
    page.get_by_role("spinbutton", name="W+ steps").fill("2")
    invert.click()
    page.get_by_test_id("markdown").filter(has_text="2 of 2 methods ran").first.wait_for()
    gallery = block(page, "Reconstructions")
    page.wait_for_function("g => [...g.querySelectorAll('img')].filter(i => i.naturalWidth).length >= 3",
                           arg=gallery.element_handle())
    page.locator(".vega-embed text", has_text="W+").first.wait_for()
    shown = gallery.evaluate(RESULTS)
    assert shown["widths"] == [448] * 3, "the 64 px results are not enlarged for display"
    assert {"W", "W+"} <= set(shown["legend"]), f"the legend does not name the curves: {shown['legend']}"
    assert shown["headers"][:3] == ["method", "space", "LPIPS (random VGG16)"]
    assert codes.get_by_test_id("download-link").count() == 2
    page.wait_for_function("b => !b.disabled", arg=send.element_handle())
    page.screenshot(path=str(tmp_path / "inversion.png"), full_page=True)

    # An error after a success: a message naming the field, every result kept, no "Error" badge.
    page.get_by_role("spinbutton", name="W steps").fill("100000000")
    invert.click()
    page.get_by_test_id("markdown").filter(has_text="W steps must be a whole number from 1 to 10000").first.wait_for()
    page.get_by_test_id("toast-body").filter(has_text="W steps must be a whole number from 1 to 10000").wait_for()
    kept = gallery.evaluate(RESULTS)
    assert kept["widths"] == [448] * 3 and kept["badges"] == 0, kept
    assert codes.get_by_test_id("download-link").count() == 2

    send.click()
    page.get_by_role("tab", name="Editing", selected=True).wait_for()
    block(page, "Code (.npz)").get_by_text(re.compile("-Wplus")).first.wait_for()
    assert page.get_by_role("radio", name="file").first.is_checked()
    page.screenshot(path=str(tmp_path / "editing.png"), full_page=True)
    assert app.alive()


def test_pti_and_hyperstyle_codes_edited_with_their_weights_in_the_browser(page, app):
    """PTI and HyperStyle side by side (the untrained HyperStyle of the demo network), their passes and tuned
    weights offered, and a code sent to Editing is drawn there with its own tuned weights."""
    page.goto(app.url)
    page.get_by_role("tab", name="Inversion").click()
    page.get_by_role("checkbox", name="W optimisation (official projector)").uncheck()
    page.get_by_role("checkbox", name="W+ optimisation (Image2StyleGAN)").uncheck()
    page.get_by_role("checkbox", name="PTI (W pivot + pivotal tuning of the generator)").check()
    page.get_by_role("checkbox", name="HyperStyle (W encoder + predicted weight offsets)").check()
    page.get_by_role("radio", name="a seed").filter(visible=True).first.check()
    page.get_by_role("spinbutton", name="Seed").filter(visible=True).first.fill("5")
    page.get_by_text("Advanced", exact=True).filter(visible=True).first.click()
    page.get_by_role("spinbutton", name="PTI steps").fill("2")
    page.get_by_role("spinbutton", name="Passes (ReStyle, HyperStyle)").fill("2")
    page.get_by_role("button", name="Invert", exact=True).click()
    page.get_by_test_id("markdown").filter(has_text="2 of 2 methods ran").first.wait_for()
    assert page.get_by_test_id("markdown").filter(has_text="draw the PTI / HyperStyle codes with their tuned "
                                                           "weights").count()
    codes = block(page, "Codes (.npz, array 'w')")
    listed = codes.inner_text().replace("\n", "")  # a file's name and extension are shown apart
    assert codes.get_by_test_id("download-link").count() == 4
    assert "demo-0-PTI-tuned-weights.safetensors" in listed and "demo-1-HyperStyle-tuned-weights.safetensors" in listed
    strip = block(page, "Passes (ReStyle, HyperStyle)")
    page.wait_for_function("g => [...g.querySelectorAll('img')].filter(i => i.naturalWidth).length >= 2",
                           arg=strip.element_handle())

    send = page.get_by_role("button", name="Send to the Editing tab")
    page.wait_for_function("b => !b.disabled", arg=send.element_handle())
    send.click()  # the last code: HyperStyle's
    page.get_by_role("tab", name="Editing", selected=True).wait_for()
    block(page, "Code (.npz)").get_by_text(re.compile("-HyperStyle")).first.wait_for()
    page.get_by_role("button", name="Apply edit").click()
    page.get_by_test_id("markdown").filter(has_text="drawn with the generator weights PTI or HyperStyle tuned "
                                                    "for this code").first.wait_for()
    assert app.alive()


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_invert_api_photo_and_bad_inputs(app, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    from PIL import Image

    from stylecore.codes.latents import load_latents

    skdata = pytest.importorskip("skimage.data")
    pytest.importorskip("dlib")
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skdata.astronaut()).save(photo)
    with api_client(app, tmp_path / "downloads") as client:
        aligned, gallery, table, plot, strip, files, chosen, status = client.predict(
            model_id="demo-faces", image=handle_file(str(photo)), source="image", alignment="auto",
            methods=["wplus"], wplus_steps=3, api_name="/invert")
        assert "face aligned" in status and "1 of 1 methods" in status
        assert np.asarray(Image.open(aligned)).shape == (64, 64, 3)  # an API call: the real pixels
        assert len(gallery) == 2 and len(table["data"]) == 1 and table["data"][0][:2] == ["W+", "W+"]
        assert load_latents(files[0], num_ws=10, w_dim=64).shape == (1, 10, 64)

        bad = {"notes.png": (b"these are notes, not pixels", "not an image"),
               "empty.png": (b"", "empty"),
               "huge.png": (png_header_only(20000, 20000), "too large|20000x20000")}
        for name, (data, message) in bad.items():
            path = tmp_path / name
            path.write_bytes(data)
            with pytest.raises(AppError, match=message):
                client.predict(model_id="demo", image=handle_file(str(path)), methods=["w"], w_steps=1,
                               api_name="/invert")
        grey = tmp_path / "grey.png"
        Image.new("RGB", (120, 90), (120, 120, 120)).save(grey)
        with pytest.raises(AppError, match="no face found"):
            client.predict(model_id="demo", image=handle_file(str(grey)), alignment="align", methods=["w"],
                           w_steps=1, api_name="/invert")
        with pytest.raises(AppError, match="W steps must be a whole number from 1 to 10000, got -5"):
            client.predict(model_id="demo", source="seed", methods=["w"], w_steps=-5, api_name="/invert")
        with pytest.raises(AppError, match="not in the list of choices|unknown method"):
            client.predict(model_id="demo", source="seed", methods=["magic"], api_name="/invert")
        with pytest.raises(AppError, match="trained for a 1024x1024 generator"):  # refused before any download
            client.predict(model_id="demo", source="seed", methods=["encoder"], encoder="e4e-ffhq",
                           api_name="/invert")
        *_, status = client.predict(model_id="demo", image=handle_file(str(grey)), alignment="align",
                                    crop_if_no_face=True, methods=["w"], w_steps=2, api_name="/invert")
        assert "no face found: used a centre crop" in status

        # A PTI code through the API: the same client (its session) edits it with the tuned weights.
        *_, files, _, status = client.predict(model_id="demo", source="seed", seed=2, methods=["pti"], pti_steps=2,
                                              api_name="/invert")
        assert files[-1].endswith("-PTI-tuned-weights.safetensors")
        *_, edited = client.predict(model_id="demo", source="file", code_file=handle_file(files[0]),
                                    method="GANSpace", pca_samples=500, pca_strength=0, api_name="/edit")
        assert "drawn with the generator weights PTI or HyperStyle tuned for this code" in edited
    assert app.alive()
