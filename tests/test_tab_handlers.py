"""The Generate, Inversion, Video and StyleNeRF tabs' handlers, called directly (no gr.Blocks, no
server) on the built-in demo networks; the inversion method registry as the tab and the CLI read it;
encoders and LPIPS kept by the model manager under its memory budget."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

gr = pytest.importorskip("gradio")
pytest.importorskip("lpips")

from spaces.generate import GenerateTab  # noqa: E402
from spaces.inversion import InversionTab  # noqa: E402
from spaces.stylenerf import StyleNerfTab  # noqa: E402
from spaces.video import VideoTab  # noqa: E402
from stylecore.__main__ import build_parser  # noqa: E402
from stylecore.engine.manager import ModelManager, object_bytes  # noqa: E402
from stylecore.engine.zoo import Zoo  # noqa: E402
from stylecore.inversion.compare import load_encoder_model  # noqa: E402
from stylecore.inversion.methods import ITERATIONS, METHOD_KINDS, METHODS  # noqa: E402
from stylecore.perception.metrics import lpips_from_env  # noqa: E402

LPIPS_KEY = ("lpips", "vgg", "cpu")


@pytest.fixture(autouse=True)
def random_lpips(monkeypatch):
    """LPIPS on a random VGG16 backbone: no download."""
    monkeypatch.setenv("STYLECORE_LPIPS_BACKBONE", "random")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Many small ops: one thread is fastest and fair to the other jobs on the machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def manager() -> ModelManager:
    return ModelManager(Zoo(), device="cpu")


def tiny_encoders(manager: ModelManager, folder: Path, count: int) -> list[str]:
    """`count` small ReStyle-e4e checkpoints around the demo network, as local .pt paths."""
    writers = pytest.importorskip("writers.encoders")
    paths = []
    for i in range(count):
        path = folder / f"tiny_restyle_e4e_{i}.pt"
        writers.write_tiny_encoder_pt(path, "restyle_e4e", manager.get("demo").G)
        paths.append(str(path))
    return paths


def test_generate_returns_images_of_the_models_size(manager):
    tab = GenerateTab(manager)
    gallery, grid, status = tab.generate(model_id="demo", seeds="0-2")
    size = manager.get("demo").G.img_resolution
    assert [caption for _, caption in gallery] == ["seed 0", "seed 1", "seed 2"]
    assert all(image.shape == (size, size, 3) for image, _ in gallery)
    assert Path(grid).is_file() and "demo" in status.lower()
    matrix, path, _ = tab.mix(model_id="demo", row_seeds="1, 2", col_seeds="3", col_layers="0-3")
    assert matrix.shape == (3 * size, 2 * size, 3) and Path(path).is_file()
    # A page (an event with a target) sees the 64 px image enlarged 7 times with whole pixels; the API the real one.
    shown = tab.generate(model_id="demo", seeds="0-2", event=gr.EventData(object(), {}))[0]
    assert all(big.shape == (7 * size, 7 * size, 3) and (big[::7, ::7] == small).all()
               for (big, _), (small, _) in zip(shown, gallery))


def test_out_of_range_numbers_name_their_field(manager):
    """Numbers without a Gradio minimum/maximum are checked by the handler: the message names the field
    and its range; StyleNeRF takes the one seed range of every tab."""
    for cutoff in (-1, 11):
        with pytest.raises(ValueError, match=f"^truncation cutoff must be from 0 to 10, got {cutoff}$"):
            GenerateTab(manager).generate(model_id="demo", truncation_cutoff=cutoff)
    nerf = StyleNerfTab(manager)
    for kwargs, name in (({"seed": -1}, "Seed"),
                         ({"mix_seeds": True, "appearance_seed": 2 ** 32}, "Appearance seed")):
        with pytest.raises(ValueError, match=f"^{name} must be from 0 to 4294967295"):
            nerf.stylenerf(model_id="demo-nerf", steps=4, **kwargs)
    _, status = nerf.stylenerf(model_id="demo-nerf", seed=2 ** 32 - 1, steps=4, mix_seeds=True, appearance_seed=0)
    assert "geometry seed 4294967295, appearance seed 0" in status


def test_controls_shown_only_for_the_models_and_sources_that_use_them(manager):
    generate, video = GenerateTab(manager), VideoTab(manager)
    assert generate.model_kind("demo") == (False, False) and generate.model_kind("demo-sg3") == (True, False)
    assert generate.model_controls("demo")[1] == gr.update(value=0)  # hidden translate goes back to 0
    assert video.camera_control("demo", "circle") == gr.update(visible=False, value="none")
    assert video.camera_control("demo-sg3", "circle") == gr.update(visible=True, value="circle")
    assert video.source_controls("seeds")[1] == gr.update(visible=False, value=None)  # a stale upload is cleared


def test_invert_runs_every_registry_method(manager, tmp_path):
    (encoder,) = tiny_encoders(manager, tmp_path, 1)
    tab = InversionTab(manager)
    aligned, gallery, rows, _, strip, files, _, status = tab.invert(
        model_id="demo", source="seed", seed=3, methods=list(METHOD_KINDS), w_steps=2, wplus_steps=2,
        hybrid_steps=2, pti_steps=2, encoder=encoder, encoder_iterations=2)
    assert aligned.shape == (64, 64, 3)  # an API call: the real pixels (a page gets them enlarged)
    assert len(rows) == len(METHODS) and len(gallery) == len(METHODS) + 1
    assert list(rows["method"]) == [m.short for m in METHODS.values()]
    assert list(rows["space"]) == ["W", "W+", "W+", "W+", "W + tuned weights", "W + weight offsets"]
    assert [Path(f).name.split("-", 2)[-1] for f in files[-2:]] == ["PTI-tuned-weights.safetensors",
                                                                     "HyperStyle-tuned-weights.safetensors"]
    assert len(files) == len(METHODS) + 2
    assert rows["code error"].all()  # a seed's target: the error to its true code is known
    assert "LPIPS (random VGG16)" in rows.columns  # the table says its LPIPS is not the published one
    assert len(strip) == 2 + 2 and f"{len(METHODS)} of {len(METHODS)} methods ran" in status  # ReStyle, HyperStyle
    assert LPIPS_KEY in manager.resource_keys()  # the manager, not a module cache, keeps LPIPS
    assert ("w_stats", "demo", 10000) in manager.resource_keys()
    assert any(key[0] == "encoder" and key[1] == encoder for key in manager.resource_keys())


def test_method_labels_are_accepted_like_kinds(manager):
    rows = InversionTab(manager).invert(model_id="demo", source="seed", methods=[METHODS["wplus"].label],
                                        wplus_steps=1)[2]
    assert list(rows["space"]) == ["W+"]


@pytest.mark.parametrize("field, value", [("w_steps", 0), ("wplus_steps", 10001), ("hybrid_steps", 2.5),
                                          ("encoder_iterations", 0)])
def test_bad_budget_names_the_field(manager, field, value):
    name = {"w_steps": METHODS["w"].steps.name, "wplus_steps": METHODS["wplus"].steps.name,
            "hybrid_steps": METHODS["hybrid"].steps.name, "encoder_iterations": ITERATIONS.name}[field]
    with pytest.raises(ValueError, match=f"^{re.escape(name)} must be a whole number from"):
        InversionTab(manager).invert(model_id="demo", source="seed", methods=list(METHOD_KINDS),
                                     encoder="e4e-ffhq", **{field: value})


def test_seed_out_of_range_names_the_field(manager):
    with pytest.raises(ValueError, match="^Seed must be from 0 to 4294967295, got 4294967296$"):
        InversionTab(manager).invert(model_id="demo", source="seed", seed=2 ** 32, methods=["w"], w_steps=1)


def test_unknown_method_and_encoder_are_refused(manager):
    tab = InversionTab(manager)
    with pytest.raises(ValueError, match="unknown inversion method 'magic'"):
        tab.invert(model_id="demo", source="seed", methods=["magic"])
    with pytest.raises(ValueError, match="trained for a 1024x1024 generator"):
        tab.invert(model_id="demo", source="seed", methods=["encoder"], encoder="e4e-ffhq")


def test_the_registry_drives_the_tab_and_the_cli(capsys):
    with gr.Blocks() as demo:
        InversionTab(ModelManager(Zoo(), device="cpu")).layout()
    blocks = list(demo.blocks.values())
    checkboxes = next(b for b in blocks if isinstance(b, gr.CheckboxGroup) and b.label == "Methods")
    assert [kind for _, kind in checkboxes.choices] == list(METHOD_KINDS)
    numbers = {b.label: b for b in blocks if isinstance(b, gr.Number)}
    for m in METHODS.values():
        if m.steps is not None:  # the handler checks the range (a message naming the field); the info states it
            field = numbers[m.steps.name]
            assert (field.value, field.maximum) == (m.steps.default, None)
            assert field.info.startswith(f"{m.steps.low} to {m.steps.high}")

    parser = build_parser()
    args = parser.parse_args(["invert", "--outdir", "out", "--methods", ",".join(METHOD_KINDS)])
    assert args.methods == list(METHOD_KINDS) and args.iterations == ITERATIONS.full
    for m in METHODS.values():
        if m.steps is not None:
            assert getattr(args, f"{m.kind}_steps") == m.steps.full
    with pytest.raises(SystemExit):
        parser.parse_args(["invert", "--outdir", "out", "--methods", "w,magic"])
    assert f"methods are a comma list of {', '.join(METHOD_KINDS)}" in capsys.readouterr().err


def test_the_cli_inverts_with_the_registry(tmp_path):
    from stylecore.__main__ import main

    assert main(["invert", "--model", "demo", "--seed", "2", "--methods", "w,wplus", "--w-steps", "2",
                 "--wplus-steps", "2", "--device", "cpu", "--outdir", str(tmp_path)]) == 0
    assert {"w.npz", "wplus.npz", "metrics.json", "target.png"} <= {p.name for p in tmp_path.iterdir()}


def test_encoders_and_lpips_stay_within_the_memory_budget(tmp_path):
    """Through the tab's path (its pre-GPU loading), more encoders than fit: the least recently used go."""
    sizing = ModelManager(Zoo(), device="cpu")
    paths = tiny_encoders(sizing, tmp_path, 3)
    encoder_bytes = object_bytes(load_encoder_model(paths[0]))
    budget = sizing.get("demo").nbytes + object_bytes(lpips_from_env()) + int(1.5 * encoder_bytes)

    manager = ModelManager(Zoo(), device="cpu", memory_budget=budget)
    tab = InversionTab(manager)
    for path in paths:
        tab.prepare_invert({"model_id": "demo", "methods": ["encoder"], "encoder": path, "encoder_iterations": 1})
        assert manager.used_bytes() <= budget
    kept = manager.resource_keys()
    assert LPIPS_KEY in kept
    assert [key[1] for key in kept if key[0] == "encoder"] == [paths[-1]]
    assert all(manager.load_count[key] == 1 for key in kept)


def test_video_handler_renders_an_mp4(manager):
    """The tab's defaults side by side (the StyleGAN2 demo left) with a camera path: a video, not an error."""
    outputs = list(VideoTab(manager).video(model_id="demo-sg3", seeds="0-1", frames_per_transition=2, fps=10,
                                           loop=False, camera="circle", side_by_side=True))
    path, gif, status = outputs[-1]
    assert Path(path).suffix == ".mp4" and Path(path).stat().st_size > 0 and gif is None
    size = manager.get("demo-sg3").G.img_resolution
    assert re.match(rf"3 frames, \d+x{size} ", status)  # 2 keyframes 2 frames apart, both shown
    assert status.endswith("left: demo (StyleGAN2: no camera path), right: demo-sg3")


def test_stylenerf_handler_renders_a_view_of_the_models_size(manager):
    image, status = StyleNerfTab(manager).stylenerf(model_id="demo-nerf", steps=4)
    size = manager.get("demo-nerf").G.img_resolution
    assert image.shape == (size, size, 3) and "seed 1" in status
    with pytest.raises(ValueError, match="samples per ray"):
        StyleNerfTab(manager).stylenerf(model_id="demo-nerf", steps=1)
