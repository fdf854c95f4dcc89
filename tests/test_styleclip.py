"""StyleCLIP: CLIP loading and preprocessing, global directions (templates, β, Δs, precompute that
resumes), latent optimisation, released mapper checkpoints, and prompt handling. Everything runs
offline on the demo generator and a tiny random-weight CLIP built with open_clip."""
from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch

open_clip = pytest.importorskip("open_clip")

from stylecore.perception.clip import MAX_PROMPT_CHARS, build_clip, clean_prompt, load_clip, resolve_clip  # noqa: E402
from stylecore.engine.demo import build_demo_generator  # noqa: E402
from stylecore.edit import styleclip as sc  # noqa: E402
from stylecore.codes.generate import GenerationSettings, settings_ws  # noqa: E402
from stylecore.codes.stylespace import style_layers, synthesize_from_styles, ws_to_styles  # noqa: E402
from stylecore.progress import Cancelled  # noqa: E402

TINY = dict(embed_dim=32, quick_gelu=True,
            vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=16, head_width=16),
            text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=1))


@pytest.fixture(scope="module")
def clip():
    return build_clip("ViT-B-32-quickgelu", seed=0, **TINY)


@pytest.fixture(scope="module")
def G():
    return build_demo_generator("stylegan2").eval().requires_grad_(False)


@pytest.fixture(scope="module")
def ws(G):
    return settings_ws(G, [3], GenerationSettings(truncation_psi=0.7), torch.device("cpu"))


def test_s_from_w_plus_renders_the_same_image(G, ws):
    """S lives in stylecore.codes.stylespace (reused here): rendering the extracted S is the W+ image, exactly."""
    with torch.no_grad():
        a = G.synthesis(ws, noise_mode="const")
        b = synthesize_from_styles(G, ws_to_styles(G, ws), ws, noise_mode="const")
    assert torch.equal(a, b)


def test_preprocessing_is_clips_and_differentiable(clip):
    x = torch.zeros(1, 3, 64, 48, requires_grad=True)  # grey, not square
    out = clip.preprocess(x)
    assert out.shape == (1, 3, 32, 32)
    expected = (0.5 - torch.tensor(sc_mean())) / torch.tensor(sc_std())
    assert torch.allclose(out[0, :, 16, 16], expected, atol=1e-5)
    clip.encode_images(x * 2 - 1).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def sc_mean():
    return (0.48145466, 0.4578275, 0.40821073)


def sc_std():
    return (0.26862954, 0.26130258, 0.27577711)


def test_templates_and_their_ensemble(clip):
    templates = sc.prompt_templates()
    assert len(templates) == 79 and "a photo of many {}." not in templates
    assert all(t.count("{}") == 1 for t in templates) and "a bad photo of a {}." in templates
    d = sc.text_direction(clip, "a smiling face", "a face")
    assert math.isclose(float(d.norm()), 1.0, rel_tol=1e-5)

    def ensemble(prompt):  # by hand: unit embeddings of every template, mean, unit length
        f = torch.nn.functional.normalize(clip.encode_text([t.format(prompt) for t in templates]), dim=-1)
        return torch.nn.functional.normalize(f.mean(0), dim=0)

    manual = ensemble("a smiling face") - ensemble("a face")
    assert torch.allclose(d, manual / manual.norm(), atol=1e-5)
    single = sc.text_direction(clip, "a smiling face", "a face", templates=["{}"])
    assert not torch.allclose(d, single, atol=1e-3)
    with pytest.raises(ValueError, match="mean the same"):
        sc.text_direction(clip, "a face", "a face")


def test_beta_threshold_and_direction_from_a_known_relevance_matrix(G):
    layers = style_layers(G)
    chosen = (0, 2)  # b4.conv1 and b8.conv0
    n = layers[0].channels + layers[2].channels
    fs = np.zeros((n, 4), dtype=np.float32)
    fs[3] = [1, 0, 0, 0]  # relevance 0.9 with Δt below
    fs[5] = [0, 1, 0, 0]  # -0.3
    fs[n - 1] = [0, 0, 1, 0]  # 0.05: below β
    std = [torch.full((l.channels,), float(l.index + 1)) for l in layers]
    table = sc.ChannelRelevance(fs, chosen, sc.StyleStats([torch.zeros_like(s) for s in std], std), "test")
    dt = torch.tensor([0.9, -0.3, 0.05, 0.0])
    r = table.relevance(dt)
    weights, count = sc.select_channels(r, beta=0.1)
    assert count == 2
    assert np.allclose(weights[[3, 5]], [1.0, -1 / 3]) and np.count_nonzero(weights) == 2
    assert sc.select_channels(r, beta=0.01)[1] == 3 and sc.select_channels(r, beta=0.95)[1] == 0
    delta = sc.style_direction(table, weights, G)
    assert torch.isclose(delta[0][3], torch.tensor(1.0 * 1))  # weight × σ of layer 0
    assert torch.isclose(delta[0][5], torch.tensor(-1 / 3))
    assert all(float(d.abs().sum()) == 0 for i, d in enumerate(delta) if i != 0)  # layer 2 got zero weights
    assert sc.auto_beta(r, min_channels=1) == 0.29 and sc.auto_beta(r, min_channels=5) == 0.10


def _table_for(G, clip):
    stats = sc.style_stats(G, n_samples=200)
    return sc.compute_relevance(G, clip, stats, n_images=2, layers=[0], batch_size=64)


def test_alpha_zero_is_the_identity_and_alpha_edits(G, clip, ws):
    table = _table_for(G, clip)
    edit = sc.global_direction(G, clip, table, "a face with curly hair", "a face", beta=0.0)
    assert edit.channels == table.fs.shape[0]
    with torch.no_grad():
        original = G.synthesis(ws, noise_mode="const")
    styles, image = sc.global_edit(G, ws, edit, alpha=0.0)
    assert torch.equal(image, original)
    _, edited = sc.global_edit(G, ws, edit, alpha=5.0)
    assert (edited - original).abs().mean() > 1e-3
    strip = sc.alpha_strip(G, ws, edit, [-5, 0, 5])
    assert strip.shape[0] == 3 and torch.allclose(strip[1], original[0], atol=1e-5)
    assert torch.allclose(strip[2], edited[0], atol=1e-4)
    with pytest.raises(ValueError, match="lower β"):
        sc.global_direction(G, clip, table, "a face with curly hair", "a face", beta=2.0)


def test_precompute_resumes_after_interruption_and_is_cached(G, clip, tmp_path):
    stats = sc.style_stats(G, n_samples=100)
    kwargs = dict(n_images=2, layers=[0, 2], batch_size=16)  # 4 channels per render batch
    full = sc.compute_relevance(G, clip, stats, **kwargs)
    assert full.fs.shape == (128, clip.embed_dim) and full.layers == (0, 2)
    assert np.allclose(np.linalg.norm(full.fs, axis=1), 1, atol=1e-4)

    checkpoint = tmp_path / "partial.npz"
    calls = []
    with pytest.raises(Cancelled, match="resume"):
        sc.compute_relevance(G, clip, stats, checkpoint=checkpoint, should_stop=lambda: len(calls) >= 3,
                             progress=lambda f, m: calls.append(f), **kwargs)
    with np.load(checkpoint) as saved:
        assert int(saved["done"]) == 12
    reports = []
    resumed = sc.compute_relevance(G, clip, stats, checkpoint=checkpoint, progress=lambda f, m: reports.append(m),
                                   **kwargs)
    assert reports[0].startswith("channel relevance: 16 of 128")  # started after the 12 saved channels
    assert np.allclose(resumed.fs, full.fs, atol=1e-5)

    first = sc.cached_relevance(G, "test-styleclip-model", clip, n_images=1, stat_samples=50, batch_size=64, layers=[0])
    again = sc.cached_relevance(G, "test-styleclip-model", clip, n_images=1, stat_samples=50, batch_size=64, layers=[0])
    assert again.source.endswith("(cached)") and np.array_equal(first.fs, again.fs)
    assert all(torch.equal(a, b) for a, b in zip(first.stats.std, again.stats.std))


def test_optimization_lowers_the_clip_loss_and_can_be_cancelled(G, clip, ws):
    prompt = "a smiling face with curly hair"
    text = clip.encode_text([prompt])
    config = sc.OptimizeConfig(steps=12, lr=0.1, l2_lambda=0.0)
    result = sc.optimize_latent(G, clip, ws, prompt, config)
    with torch.no_grad():
        before = float(sc.clip_loss(clip, G.synthesis(ws, noise_mode="const"), text))
        after = float(sc.clip_loss(clip, G.synthesis(result.ws, noise_mode="const"), text))
    assert after < before - 1e-4
    assert len(result.clip_losses) == 12 and not torch.equal(result.ws, ws)
    with pytest.raises(Cancelled):
        sc.optimize_latent(G, clip, ws, prompt, config, should_stop=lambda: True)
    with pytest.raises(ValueError, match="steps"):
        sc.optimize_latent(G, clip, ws, prompt, sc.OptimizeConfig(steps=0))
    assert sc.learning_rate(0.0, 0.1) == 0.0 and math.isclose(sc.learning_rate(0.5, 0.1), 0.1)


def _mapper_checkpoint(levels=("course_mapping", "medium_mapping"), seed=0) -> bytes:
    """A mapper .pt in the released layout: mapper.* and decoder.* weights, opts a plain dict."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for level in levels:
        for i in range(1, 5):
            state[f"mapper.{level}.mapping.{i}.weight"] = torch.randn(512, 512, generator=gen) * 100
            state[f"mapper.{level}.mapping.{i}.bias"] = torch.randn(512, generator=gen)
    state["decoder.style.1.weight"] = torch.randn(512, 512, generator=gen)  # (the full decoder, abbreviated)
    state["decoder.input.input"] = torch.randn(1, 512, 4, 4, generator=gen)
    opts = {"mapper_type": "LevelsMapper", "no_coarse_mapper": "course_mapping" not in levels,
            "no_medium_mapper": "medium_mapping" not in levels, "no_fine_mapper": "fine_mapping" not in levels,
            "work_in_stylespace": False, "stylegan_size": 1024, "description": "curly hair", "lambda_clip": 1.0}
    buf = io.BytesIO()
    torch.save({"state_dict": state, "opts": opts}, buf)
    return buf.getvalue()


def test_mapper_checkpoint_in_its_real_layout_loads_and_runs(tmp_path, fake_hub):
    path = tmp_path / "curly_hair.pt"
    path.write_bytes(_mapper_checkpoint())
    mapper = sc.load_mapper(path)
    assert mapper.levels == ("course_mapping", "medium_mapping") and mapper.description == "curly hair"
    w = torch.randn(2, 18, 512)
    out = sc.apply_mapper(mapper, w, strength=1.0)
    assert torch.equal(out[:, 8:], w[:, 8:])  # fine level absent: rows 8-17 unchanged
    assert (out[:, :8] - w[:, :8]).abs().mean() > 1e-3
    assert torch.equal(sc.apply_mapper(mapper, w, strength=0.0), w)

    # By hand for the coarse rows: pixel norm over the 4 rows, then 4 equalised-lr layers.
    state = torch.load(path, weights_only=True)["state_dict"]
    x = w[:, :4]
    x = x / torch.sqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)
    for i in range(1, 5):
        wt, b = state[f"mapper.course_mapping.mapping.{i}.weight"], state[f"mapper.course_mapping.mapping.{i}.bias"]
        x = torch.nn.functional.leaky_relu(x @ (wt * 0.01 / math.sqrt(512)).T + b * 0.01, 0.2) * math.sqrt(2)
    assert torch.allclose(out[:, :4], w[:, :4] + 0.1 * x, atol=1e-4)

    with pytest.raises(ValueError, match="18, 512"):
        sc.apply_mapper(mapper, torch.randn(1, 10, 64))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        sc.load_mapper(bad)

    fake_hub.add_file("someone/styleclip-mappers", "mappers/afro.pt", _mapper_checkpoint(("course_mapping",), 1))
    hub_path = sc.mapper_source("hf://someone/styleclip-mappers/mappers/afro.pt")
    assert sc.load_mapper(hub_path).levels == ("course_mapping",)


def test_clip_weights_load_through_the_hub(fake_hub, tmp_path, clip):
    from safetensors.torch import save as save_bytes

    config = tmp_path / "Tiny-CLIP-test.json"
    cfg = {k: v for k, v in TINY.items()}
    config.write_text(json.dumps(cfg))
    open_clip.add_model_config(config)
    state = {k: v.contiguous() for k, v in clip.model.state_dict().items()}
    fake_hub.add_file("someone/tiny-clip", "open_clip_model.safetensors", save_bytes(state))
    spec = resolve_clip("Tiny-CLIP-test@hf://someone/tiny-clip/open_clip_model.safetensors")
    assert (spec.arch, spec.repo_id, spec.filename) == ("Tiny-CLIP-test", "someone/tiny-clip",
                                                         "open_clip_model.safetensors")
    loaded = load_clip(spec.id)
    assert torch.allclose(loaded.encode_text(["a face"]), clip.encode_text(["a face"]), atol=1e-6)
    assert resolve_clip(None).repo_id == "timm/vit_base_patch32_clip_224.openai"
    with pytest.raises(ValueError, match="unknown CLIP"):
        resolve_clip("nonsense")


@pytest.mark.parametrize("prompt, ok", [("", False), ("   \n ", False), ("x" * 5000, False), (None, False),
                                        ("😀 a smiling face 🎉", True), ("a face\x00with\x07 control", True),
                                        ("word " * 150, True)])
def test_bad_prompts_are_handled(clip, prompt, ok):
    if not ok:
        with pytest.raises(ValueError):
            clean_prompt(prompt)
        with pytest.raises(ValueError):
            sc.text_direction(clip, prompt, "a face")
        return
    assert len(clean_prompt(prompt)) <= MAX_PROMPT_CHARS and "\x00" not in clean_prompt(prompt)
    d = sc.text_direction(clip, prompt, "a face")
    assert torch.isfinite(d).all()


def test_hf_hub_clip_reads_the_repo_config(fake_hub, clip):
    """'hf-hub:owner/repo' (open_clip's Hub layout) through our hub module: config and weights."""
    from safetensors.torch import save as save_bytes

    fake_hub.add_file("someone/tiny-clip-hub", "open_clip_config.json",
                      json.dumps({"model_cfg": TINY, "preprocess_cfg": {}}).encode(), lfs=False)
    state = {k: v.contiguous() for k, v in clip.model.state_dict().items()}
    fake_hub.add_file("someone/tiny-clip-hub", "open_clip_model.safetensors", save_bytes(state))
    loaded = load_clip("hf-hub:someone/tiny-clip-hub")
    assert torch.allclose(loaded.encode_text(["a face 😀"]), clip.encode_text(["a face 😀"]), atol=1e-6)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    assert torch.allclose(loaded.encode_images(x), clip.encode_images(x), atol=1e-5)


def test_released_table_only_for_the_network_and_clip_it_was_made_with(G):
    """fs3.npy is used for the official FFHQ-1024 config-f network with OpenAI ViT-B/32 only."""
    assert sc.released_relevance(G, "demo", "test-key", "openai-vit-b-32") is None
    assert sc.released_relevance(G, "sg2-ffhq-1024-tf", "test-key", "openai-vit-b-32") is None  # wrong layout
    assert "sg2-ffhq-1024-rosinality" in sc.RELEASED_FOR and "openai-vit-b-32" in sc.RELEASED_CLIP


def test_released_fs3_is_fetched_through_the_hub_and_used(G, clip, fake_hub, monkeypatch):
    """The released path, on the demo network standing in for FFHQ-1024 (layout check patched)."""
    import stylecore.edit.styleclip_global as scg

    monkeypatch.setattr(scg, "RELEASED_LAYOUT", tuple(l.channels for l in style_layers(G)))
    rows = sum(l.channels for l in sc.relevant_layers(G))
    fs3 = np.random.default_rng(0).standard_normal((rows, clip.embed_dim)).astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, fs3)
    fake_hub.add_file(sc.FS3_NPY.repo_id, sc.FS3_NPY.filename, buf.getvalue(), revision=sc.FS3_NPY.revision)
    table = sc.released_relevance(G, "sg2-ffhq-1024-tf", "test-released", "openai-vit-b-32", stat_samples=2000)
    assert table is not None and table.source.startswith("released") and np.array_equal(table.fs, fs3)
    assert table.layers == tuple(l.index for l in sc.relevant_layers(G))
    assert all(float(s.min()) >= 0 for s in table.stats.std)
    edit = sc.global_direction(G, clip, table, "curly hair", "hair", beta=0.0)
    assert edit.channels == rows


def test_mappers_are_listed_from_their_folder_for_18_row_codes(tmp_path, monkeypatch):
    from stylecore.edit.styleclip_mapper import ENV_MAPPERS, MAPPER_ROWS, local_mappers

    monkeypatch.setenv(ENV_MAPPERS, str(tmp_path))
    assert local_mappers(MAPPER_ROWS) == []
    (tmp_path / "curly_hair.pt").write_bytes(_mapper_checkpoint())
    (tmp_path / "notes.txt").write_text("not a mapper")
    assert local_mappers(MAPPER_ROWS) == [tmp_path / "curly_hair.pt"]
    assert local_mappers(10) == []  # the demo network's codes: no mapper reads them


def test_the_tab_names_fields_offers_mappers_and_shows_each_methods_controls(tmp_path, monkeypatch):
    """The StyleCLIP tab's checks (a range message names its field, a mapper is an upload, a listed
    file or an hf:// address, never another server path), its mapper list and what each method shows."""
    pytest.importorskip("gradio")
    from spaces.styleclip import GLOBAL, MAPPER, OPTIMIZATION, StyleClipTab, _request
    from stylecore.edit.styleclip_mapper import ENV_MAPPERS
    from stylecore.engine.manager import ModelManager
    from stylecore.engine.zoo import Zoo

    def request(method, **changes):
        values = dict(target="a smile", neutral="a face", alpha=4, beta=0.15, auto_beta=False, strip="",
                      relevance_images=16, steps=5, lr=0.1, l2_lambda=0.008, mapper_file=None, mapper_hub="",
                      mapper_strength=1.0, clip_model="", id_weights=None, id_lambda=0.0)
        return _request(method, **{**values, **changes})

    for method, field, value, message in (
            (OPTIMIZATION, "steps", 100000000, "Steps must be from 1 to 5000, got 100000000"),
            (OPTIMIZATION, "lr", float("-inf"), "Learning rate must be a finite number"),
            (OPTIMIZATION, "l2_lambda", 101, r"Closeness \(L2 λ\) must be from 0 to 100"),
            (GLOBAL, "relevance_images", 0, "Images per channel must be from 1 to 200")):
        with pytest.raises(ValueError, match=f"^{message}"):
            request(method, **{field: value})
    with pytest.raises(ValueError, match="pick one from the list, upload a .pt file, or give hf://"):
        request(MAPPER, mapper_hub="/etc/passwd")
    monkeypatch.setenv(ENV_MAPPERS, str(tmp_path))
    listed = tmp_path / "curly_hair.pt"
    listed.write_bytes(b"")
    assert request(MAPPER, mapper_hub=str(listed)).mapper == str(listed)
    assert request(MAPPER, mapper_hub="hf://o/r/m.pt").mapper == "hf://o/r/m.pt"

    tab = StyleClipTab(ModelManager(Zoo(), device="cpu"))
    assert tab.mappers("demo")[0] == [] and "no mapper exists for this model" in tab.mappers("demo")[1]
    assert tab.mappers("sg2-ffhq-1024-rosinality")[0] == [("curly hair", str(listed))]
    # seed, class, code file, truncation; target, global, optimisation, mapper, strip, global/optimisation
    # advanced, CLIP model
    visible = [[update["visible"] for update in tab.shown("demo", "seed", method)] for method in (GLOBAL, MAPPER)]
    assert visible[0] == [True, False, False, True, True, True, False, False, True, True, False, True]
    assert visible[1] == [True, False, False, True, False, False, False, True, True, False, False, False]
    assert tab.ready("seed", None, None, MAPPER, None, "")["interactive"] is False
    assert tab.ready("seed", None, None, MAPPER, None, "hf://o/r/m.pt")["interactive"] is True
    assert tab.ready("inversion", None, None, GLOBAL, None, "")["interactive"] is False
    assert tab.ready("inversion", None, ["/tmp/a.npz"], GLOBAL, None, "")["interactive"] is True
