"""The Editing and StyleCLIP tabs' handlers called directly (no gr.Blocks) on the built-in demo network:
edits change the image, strength 0 gives the same image and code back, the status says what was done,
the files offered for download hold the result, and every network and table the edits need lives in
the model manager, under its memory budget."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from stylecore.codes.latents import load_latents, seeds_to_ws
from stylecore.codes.stylespace import load_styles, style_layers
from stylecore.edit import resources
from stylecore.edit.edits import GANSpaceEdit, StyleSpaceEdit
from stylecore.engine.manager import ModelManager, object_bytes
from stylecore.engine.zoo import Zoo

gr = pytest.importorskip("gradio")

from spaces.editing import EditingTab  # noqa: E402
from spaces.styleclip import StyleClipTab  # noqa: E402

CLIP_REPOS = ("someone/tiny-clip-a", "someone/tiny-clip-b")
PCA = dict(pca_samples=200, pca_components=8, pca_seed=0)


@pytest.fixture
def manager():
    return ModelManager(Zoo(), device="cpu")


@pytest.fixture
def editing(manager):
    return EditingTab(manager)


# --- Editing -----------------------------------------------------------------------------------------------


def test_ganspace_edit_changes_the_image_and_strength_zero_is_the_identity(editing, manager):
    before, after, png, code, status = editing.apply_edit("demo", seed=3, method="GANSpace", component=0,
                                                          pca_strength=3.0, **PCA)
    assert before.shape == after.shape == (64, 64, 3) and before.dtype == np.uint8
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 0.5
    assert status.startswith("**GANSpace direction 0 (") and "Mean pixel change" in status and "untrained" in status
    np.testing.assert_array_equal(np.asarray(Image.open(png)), after)  # the PNG offered is the image shown

    same = editing.apply_edit("demo", seed=3, method="GANSpace", component=0, pca_strength=0.0, **PCA)
    np.testing.assert_array_equal(same[1], same[0])
    seed_code = seeds_to_ws(manager.get("demo").G, [3], truncation_psi=0.7)
    assert torch.allclose(load_latents(same[3], 10, 64), seed_code, atol=1e-5)
    # the PCA was computed once, and is kept by the manager
    assert ("pca", "builtin-demo", 200, 8, 0) in manager.resource_keys()
    assert manager.load_count[("pca", "builtin-demo", 200, 8, 0)] == 1


def test_stylespace_edit_saves_the_s_code(editing, manager):
    before, after, png, code, status = editing.apply_edit("demo", method="StyleSpace", s_layer=6, s_channel=5,
                                                          s_strength=10.0)
    assert "StyleSpace channel 6_5" in status and "edited style code" in status
    assert (after != before).any()
    styles = load_styles(code)
    assert styles is not None and len(styles) == len(style_layers(manager.get("demo").G))
    assert ("style_std", "builtin-demo") in manager.resource_keys()
    zero = editing.apply_edit("demo", method="StyleSpace", s_layer=6, s_channel=5, s_strength=0.0)
    np.testing.assert_array_equal(zero[1], zero[0])


def test_interfacegan_edit_from_an_uploaded_direction(editing, tmp_path):
    rng = np.random.RandomState(0)
    direction, keep = tmp_path / "boundary_x.npy", tmp_path / "boundary_keep.npy"
    np.save(direction, rng.randn(1, 64))
    np.save(keep, rng.randn(1, 64))
    before, after, _, code, status = editing.apply_edit("demo", method="InterFaceGAN", boundary="upload",
                                                        boundary_file=str(direction), ifg_strength=2.0,
                                                        ifg_layers="0-3", condition_files=[str(keep)])
    assert status.startswith("**InterFaceGAN boundary_x.npy, amount 2, on layers 0-3, keeping 1 other attribute(s) "
                             "unchanged.")
    assert (after != before).any()
    with pytest.raises(ValueError, match="upload a direction file"):
        editing.apply_edit("demo", method="InterFaceGAN", boundary="upload")


def test_part_map_and_a_confined_part_edit_with_the_default_selectivity(editing):
    overlay, legend, part, status = editing.show_parts("demo", part_k=4, part_samples=4, part=3)
    assert overlay.shape == (64, 64, 3) and len(legend) == 4  # the real size for a direct (API) call
    assert sum(row[2] for row in legend) == pytest.approx(100, abs=0.5)
    assert [row[1].endswith(name) for row, name in zip(legend, ("red", "green", "yellow", "blue"))] == [True] * 4
    assert 'class="part-swatch" style="background:#e6194b"' in legend[0][1]  # a swatch of the colour
    shown = [row[0] for row in legend if row[2] > 0]
    # the part asked for is kept when the image shows it, else the largest part is chosen
    assert part["value"] == (3 if 3 in shown else max(legend, key=lambda row: row[2])[0])
    assert f"Part {part['value']} (" in status
    # the defaults (selectivity 0.5 of the part's most concentrated channel) move channels and the image
    before, after, _, code, status = editing.apply_edit("demo", method="Local (parts)", part_k=4, part_samples=4,
                                                        part=part["value"], reference_seed=7)
    assert f"part {part['value']} from the reference" in status and "confined to the part" in status
    assert " 0 style channels" not in status and np.abs(after.astype(int) - before.astype(int)).mean() > 0
    assert load_styles(code) is not None


def test_channels_for_a_region_and_the_pca_table(editing):
    rows, layer, channel, status = editing.find_channels("demo", top=3, search_layers="9")
    assert len(rows) == 3 and {r[0] for r in rows} == {9}
    assert layer["value"] == rows[0][0] and channel["value"] == rows[0][1]
    assert f"The best channel, {rows[0][0]}_{rows[0][1]}, is now the Style layer and Channel" in status
    table, status = editing.pca_table("demo", **PCA)
    assert len(table) == 8 and "These 8 directions (from 200 sampled codes) explain" in status


def test_bad_input_is_a_value_error(editing):
    with pytest.raises(ValueError, match="Direction must be from 0 to 7, got 8"):
        editing.apply_edit("demo", method="GANSpace", component=8, **PCA)
    with pytest.raises(ValueError, match="method must be one of"):
        editing.apply_edit("demo", method="Sorcery")


RANGE_ERRORS = (
    ("pca_table", dict(pca_samples=99), "Images sampled must be from 100 to 1000000, got 99"),
    ("pca_table", dict(pca_components=65), "Directions to compute must be from 1 to 64, got 65"),
    ("pca_table", dict(pca_seed=2 ** 32), "Sampling seed must be from 0 to 4294967295"),
    ("find_channels", dict(top=0), "Channels to list must be from 1 to 200, got 0"),
    ("show_parts", dict(part_k=21), "Number of parts must be from 2 to 20, got 21"),
    ("show_parts", dict(part_samples=2001), "Images to learn parts from must be from 1 to 2000"),
    ("apply_edit", dict(method="StyleSpace", s_layer=99), "Style layer must be from 0 to"),
    ("apply_edit", dict(method="Local (parts)", reference_seed=-1), "Take the part from seed must be from 0 to"),
)


def test_range_errors_name_the_field_by_its_label(editing):
    """The number fields have no Gradio minimum/maximum (whose message names no field): the handlers
    check them under the field's label."""
    for handler, arguments, message in RANGE_ERRORS:
        with pytest.raises(ValueError, match=message):
            getattr(editing, handler)("demo", **arguments)


def test_listed_attributes_are_offered_and_fetched_only_for_the_model_they_fit(editing, monkeypatch):
    class_idx, boundary, keep, known = editing.model_controls("demo")
    assert [value for _, value in boundary["choices"]] == ["upload"] and boundary["value"] == "upload"
    assert "do not fit this model" in boundary["info"]
    assert keep["choices"] == [] and not keep["visible"] and not known["visible"] and not class_idx["visible"]
    _, boundary, keep, known = editing.model_controls("sg2-ffhq-1024-rosinality")
    assert "interfacegan-smiling" in [value for _, value in boundary["choices"]] and keep["visible"]
    assert boundary["value"] == "interfacegan-smiling" and known["visible"]

    from stylecore.engine import hub

    monkeypatch.setattr(hub, "fetch", lambda *a, **k: pytest.fail("a boundary for another model was fetched"))
    with pytest.raises(ValueError, match="learned for StyleGAN2 FFHQ 1024 and do not fit"):
        editing.apply_edit("demo", method="InterFaceGAN", boundary="interfacegan-smiling")
    with pytest.raises(ValueError, match="learned for StyleGAN2 FFHQ 1024 and do not fit"):
        editing.apply_edit("demo", method="InterFaceGAN", boundary_file="x.npy", conditions=["interfacegan-young"])


def test_edit_result_save_writes_the_image_and_the_code(manager, tmp_path):
    model = manager.get("demo")
    ws = model.G.mapping(torch.randn(1, 64), None)
    w_edit = resources.edit(manager, model, ws, GANSpaceEdit(component=1, strength=2.0, samples=200, components=8))
    png, code = w_edit.save(tmp_path / "w", "demo-edited")
    assert (png.name, code.name) == ("demo-edited.png", "demo-edited.npz")
    np.testing.assert_array_equal(np.asarray(Image.open(png)), w_edit.after)
    assert torch.equal(load_latents(code, 10, 64), w_edit.ws)
    with np.load(code) as data:
        assert str(data["method"]) == "GANSpace"

    s_edit = resources.edit(manager, model, ws, StyleSpaceEdit(layer=6, channel=2, strength=5.0))
    _, code = s_edit.save(tmp_path / "s")
    assert all(torch.equal(a, b) for a, b in zip(load_styles(code), s_edit.styles))
    assert torch.equal(load_latents(code, 10, 64), ws)  # the unedited W+ code beside the S code


# --- StyleCLIP ------------------------------------------------------------------------------------------------


def _tiny_clip():
    pytest.importorskip("open_clip")
    from stylecore.perception.clip import build_clip
    from test_styleclip import TINY

    return build_clip("ViT-B-32-quickgelu", seed=0, **TINY), TINY


def _serve_clips(fake_hub) -> None:
    """The tiny random CLIP under each of CLIP_REPOS, in open_clip's hf-hub layout."""
    from safetensors.torch import save

    clip, config = _tiny_clip()
    weights = save({k: v.contiguous() for k, v in clip.model.state_dict().items()})
    for repo in CLIP_REPOS:
        fake_hub.add_file(repo, "open_clip_config.json", json.dumps({"model_cfg": config}).encode(), lfs=False)
        fake_hub.add_file(repo, "open_clip_model.safetensors", weights)


def _identity_weights(tmp_path):
    from test_identity import _random_net

    path = tmp_path / "model_ir_se50.pth"
    torch.save(_random_net().state_dict(), path)
    return path


def _seed_relevance_table(manager: ModelManager, clip_name: str, images: int) -> None:
    """A random relevance table where the tab will look for it, so no test computes one."""
    from stylecore.edit import styleclip as sc

    G = manager.get("demo").G
    layers = tuple(l.index for l in sc.relevant_layers(G))
    channels = sum(style_layers(G)[i].channels for i in layers)
    fs = np.random.default_rng(0).standard_normal((channels, 32)).astype(np.float32)
    fs /= np.linalg.norm(fs, axis=1, keepdims=True)
    table = sc.ChannelRelevance(fs, layers, sc.style_stats(G, n_samples=50), "test table")
    manager.resource(("relevance", "builtin-demo", clip_name, images), lambda: table)


def test_styleclip_global_direction(manager, fake_hub):
    _serve_clips(fake_hub)
    clip_name = f"hf-hub:{CLIP_REPOS[0]}"
    _seed_relevance_table(manager, clip_name, 1)
    tab = StyleClipTab(manager)
    args = dict(model_id="demo", seed=2, target="a face with curly hair", beta=0.0, relevance_images=1,
                clip_model=clip_name)
    before, after, strip, png, code, status = tab.run(alpha=5.0, strip="-5, 0, 5", **args)
    assert "channels moved** (test table)" in status and "Edit took" in status and "style code" in status
    assert (after != before).any() and [label for _, label in strip] == ["-5", "0", "5"]
    np.testing.assert_array_equal(strip[1][0], before)
    np.testing.assert_array_equal(strip[2][0], after)
    assert load_styles(code) is not None and np.asarray(Image.open(png)).shape == (64, 64, 3)
    same = tab.run(alpha=0.0, strip="", **args)
    np.testing.assert_array_equal(same[1], same[0])
    assert "α 0" in same[-1] and same[2] == []
    assert ("clip", clip_name, "cpu") in manager.resource_keys()


def test_styleclip_optimization_and_input_checks(manager, fake_hub):
    _serve_clips(fake_hub)
    tab = StyleClipTab(manager)
    before, after, strip, _, code, status = tab.run("demo", method="Latent optimization", steps=2, strip="1, 2",
                                                    clip_model=f"hf-hub:{CLIP_REPOS[1]}")
    assert "Latent optimization towards 'a smiling face with curly hair': 2 steps, CLIP loss" in status
    assert "identity loss off" in status and strip == []
    assert load_latents(code, 10, 64).shape == (1, 10, 64)
    with pytest.raises(ValueError, match="empty"):
        tab.run("demo", target="  ")
    with pytest.raises(ValueError, match="no inversion result yet"):
        tab.run("demo", source="inversion", method="Latent optimization", steps=1,
                clip_model=f"hf-hub:{CLIP_REPOS[1]}")
    assert tab.stop_run(None).startswith("Stopping") and tab.stops.get(None).is_set()


def test_memory_budget_keeps_only_what_fits(fake_hub, tmp_path):
    """CLIP models, the identity network and tables share the generators' budget: loading more than
    fits through the tabs evicts the least recently used, and what is kept never exceeds it."""
    from stylecore.perception.identity import load_identity

    _serve_clips(fake_hub)
    weights = _identity_weights(tmp_path)
    clip, _ = _tiny_clip()
    G = ModelManager(Zoo(), device="cpu").get("demo")
    budget = G.nbytes + object_bytes(clip) * 3 // 2 + object_bytes(load_identity(weights))
    manager = ModelManager(Zoo(), device="cpu", memory_budget=budget)  # the generator, 1.5 CLIPs, the identity net
    editing, styleclip = EditingTab(manager), StyleClipTab(manager)
    clip_a, clip_b = (f"hf-hub:{repo}" for repo in CLIP_REPOS)

    editing.pca_table("demo", **PCA)
    editing.apply_edit("demo", method="StyleSpace", s_channel=1)
    styleclip.load_clip_first({"method": "Global direction", "clip_model": clip_a})
    assert [k[0] for k in manager.resource_keys()] == ["pca", "style_std", "clip"]
    styleclip.run("demo", method="Latent optimization", steps=1, strip="", clip_model=clip_b, id_lambda=0.5,
                  id_weights=str(weights))

    assert manager.used_bytes() <= budget
    kept = manager.resource_keys()
    assert [k[0] for k in kept] == ["identity", "clip"] and kept[1] == ("clip", clip_b, "cpu")
    assert manager.loaded_ids() == ["demo"]


# --- PTI and HyperStyle codes handed on -----------------------------------------------------------------------


class _Session:
    """What a handler reads of a gr.Request: its browser session."""

    def __init__(self, session_hash: str):
        self.session_hash = session_hash


def test_tuned_codes_are_edited_with_their_sessions_weights(editing, manager, fake_hub, monkeypatch):
    """A PTI / HyperStyle code is drawn with its tuned weights in the session that made it (Editing and
    StyleCLIP), strength 0 is still the identity, another session or an ended one gets the shared
    generator with a note, and the shared generator never changes."""
    from spaces.inversion import InversionTab
    from stylecore.engine.tuned import KIND, weights_digest

    monkeypatch.setenv("STYLECORE_LPIPS_BACKBONE", "random")
    inversion, mine, other = InversionTab(manager), _Session("mine"), _Session("other")
    shared = weights_digest(manager.get("demo").G.state_dict())  # hashed afresh each time (no cache)
    _, gallery, _, _, _, files, _, status = inversion.invert(
        model_id="demo", source="seed", seed=3, methods=["pti", "hyperstyle"], pti_steps=3, encoder_iterations=2,
        schedule="full", request=mine)
    pti_code, hyper_code = files[:2]
    assert "tuned weights during this session" in status
    assert sum(key[0] == KIND and key[1] == "mine" for key in manager.resource_keys()) == 2

    for code, (reconstruction, _) in ((pti_code, gallery[1]), (hyper_code, gallery[2])):
        before, after, _, _, status = editing.apply_edit("demo", source="file", code_file=code, method="GANSpace",
                                                         component=0, pca_strength=3.0, request=mine, **PCA)
        assert "drawn with the generator weights PTI or HyperStyle tuned" in status
        assert np.abs(before.astype(int) - reconstruction.astype(int)).max() <= 1  # the inversion's own image
        assert np.abs(after.astype(int) - before.astype(int)).mean() > 0.5
        same = editing.apply_edit("demo", source="file", code_file=code, method="GANSpace", component=0,
                                  pca_strength=0.0, request=mine, **PCA)
        np.testing.assert_array_equal(same[1], same[0])
        np.testing.assert_array_equal(same[0], before)

    elsewhere = editing.apply_edit("demo", source="file", code_file=pti_code, method="GANSpace", component=0,
                                   pca_strength=0.0, request=other, **PCA)
    assert "Note: this code was made by PTI or HyperStyle" in elsewhere[-1]
    assert np.abs(elsewhere[0].astype(int) - gallery[1][0].astype(int)).mean() > 0.5  # the shared generator

    _serve_clips(fake_hub)
    clip_name = f"hf-hub:{CLIP_REPOS[0]}"
    _seed_relevance_table(manager, clip_name, 1)
    text = StyleClipTab(manager).run("demo", source="inversion", inversion_codes=files, target="curly hair",
                                     beta=0.0, relevance_images=1, clip_model=clip_name, alpha=0.0, strip="",
                                     request=mine)
    assert np.abs(text[0].astype(int) - gallery[1][0].astype(int)).max() <= 1 and "tuned" in text[-1]

    inversion.forget(mine)  # the session ended
    assert not any(key[0] == KIND for key in manager.resource_keys())
    ended = editing.apply_edit("demo", source="file", code_file=pti_code, method="GANSpace", component=0,
                               pca_strength=0.0, request=mine, **PCA)
    assert "Note: this code was made by PTI or HyperStyle" in ended[-1]
    assert weights_digest(manager.get("demo").G.state_dict()) == shared
