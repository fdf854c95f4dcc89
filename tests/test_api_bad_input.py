"""Bad input through the API, for every named endpoint: a clear message, and the app keeps serving.

One launch of `python app.py` (CPU, LPIPS with a random backbone, a tiny random CLIP served by a
fake Hub on 127.0.0.1 so StyleCLIP runs offline). Every call goes through Gradio's raw HTTP API
(POST /gradio_api/call/<api>, then the event stream), the same queue path the browser uses, so
values that gradio_client cannot send (NaN, ±Infinity: Python's json module writes and reads those
literals) reach the app as they are. Files are uploaded through /gradio_api/upload first, like the
UI does; a file value naming a server path that was never uploaded tests that no endpoint reads
arbitrary server files.

ROWS is the table: (api_name, overrides of the endpoint's defaults, fragments the error message must
contain). A bad call must end in an 'error' event whose message is the gr.Error text (not Gradio's
bare "Error" for an unexpected exception, and no traceback); after it a cheap good call must
succeed. `test_every_endpoint_has_rows` fails when an endpoint appears in view_api without rows.
"""
from __future__ import annotations

import contextlib
import json
import math
import struct
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest

from app_server import api_client, launch_app
from clip_hub import tiny_clip_hub

NAN, INF = float("nan"), float("inf")
LONG = "x" * 5000
NO_USER_INPUT = "no user input"  # marker: the endpoint takes no parameters at all

# -- the bad files -------------------------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and a valid IHDR chunk announcing width x height, then IEND: no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _npz(**arrays) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _zip_without_w() -> bytes:
    return _npz(latent=np.zeros((1, 512), np.float32))


FILES = {
    "empty.png": lambda: b"",
    "huge.png": lambda: _png_header_only(20000, 20000),
    "text.png": lambda: b"this is a text file, not a PNG\n" * 10,
    "notzip.npz": lambda: b"not a zip archive at all\n" * 10,
    "no-w.npz": _zip_without_w,
    "badshape.npz": lambda: _npz(w=np.zeros((1, 3, 7), np.float32)),
    "nan.npz": lambda: _npz(w=np.full((1, 64), np.nan, np.float32)),  # the demo networks: w_dim 64
    "notnpy.npy": lambda: b"not a numpy file",
    "notpt.pt": lambda: b"not a torch checkpoint",
}


@dataclass(frozen=True)
class Upload:
    """A file from FILES, uploaded through /gradio_api/upload and passed as a FileData value."""

    name: str
    many: bool = False  # a list of files (file_count="multiple")


@dataclass(frozen=True)
class ServerPath:
    """A FileData value naming a server path that was never uploaded (path traversal attempt)."""

    path: str


@dataclass
class Row:
    api: str
    overrides: dict
    fragments: list
    id: str
    marks: list = field(default_factory=list)


def row(api: str, overrides: dict, fragments, id: str, marks=()) -> Any:
    fragments = [fragments] if isinstance(fragments, str) else list(fragments)
    return pytest.param(Row(api, overrides, fragments, id), id=f"{api.strip('/')}-{id}", marks=marks)


NPZ_ROWS = (("notzip.npz", "not a readable .npz file"), ("no-w.npz", "no array named 'w'"),
            ("badshape.npz", "does not fit this model"), ("nan.npz", "NaN or infinite"))
IMAGE_ROWS = (("empty.png", "empty (0 bytes)"), ("huge.png", "reads images up to"),
              ("text.png", "not an image this app can read"))
REFRESH = ("/refresh_models", "/editing_refresh_models", "/inversion_refresh_models", "/styleclip_refresh_models")

ROWS = [
    # /generate
    row("/generate", {"truncation_psi": "abc"}, "float", "wrong-type"),
    row("/generate", {"truncation_psi": 5}, "maximum", "out-of-range"),
    row("/generate", {"truncation_psi": NAN}, "finite", "nan"),
    row("/generate", {"truncation_cutoff": -1}, "truncation cutoff must be from 0 to 10", "cutoff-negative"),
    row("/generate", {"translate_x": INF}, ["inf", "maximum"], "inf"),
    row("/generate", {"rotate": -INF}, ["-inf", "minimum"], "minus-inf"),
    row("/generate", {"seeds": LONG}, "seed", "long-text"),
    row("/generate", {"seeds": ["0", "1"]}, "seed", "list-for-text"),
    row("/generate", {"model_id": "../../app.py"}, "not in the list of choices", "model-path"),
    # /style_mix
    row("/style_mix", {"truncation_psi": "abc"}, "float", "wrong-type"),
    row("/style_mix", {"col_layers": "0-99"}, "layers", "out-of-range"),
    row("/style_mix", {"truncation_psi": NAN}, "finite", "nan"),
    row("/style_mix", {"truncation_psi": INF}, "inf", "inf"),
    row("/style_mix", {"row_seeds": LONG}, "seed", "long-text"),
    # refresh helpers: their only input is a model dropdown
    *[row(api, {"current": "no-such-model"}, "not in the list of choices", "unknown-model") for api in REFRESH],
    *[row(api, {"current": NAN}, "not in the list of choices", "nan") for api in REFRESH],
    # /edit
    row("/edit", {"seed": "abc"}, "could not preprocess", "wrong-type"),
    row("/edit", {"pca_samples": 5}, "Images sampled must be from 100 to 1000000", "out-of-range"),
    row("/edit", {"truncation_psi": NAN}, "truncation psi", "nan"),
    row("/edit", {"pca_strength": INF}, "greater than maximum value 10", "inf"),
    row("/edit", {"pca_layers": LONG}, "cannot read layer", "long-text"),
    row("/edit", {"method": "Nope"}, "not in the list of choices", "bad-choice"),
    *[row("/edit", {"source": "file", "code_file": Upload(name)}, frag, f"code-{name}") for name, frag in NPZ_ROWS],
    row("/edit", {"method": "Local (parts)", "reference_file": Upload("nan.npz"), "part_samples": 4},
        "NaN or infinite", "reference-nan"),
    row("/edit", {"method": "InterFaceGAN", "boundary_file": Upload("notnpy.npy")}, "not a readable .npy", "bad-boundary"),
    row("/edit", {"source": "file", "code_file": ServerPath("/etc/passwd")}, "not uploaded", "etc-passwd"),
    row("/edit", {"source": "file", "code_file": ServerPath("../../app.py")}, "not uploaded", "dotdot-app"),
    # /ganspace_pca
    row("/ganspace_pca", {"pca_components": "many"}, "could not preprocess", "wrong-type"),
    row("/ganspace_pca", {"pca_samples": 10 ** 9}, "Images sampled must be from 100", "out-of-range"),
    row("/ganspace_pca", {"pca_samples": NAN}, "could not preprocess", "nan"),
    row("/ganspace_pca", {"pca_seed": -INF}, "could not preprocess", "minus-inf"),
    # /find_channels
    row("/find_channels", {"top": "abc"}, "channels", "wrong-type"),
    row("/find_channels", {"top": 0}, "Channels to list must be from 1 to 200", "out-of-range"),
    row("/find_channels", {"truncation_psi": NAN}, "truncation psi", "nan"),
    row("/find_channels", {"box": LONG}, "box", "long-text"),
    row("/find_channels", {"box": "0.1, 0.1, inf, 0.5"}, "box", "inf-in-box"),
    row("/find_channels", {"source": "file", "code_file": Upload("nan.npz")}, "NaN or infinite", "code-nan"),
    row("/find_channels", {"region": "abc"}, "valid dictionary", "region-wrong-type"),
    # /part_map
    row("/part_map", {"part_k": "abc"}, "parts", "wrong-type"),
    row("/part_map", {"part_k": 99}, "Number of parts must be from 2 to 20", "out-of-range"),
    row("/part_map", {"part_samples": NAN}, "could not preprocess", "nan"),
    row("/part_map", {"part_block": LONG}, "unknown feature block", "long-text"),
    row("/part_map", {"source": "file", "code_file": Upload("badshape.npz")}, "does not fit this model", "code-shape"),
    # /known_channel: a dropdown of published channels
    row("/known_channel", {"code": "99_99"}, "not in the list of choices", "unknown-channel"),
    row("/known_channel", {"code": NAN}, "not in the list of choices", "nan"),
    # /align
    *[row("/align", {"image": Upload(name)}, frag, f"image-{name}") for name, frag in IMAGE_ROWS],
    row("/align", {"image": 12345}, "image", "wrong-type"),
    row("/align", {"image": ServerPath("/etc/passwd")}, "not uploaded", "etc-passwd"),
    row("/align", {"alignment": "sideways", "image": Upload("huge.png")}, "not in the list of choices", "bad-choice"),
    # /invert
    row("/invert", {"source": "seed", "w_steps": "abc", "methods": ["w"]}, "could not preprocess", "wrong-type"),
    row("/invert", {"source": "seed", "wplus_steps": 10 ** 7, "methods": ["wplus"]},
        "W+ steps must be a whole number from 1 to 10000", "out-of-range"),
    row("/invert", {"source": "seed", "truncation_psi": NAN, "methods": ["w"], "w_steps": 1}, "truncation psi", "nan"),
    row("/invert", {"source": "could not preprocess", "seed": INF, "methods": ["w"], "w_steps": 1}, "seed", "inf"),
    row("/invert", {"source": "seed", "methods": ["encoder"], "encoder": LONG}, "unknown encoder", "long-text"),
    *[row("/invert", {"image": Upload(name), "methods": ["w"], "w_steps": 1}, frag, f"image-{name}")
      for name, frag in IMAGE_ROWS],
    row("/invert", {"image": ServerPath("../../app.py"), "methods": ["w"]}, "not uploaded", "dotdot-app"),
    row("/invert_estimate", {"w_steps": "abc", "methods": ["w"]}, "could not preprocess", "wrong-type"),
    # /styleclip (tiny random CLIP from the fake Hub)
    row("/styleclip", {"seed": "abc"}, "could not preprocess", "wrong-type"),
    row("/styleclip", {"method": "Latent optimization", "id_lambda": 0.5}, "needs face-recognition weights",
        "id-loss-without-weights"),
    row("/styleclip", {"alpha": 500, "relevance_images": 1}, "greater than maximum value 10", "out-of-range"),
    row("/styleclip", {"truncation_psi": NAN}, "truncation psi", "nan"),
    row("/styleclip", {"strip": "1, inf"}, "strip value", "inf-in-strip"),
    row("/styleclip", {"method": "Latent optimization", "lr": -INF}, "Learning rate must be a finite number", "minus-inf"),
    row("/styleclip", {"target": LONG, "relevance_images": 1}, "characters", "long-text"),
    *[row("/styleclip", {"source": "file", "code_file": Upload(name)}, frag, f"code-{name}") for name, frag in NPZ_ROWS],
    row("/styleclip", {"source": "inversion", "inversion_codes": Upload("no-w.npz", many=True)}, "no array named 'w'",
        "inversion-codes-no-w"),
    row("/styleclip", {"method": "Latent mapper", "mapper_file": Upload("notpt.pt")}, "mapper", "bad-mapper"),
    row("/styleclip", {"source": "file", "code_file": ServerPath("/etc/passwd")}, "not uploaded", "etc-passwd"),
    # /styleclip_stop: no parameters
    row("/styleclip_stop", NO_USER_INPUT, [], "no-user-input"),
    # /domains (the demo network and its demo domains)
    row("/domains", {"domains": []}, "choose at least one style", "no-style"),
    row("/domains", {"seed": -1}, "seed must be from 0 to 4294967295", "seed-negative"),
    row("/domains", {"source": "file"}, "choose an .npz code file", "no-file"),
    row("/domains", {"source": "inversion"}, "no inversion result yet", "no-inversion"),
    # /domain_morph
    row("/domain_morph", {"frames": 1}, "video frames must be from 2 to 240", "one-frame"),
    row("/domain_morph", {"domain": "nada-anime"}, "not in the list of choices", "other-generators-domain"),
    # /retrieve
    row("/retrieve", {"parts": []}, "choose at least one part", "no-part"),
    row("/retrieve", {"gallery_size": 1}, "Gallery size must be from 2 to 2000", "gallery-too-small"),
    row("/retrieve", {"k": 99}, "Number of parts must be from 2 to 20", "too-many-parts"),
    row("/retrieve", {"top": 100}, "maximum", "too-many-results"),
    row("/retrieve", {"region": "the mouth"}, "give the region as a box 'x0, y0, x1, y1'", "unreadable-region"),
    row("/retrieve", {"compare": "painted"}, "mark the region with the brush", "painted-nothing"),
    # /retrieve_transfer
    row("/retrieve_transfer", {"reference_seed": -5}, "borrow from seed must be from 0", "seed-negative"),
    row("/retrieve_transfer", {"part": 30}, "not in the list of choices", "part-out-of-range"),
    # /video
    row("/video", {"frames_per_transition": "abc"}, "float", "wrong-type"),
    row("/video", {"grid_w": 99}, "maximum", "out-of-range"),
    row("/video", {"fps": NAN}, "fps", "nan"),
    row("/video", {"truncation_psi": INF}, "greater than maximum value 2", "inf"),
    row("/video", {"seeds": LONG}, "seed", "long-text"),
    *[row("/video", {"codes": Upload(name)}, frag, f"codes-{name}") for name, frag in NPZ_ROWS[:3]],
    row("/video", {"codes": Upload("nan.npz")}, "NaN or infinite", "codes-nan.npz"),
    row("/video", {"codes": ServerPath("/etc/passwd")}, "not uploaded", "etc-passwd"),
    # /stylenerf
    row("/stylenerf", {"seed": 2 ** 32}, "Seed must be from 0 to 4294967295", "seed-too-big"),
    row("/stylenerf", {"yaw": "left"}, "float", "wrong-type"),
    row("/stylenerf", {"fov": 1000}, "maximum", "out-of-range"),
    row("/stylenerf", {"steps": 1}, "minimum", "steps-below-slider"),
    row("/stylenerf", {"pitch": NAN}, "pitch", "nan"),
    row("/stylenerf", {"seed": INF}, "could not preprocess", "inf"),
    row("/stylenerf", {"model_id": "demo"}, "not in the list of choices", "not-a-nerf"),
    # /stylenerf_orbit
    row("/stylenerf_orbit", {"frames": "many"}, "float", "wrong-type"),
    row("/stylenerf_orbit", {"frames": 10 ** 6}, "maximum", "out-of-range"),
    row("/stylenerf_orbit", {"yaw_range": NAN}, "yaw range", "nan"),
    row("/stylenerf_orbit", {"fps": -INF}, "less than minimum value 6", "minus-inf"),
]


# -- the app -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("bad-input-app")
    env = {"STYLECORE_LPIPS_BACKBONE": "random"}
    with contextlib.ExitStack() as stack:
        try:
            env.update(stack.enter_context(tiny_clip_hub()))
        except ImportError as exc:  # no open_clip: the StyleCLIP rows that need CLIP fail with its message
            print(f"StyleCLIP runs without a CLIP model here: {exc}")
        with launch_app(["--device", "cpu"], env=env, workdir=workdir) as server:
            server.workdir = workdir
            yield server


@pytest.fixture(scope="module")
def api(app, tmp_path_factory) -> dict:
    """view_api's named endpoints: api_name -> parameters (name, default)."""
    with api_client(app, tmp_path_factory.mktemp("downloads")) as client:
        info = client.view_api(return_format="dict", print_info=False)
    assert not info["unnamed_endpoints"], f"endpoints without an api_name: {list(info['unnamed_endpoints'])}"
    return {name: [(p["parameter_name"], p.get("parameter_default")) for p in ep["parameters"]]
            for name, ep in info["named_endpoints"].items()}


@pytest.fixture(scope="module")
def uploads(app) -> dict:
    """Each bad file uploaded once through Gradio's upload route: name -> server path."""
    import httpx

    paths = {}
    with httpx.Client(trust_env=False, timeout=60) as http:
        for name, make in FILES.items():
            response = http.post(f"{app.url}gradio_api/upload", files=[("files", (name, make()))])
            response.raise_for_status()
            (paths[name],) = response.json()
    return paths


# -- calling ------------------------------------------------------------------------------------


def _file_data(path: str, name: Optional[str] = None) -> dict:
    return {"path": path, "orig_name": name or Path(path).name, "meta": {"_type": "gradio.FileData"}}


def _value(value: Any, uploads: dict) -> Any:
    if isinstance(value, Upload):
        data = _file_data(uploads[value.name], value.name)
        return [data] if value.many else data
    if isinstance(value, ServerPath):
        return _file_data(value.path)
    return value


def raw_call(base_url: str, api_name: str, data: list, timeout: float = 180) -> tuple[str, Any]:
    """POST /gradio_api/call/<api>, then read the event stream; (last event, its parsed data)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    body = json.dumps({"data": data}, allow_nan=True)  # NaN / Infinity / -Infinity literals
    request = urllib.request.Request(f"{base_url}gradio_api/call/{api_name.strip('/')}", data=body.encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with opener.open(request, timeout=60) as response:
        event_id = json.load(response)["event_id"]
    with opener.open(f"{base_url}gradio_api/call/{api_name.strip('/')}/{event_id}", timeout=timeout) as response:
        stream = response.read().decode("utf-8")
    events = []
    for block in stream.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "event" in fields:
            events.append((fields["event"], fields.get("data", "")))
    assert events, f"no events in the stream: {stream!r}"
    event, payload = events[-1]
    try:
        return event, json.loads(payload)
    except ValueError:
        return event, payload


def call(app, api: dict, api_name: str, overrides: dict, uploads: dict) -> tuple[str, Any]:
    params = api[api_name]
    unknown = set(overrides) - {name for name, _ in params}
    assert not unknown, f"{api_name} has no parameters {unknown}; it has {[n for n, _ in params]}"
    data = [_value(overrides[name], uploads) if name in overrides else default for name, default in params]
    return raw_call(app.url, api_name, data)


def assert_still_serves(app, api) -> None:
    data = [("5" if name == "seeds" else default) for name, default in api["/generate"]]
    event, result = raw_call(app.url, "/generate", data)
    assert event == "complete", f"the app stopped serving: {event} {result}"
    assert result[0][0]["caption"] == "seed 5"


# -- tests -------------------------------------------------------------------------------------


def test_every_endpoint_has_rows(api):
    covered = {p.values[0].api for p in ROWS}
    missing = sorted(set(api) - covered)
    assert not missing, f"endpoints without bad-input rows (add rows, or a {NO_USER_INPUT!r} row): {missing}"
    stale = sorted(covered - set(api))
    assert not stale, f"rows for endpoints the app no longer has: {stale}"
    for p in ROWS:
        r = p.values[0]
        if r.overrides == NO_USER_INPUT:
            assert api[r.api] == [], f"{r.api} takes parameters, so it needs real bad-input rows"


def test_json_body_carries_nan_and_infinity():
    """Python's json (which Gradio's server uses to read the body) writes and reads these literals."""
    body = json.dumps({"data": [NAN, INF, -INF]})
    assert body == '{"data": [NaN, Infinity, -Infinity]}'
    values = json.loads(body)["data"]
    assert math.isnan(values[0]) and values[1] == INF and values[2] == -INF


@pytest.mark.parametrize("case", ROWS)
def test_bad_input_is_a_clear_error_and_the_app_keeps_serving(app, api, uploads, case: Row):
    if case.overrides == NO_USER_INPUT:
        event, result = raw_call(app.url, case.api, [])
        assert event == "complete", (event, result)
        assert_still_serves(app, api)
        return
    event, result = call(app, api, case.api, case.overrides, uploads)
    assert event == "error", f"{case.api} {case.overrides} did not fail: {event} {str(result)[:500]}"
    assert app.alive()
    assert_still_serves(app, api)
    message = result.get("error") if isinstance(result, dict) else result
    assert message, (f"{case.api} {case.overrides}: a bare error without a message (an unexpected exception, "
                     f"not a gr.Error); app log tail:\n{app.log()[-3000:]}")
    assert "Traceback" not in message
    for fragment in case.fragments:
        assert fragment.lower() in message.lower(), f"{fragment!r} not in the error message {message!r}"


def test_path_traversal_never_returns_the_file(app, api):
    """A FileData naming a server path outside Gradio's upload area is refused before any function
    runs, and the file route does not serve it either."""
    secret = Path(__file__).resolve().parent.parent / "app.py"
    marker = "SHARE_WARNING"
    assert marker in secret.read_text()
    for path in ("/etc/passwd", str(secret), "../../app.py", "../app.py"):
        event, result = raw_call(app.url, "/align", [api["/align"][0][1], _file_data(path), "crop", False])
        text = json.dumps(result)
        assert event == "error", (path, event, text[:300])
        assert "root:" not in text and marker not in text
    # Gradio refused them (InvalidPathError "... was not uploaded by a user") before align ran; the
    # message is Gradio's own (the app launches with show_error=True).
    assert "InvalidPathError" in app.log() and "not uploaded by a user" in app.log()
    import httpx

    with httpx.Client(trust_env=False, timeout=30) as http:
        for path in ("/etc/passwd", str(secret), "../../app.py"):
            for url in (f"{app.url}gradio_api/file={path}", f"{app.url}file={path}"):
                response = http.get(url)
                assert response.status_code in (403, 404, 400, 405), (url, response.status_code)
                assert "root:" not in response.text and marker not in response.text
    assert_still_serves(app, api)


def test_uploads_stay_in_the_temp_area(app, uploads):
    """Uploaded files land under GRADIO_TEMP_DIR (the app's workdir here), nowhere else."""
    temp = (app.workdir / "gradio").resolve()
    for name, path in uploads.items():
        assert Path(path).resolve().is_relative_to(temp), f"{name} was stored at {path}, outside {temp}"
    repo = Path(__file__).resolve().parent.parent
    stray = [p for p in repo.rglob("*") if p.name in FILES and ".git" not in p.parts]
    assert not stray, f"uploaded files found in the repository: {stray}"
