"""`python app.py` as a first visitor meets it on a Space with the network up: a local server stands in
for NVIDIA's NGC (STYLECORE_URL_MIRRORS) and a fake Hub for the Hub. One launch:

* through the API, a built-in official card (NVIDIA's URL) is listed as not downloaded, generates from
  an official-layout StyleGAN3 pickle, and is listed as downloaded afterwards, with its size and
  SHA-256 recorded; an official card whose server answers with a JSON page gives a clear error and
  leaves no file;
* in Chromium, the tabs open on the real default models (not the demo networks, no demo banner), and
  the page shows the background download of the default models as it goes.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from app_server import REPO_ROOT, api_client, app_env, launch_app
from browser import TIMEOUT_MS
from fakehub import FakeHub
from fakengc import NGC_FILES, FakeNGC

SPACE_ENV = {"SYSTEM": "spaces", "SPACE_ID": "test/stylegan-hub"}


def _ngc(family: str, name: str) -> str:
    return NGC_FILES.format(family=family, name=name)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from stylecore.engine.demo import DEMO_KWARGS, build_demo_generator
    from writers.official_pickle import write_official_pickle

    folder = tmp_path_factory.mktemp("ngc-files")
    sg3, sg2 = folder / "sg3.pkl", folder / "sg2.pkl"
    write_official_pickle(sg3, build_demo_generator("stylegan3"), DEMO_KWARGS["stylegan3"], "sg3")
    # NGC's StyleGAN2 files were written by the StyleGAN3 code base
    write_official_pickle(sg2, build_demo_generator("stylegan2"), DEMO_KWARGS["stylegan2"], "sg3")
    workdir = tmp_path_factory.mktemp("ngc-app")
    with FakeNGC() as ngc, FakeHub() as hub:
        for name in ("stylegan3-t-ffhqu-256x256.pkl", "stylegan3-t-afhqv2-512x512.pkl"):
            ngc.add(_ngc("stylegan3", name), sg3.read_bytes())
        for name in ("stylegan2-ffhq-512x512.pkl", "stylegan2-ffhq-256x256.pkl"):
            ngc.add(_ngc("stylegan2", name), sg2.read_bytes())
        ngc.add(_ngc("stylegan3", "stylegan3-r-ffhqu-256x256.pkl"), behaviour="json")
        env = {**SPACE_ENV, "STYLECORE_DEMO_DEFAULTS": None, "STYLECORE_URL_MIRRORS": ngc.mirrors,
               "HF_ENDPOINT": hub.endpoint}
        with launch_app(["--device", "cpu"], env=env, workdir=workdir) as server:
            server.workdir = workdir
            yield server


def listed_state(app, model_id: str) -> str:
    """The model's row of `python -m stylecore models`, run against the app's own caches."""
    done = subprocess.run([sys.executable, "-m", "stylecore", "models"], cwd=str(REPO_ROOT), capture_output=True,
                          env=app_env({"HF_HUB_OFFLINE": "1"}, app.workdir), text=True, timeout=120)
    return next(line for line in done.stdout.splitlines() if line.startswith(model_id + " "))


def test_official_card_downloads_verifies_and_generates(app, tmp_path):
    downloads = app.workdir / "downloads"
    assert "not downloaded" in listed_state(app, "sg3-t-afhqv2-512")
    with api_client(app, tmp_path / "client") as client:
        gallery, _, status = client.predict(model_id="sg3-t-afhqv2-512", seeds="0", api_name="/generate")
        with Image.open(gallery[0]["image"]) as im:
            assert im.size == (64, 64)
        assert "StyleGAN3-T AFHQv2" in status and "untrained" not in status
        records = [json.loads(p.read_text()) for p in downloads.glob("*stylegan3-t-afhqv2-512x512.pkl.json")]
        assert len(records) == 1 and records[0]["url"].startswith("https://api.ngc.nvidia.com/")
        assert len(records[0]["sha256"]) == 64 and records[0]["size"] > 1000
        row = listed_state(app, "sg3-t-afhqv2-512")
        assert " downloaded " in row and "not downloaded" not in row and "NVIDIA Source Code License-NC" in row
        with pytest.raises(Exception, match="JSON document instead of the file") as err:
            client.predict(model_id="sg3-r-ffhqu-256", seeds="0", api_name="/generate")
        assert "Traceback" not in str(err.value)
    assert not list(downloads.glob("*stylegan3-r-ffhqu*"))
    assert app.alive()


def test_first_visit_opens_on_real_models_and_shows_the_background_downloads(app, page):
    page.goto(app.url)
    page.get_by_text("Preparing the default models").or_(page.get_by_text("Default models are ready")).wait_for()
    page.get_by_text("StyleGAN2 FFHQ 512: ready").wait_for(timeout=TIMEOUT_MS)
    page.get_by_text("StyleGAN3-T FFHQ-U (unaligned) 256: ready").wait_for(timeout=TIMEOUT_MS)
    # The Hub's default files are not on this fake Hub: reported, and the app keeps working.
    page.get_by_text("StyleNeRF FFHQ 256: not available").wait_for(timeout=TIMEOUT_MS)
    model = page.get_by_role("combobox", name="Model").first
    assert "StyleGAN2 FFHQ 512" in model.input_value()
    assert page.get_by_text("the tabs open on the built-in demo networks").count() == 0
    assert "NVIDIA Source Code License-NC" in page.locator(".model-card").first.inner_text()
    page.get_by_role("tab", name="Video").click()
    video_model = page.locator("#video-model input").first
    assert "StyleGAN3-T FFHQ-U (unaligned) 256" in video_model.input_value()
