"""The launched hub end to end: gradio_client and raw HTTP calls against `python app.py` on 127.0.0.1.

One app launch for the module. Its Hub is a fake Hub on 127.0.0.1 (HF_ENDPOINT) serving a tiny
official StyleGAN2 pickle and a tiny StyleGAN3 pickle, added with `--model id=hf://...` specs,
plus a spec whose file the repo does not have. Caches and Gradio's files live in temp folders.
"""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app_server import api_client, launch_app
from fakehub import FakeHub

AppError = pytest.importorskip("gradio_client.exceptions").AppError

SG2_REPO, SG2_FILE = "owner/tiny-sg2", "nets/tiny-stylegan2-64x64.pkl"
SG3_REPO, SG3_FILE = "owner/tiny-sg3", "tiny-stylegan3-t-64x64.pkl"
MISSING_FILE = "nets/not-uploaded.pkl"
SPECS = (f"sg2-tiny=hf://{SG2_REPO}/{SG2_FILE}", f"sg3-tiny=hf://{SG3_REPO}/{SG3_FILE}",
         f"missing=hf://{SG2_REPO}/{MISSING_FILE}")
PSI = 0.7  # the endpoints' default truncation


# -- fixtures: checkpoints, the fake Hub, the app ------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Two tiny real-layout official pickles with random (seeded) weights."""
    from stylecore.engine.demo import DEMO_KWARGS, build_demo_generator
    from writers.official_pickle import nest_ada_kwargs, write_official_pickle

    folder = tmp_path_factory.mktemp("checkpoints")
    sg2 = build_demo_generator("stylegan2", seed=11).eval()
    sg3 = build_demo_generator("stylegan3", seed=12).eval()
    paths = {"sg2-tiny": folder / "sg2.pkl", "sg3-tiny": folder / "sg3.pkl"}
    write_official_pickle(paths["sg2-tiny"], sg2, nest_ada_kwargs(DEMO_KWARGS["stylegan2"]), "ada")
    write_official_pickle(paths["sg3-tiny"], sg3, DEMO_KWARGS["stylegan3"], "sg3")
    return paths


@pytest.fixture(scope="module")
def fake(checkpoints):
    with FakeHub() as hub:
        hub.add_file(SG2_REPO, SG2_FILE, checkpoints["sg2-tiny"].read_bytes())
        hub.add_file(SG3_REPO, SG3_FILE, checkpoints["sg3-tiny"].read_bytes())
        yield hub


@pytest.fixture(scope="module")
def app(fake, tmp_path_factory):
    args = ["--device", "cpu"]
    for spec in SPECS:
        args += ["--model", spec]
    with launch_app(args, env={"HF_ENDPOINT": fake.endpoint},
                    workdir=tmp_path_factory.mktemp("app")) as server:
        server.startup_requests = list(fake.requests)  # what launching asked the Hub for
        yield server


@pytest.fixture(scope="module")
def client(app, tmp_path_factory):
    with api_client(app, tmp_path_factory.mktemp("downloads")) as c:
        yield c


# -- helpers ------------------------------------------------------------------------------------


def png(path) -> np.ndarray:
    """A result file: must be a PNG that PIL opens; returned as an RGB array."""
    with Image.open(path) as im:
        assert im.format == "PNG", f"{path} is {im.format}, not PNG"
        return np.asarray(im.convert("RGB"))


def gallery_images(gallery) -> list[np.ndarray]:
    return [png(item["image"]) for item in gallery]


def local_images(checkpoint: Path, seeds, **settings) -> list[np.ndarray]:
    """What stylecore gives in this process for the same file and settings."""
    import stylecore
    from stylecore.codes.generate import GenerationSettings, generate_images

    G = stylecore.load_generator(checkpoint, device="cpu")
    return generate_images(G, seeds, GenerationSettings(truncation_psi=PSI, **settings), force_fp32=True)


def assert_same_image(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape, (a.shape, b.shape)
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max()
    assert diff <= 1, f"images differ by up to {diff} levels"


def assert_still_serves(client, seed: int = 5) -> None:
    gallery, grid, status = client.predict(model_id="demo", seeds=str(seed), api_name="/generate")
    assert [item["caption"] for item in gallery] == [f"seed {seed}"]
    assert gallery_images(gallery)[0].shape == (64, 64, 3)


def raw_call(base_url: str, api_name: str, body: str) -> list[tuple[str, str]]:
    """Gradio 6's HTTP API: POST /gradio_api/call/<api> with a JSON body, then read the event stream.
    Returns the (event, data) pairs; the last one is 'complete' or 'error'."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"{base_url}gradio_api/call/{api_name}", data=body.encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with opener.open(request, timeout=60) as response:
        event_id = json.load(response)["event_id"]
    with opener.open(f"{base_url}gradio_api/call/{api_name}/{event_id}", timeout=120) as response:
        stream = response.read().decode("utf-8")
    events = []
    for block in stream.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "event" in fields:
            events.append((fields["event"], fields.get("data", "")))
    assert events, f"no events in the stream: {stream!r}"
    return events


def dropdown_labels(base_url: str) -> dict[str, str]:
    """Model id -> label shown in the Model dropdown, from the page's config."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{base_url}config", timeout=30) as response:
        config = json.load(response)
    for component in config["components"]:
        props = component.get("props", {})
        if component.get("type") == "dropdown" and props.get("label") == "Model":
            return {value: label for label, value in props["choices"]}
    raise AssertionError("no 'Model' dropdown in the app's config")


def hub_requests_for(fake: FakeHub, filename: str) -> list:
    return [r for r in fake.requests if r.server == "hub" and r.path.endswith("/" + filename)]


# -- start-up -------------------------------------------------------------------------------------


def test_start_up_downloads_nothing_and_labels_the_models(app, fake):
    assert app.startup_requests == [], "launching the app must not contact the Hub"
    labels = dropdown_labels(app.url)
    assert labels["demo"].endswith("· built-in") and "untrained" in labels["demo"]
    for model_id in ("sg2-tiny", "sg3-tiny", "missing"):
        assert labels[model_id].endswith("· not downloaded"), labels[model_id]


# -- generation -----------------------------------------------------------------------------------


def test_generate_defaults_give_seed_0_of_the_demo(client):
    from stylecore.engine.demo import build_demo_generator
    from stylecore.codes.generate import GenerationSettings, generate_images

    gallery, grid, status = client.predict(api_name="/generate")
    assert [item["caption"] for item in gallery] == ["seed 0"]
    (image,) = gallery_images(gallery)
    assert image.shape == (64, 64, 3) and image.std() > 1  # not a flat image
    assert Path(grid).name.endswith(".png") and png(grid).shape == (64, 64, 3)
    assert "untrained" in status and "demo" in status.lower()
    expected = generate_images(build_demo_generator("stylegan2").eval(), [0], GenerationSettings(truncation_psi=PSI))
    assert_same_image(image, expected[0])


def test_hub_stylegan2_downloads_on_first_use_and_matches_local_generation(client, fake, checkpoints):
    assert hub_requests_for(fake, SG2_FILE) == [], "nothing may have asked for the file before this test"
    gallery, grid, status = client.predict(model_id="sg2-tiny", seeds="0-3", api_name="/generate")
    assert [item["caption"] for item in gallery] == [f"seed {s}" for s in range(4)]
    images = gallery_images(gallery)
    assert hub_requests_for(fake, SG2_FILE), "the first call must download the file from the Hub"
    assert any(r.server == "cdn" and r.method == "GET" for r in fake.requests)
    assert png(grid).shape == (128, 128, 3)  # 4 images in a 2x2 grid
    assert "untrained" not in status
    for got, want in zip(images, local_images(checkpoints["sg2-tiny"], [0, 1, 2, 3])):
        assert_same_image(got, want)
    assert not np.array_equal(images[0], images[1])

    demo_seed0 = gallery_images(client.predict(model_id="demo", seeds="0", api_name="/generate")[0])[0]
    assert not np.array_equal(images[0], demo_seed0), "the Hub model must not be the demo network"

    seen = len(fake.requests)
    again = gallery_images(client.predict(model_id="sg2-tiny", seeds="2", api_name="/generate")[0])
    assert len(fake.requests) == seen, "a loaded model is not downloaded again"
    assert_same_image(again[0], images[2])

    # The dropdown's Refresh now shows the file as downloaded (and the 404 one still not).
    update = client.predict("sg2-tiny", api_name="/refresh_models")
    labels = {model_id: label for label, model_id in update["choices"]}
    assert update["value"] == "sg2-tiny"
    assert labels["sg2-tiny"].endswith("· downloaded") and labels["missing"].endswith("· not downloaded")


def test_hub_stylegan3_translate_matches_local_generation(client, checkpoints):
    still = gallery_images(client.predict(model_id="sg3-tiny", seeds="3", api_name="/generate")[0])[0]
    moved = gallery_images(client.predict(model_id="sg3-tiny", seeds="3", translate_x=0.25,
                                          api_name="/generate")[0])[0]
    assert still.shape == moved.shape == (64, 64, 3)
    assert np.abs(still.astype(int) - moved.astype(int)).max() > 8, "translate must change the image"
    want_still, = local_images(checkpoints["sg3-tiny"], [3])
    want_moved, = local_images(checkpoints["sg3-tiny"], [3], translate=(0.25, 0.0))
    assert_same_image(still, want_still)
    assert_same_image(moved, want_moved)


def test_style_mix_defaults(client):
    image_path, file_path, status = client.predict(api_name="/style_mix")
    matrix = png(image_path)
    rows, cols = 3, 3  # "85, 100, 75" and "55, 821, 1789"
    assert matrix.shape == ((rows + 1) * 64, (cols + 1) * 64, 3)
    assert (matrix[:64, :64] == 255).all(), "the top-left cell is blank"
    assert np.array_equal(png(file_path), matrix)
    assert "untrained" in status


# -- bad input: a clear message, then the app keeps serving -------------------------------------------


@pytest.mark.parametrize("api_name,kwargs,fragments", [
    pytest.param("/generate", {"seeds": "99999999999"},
                 ["seed '99999999999' is out of range", "from 0 to 4294967295"], id="seed-out-of-range"),
    pytest.param("/generate", {"seeds": "abc"}, ["cannot read seed 'abc'"], id="seeds-abc"),
    pytest.param("/generate", {"seeds": "0-100"}, ["at most 64"], id="too-many-seeds"),
    pytest.param("/generate", {"truncation_cutoff": 99}, ["truncation cutoff must be from 0 to 10"], id="cutoff-99"),
    pytest.param("/generate", {"truncation_psi": 5}, ["5", "maximum"], id="psi-above-slider"),
    pytest.param("/generate", {"model_id": "demo", "translate_x": 0.25},
                 ["translate and rotate work only with StyleGAN3 models"], id="translate-on-stylegan2"),
    pytest.param("/generate", {"model_id": "missing"},
                 ["Model 'missing' is not available", f"the repo {SG2_REPO} has no file '{MISSING_FILE}'",
                  f"File: {SG2_REPO}/{MISSING_FILE} @ main"], id="hub-404"),
    pytest.param("/style_mix", {"col_layers": "12"}, ["layers taken from the columns must be from 0 to 9"],
                 id="mix-layer-out-of-range"),
])
def test_bad_input_is_a_clear_error_and_the_app_keeps_serving(client, api_name, kwargs, fragments):
    with pytest.raises(AppError) as info:
        client.predict(api_name=api_name, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in the error message {message!r}"
    assert "Traceback" not in message
    assert_still_serves(client)


def test_unknown_model_is_a_clear_error(client):
    with pytest.raises(AppError) as info:
        client.predict(model_id="no-such-model", api_name="/generate")
    message = str(info.value)
    # Gradio's own dropdown check answers first ("... not in the list of choices: [...]"); the
    # zoo's UnknownModelError ("Unknown model ... Known models: ...") would be as good.
    assert "no-such-model" in message
    assert "not in the list of choices" in message or "Unknown model" in message, message
    assert "demo" in message, "the message lists the models that exist"
    assert_still_serves(client)


def test_psi_nan_through_the_http_api(app, client):
    # gradio_client cannot send NaN (not JSON); Gradio's HTTP API parses it from a raw body.
    args = '["demo", "0", %s, null, "const", 0, 0, 0, 0]'
    events = raw_call(app.url, "generate", '{"data": %s}' % (args % "NaN"))
    event, data = events[-1]
    assert event == "error", events
    error = json.loads(data)["error"]
    assert "truncation psi must be a finite number" in error and "nan" in error.lower()

    event, data = raw_call(app.url, "generate", '{"data": %s}' % (args % "0.7"))[-1]
    assert event == "complete", data
    gallery, grid, status = json.loads(data)
    assert gallery[0]["caption"] == "seed 0" and "untrained" in status
    assert_still_serves(client)


def test_many_requests_at_once(client):
    """Concurrent requests (the app's queue runs 2 at a time) all come back right."""
    jobs = [client.submit(model_id="demo", seeds=str(seed), api_name="/generate") for seed in range(6)]
    results = [job.result(timeout=120) for job in jobs]
    assert [r[0][0]["caption"] for r in results] == [f"seed {s}" for s in range(6)]
