"""HyperStyle: parity with the original code (tests/fixtures/hyperstyle/README.md), the released file
layout, inference on per-request weights, refusals.

The parity model holds the real 512-wide shared hypernetwork (137 M parameters) over a 32 px decoder:
it is built and run once per module. A per-layer refinement block of the 1024 px model has its own
small parity case. Everything else uses narrow copies written in the released layout, run at 64 px.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import relative_error
from name_seeded import seeded_value
from stylecore.formats.errors import CheckpointError, UnsafeCheckpointError
from stylecore.formats.loader import load_generator
from stylecore.inversion.hyperstyle import (build_hyperstyle, invert, load_hyperstyle, load_w_encoder, run,
                                            tuned_weights)
from stylecore.inversion.optimize import InversionResult
from stylecore.inversion.pti import render_tuned
from stylecore.networks import build_generator
from stylecore.networks.digest import synthesis_digest
from stylecore.networks.hyperstyle import (RefinementBlock, SharedWeightsHyperNetResNet, WEncoder, layer_names,
                                          layer_shapes)
from test_real_globals import PT4, file_globals
from writers.encoders import write_tiny_encoder_pt
from writers.hostile import SystemGadget
from writers.hyperstyle import FACES_LAYERS, write_tiny_hyperstyle

FIXTURES = Path(__file__).parent / "fixtures" / "hyperstyle"
PARITY_TOL = 1e-4
TINY_LAYERS = "0,1,2,3,5,6,8,9,11,12,14,15,16"  # shared, ToRGB and per-layer 3x3 blocks at 128 px


def _seeded(records: list[dict]) -> dict[str, torch.Tensor]:
    """The fixture's name-seeded state dict; aliases of the shared hypernetwork share its tensors."""
    out: dict[str, torch.Tensor] = {}
    for rec in records:
        out[rec["key"]] = out[rec["alias_of"]] if rec["init"] == "shared_alias" else seeded_value(
            rec["key"], rec["shape"], rec["init"], rec.get("lr_mul") or 0.01)
    return out


def _case(name: str) -> tuple[dict, dict[str, np.ndarray]]:
    meta = json.loads((FIXTURES / f"{name}.json").read_text())
    with np.load(FIXTURES / f"{name}.npz") as npz:
        return meta, {k: npz[k] for k in npz.files}


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    """The fixture's model rebuilt from its key list, and one run of it on the fixture's image."""
    meta, arrays = _case("hyperstyle_32")
    state = _seeded(meta["hyperstyle_state_dict"])
    folder = tmp_path_factory.mktemp("hyperstyle-parity")
    latent_avg = torch.from_numpy(arrays["latent_avg"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STYLECORE_CACHE", str(folder / "cache"))
        torch.save({"g_ema": _strip(state, "decoder."), "latent_avg": latent_avg[0]}, folder / "decoder.pt")
        decoder = load_generator(folder / "decoder.pt")
    with torch.device("meta"):
        w_encoder = WEncoder(int(decoder.num_ws))
    w_encoder.load_state_dict(_strip(_seeded(meta["w_encoder_state_dict"]), "encoder."), strict=True, assign=True)
    model = build_hyperstyle(_strip(state, "hypernet."), decoder, w_encoder.eval(), latent_avg, meta["opts"])
    del state
    digest = synthesis_digest(decoder)
    out = run(model, torch.from_numpy(arrays["input_uint8"]), iterations=meta["n_iters"])
    return meta, arrays, model, out, digest


def test_parity_key_names_and_shapes(parity):
    meta, _, model, _, _ = parity
    for records, prefix, module in ((meta["hyperstyle_state_dict"], "hypernet.", model.hypernet),
                                    (meta["w_encoder_state_dict"], "encoder.", model.w_encoder)):
        own = [(prefix + k, list(v.shape)) for k, v in module.state_dict().items()]
        assert own == [(r["key"], r["shape"]) for r in records if r["key"].startswith(prefix)]
    assert model.tuned_layers == meta["tuned_layers"]
    assert model.hypernet.refinement_blocks[0].hypernet is model.hypernet.shared_weight_hypernet


def test_parity_with_the_original(parity):
    meta, arrays, model, out, _ = parity
    errors = {"codes": relative_error(out.codes, arrays["codes"]),
              "image_w": relative_error(out.start_image, arrays["image_w"])}
    assert len(out.steps) == meta["n_iters"] and not out.cancelled
    for t, step in enumerate(out.steps):
        errors[f"image_{t + 1}"] = relative_error(step.image, arrays["images"][t])
        assert sorted(step.offsets) == meta["tuned_layers"]
    for i in meta["tuned_layers"]:
        d = torch.stack([s.offsets[i] for s in out.steps]).numpy()  # [T, N, out, in, k, k]
        assert list(d.shape[2:]) == arrays[f"offsets_{i}_shape"].tolist()
        flat = d.reshape(d.shape[0], d.shape[1], -1)
        errors[f"offsets_{i}"] = max(
            relative_error(flat[:, :, arrays[f"offsets_{i}_index"]], arrays[f"offsets_{i}_sample"]),
            relative_error(d.mean(axis=(3, 4, 5)), arrays[f"offsets_{i}_out_mean"]),
            relative_error(d.mean(axis=(2, 4, 5)), arrays[f"offsets_{i}_in_mean"]),
            relative_error(np.abs(d).mean(axis=(2, 3, 4, 5)), arrays[f"offsets_{i}_abs_mean"]))
    print("\nhyperstyle_32 parity (max|a-b|/std(b)):", ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    assert all(e < PARITY_TOL for e in errors.values()), errors


def test_tuned_weights_render_the_result_and_leave_the_decoder_alone(parity):
    _, _, model, out, digest = parity
    assert synthesis_digest(model.decoder) == digest
    final = out.steps[-1]
    weights = tuned_weights(model, final.offsets)
    assert sorted(weights) == sorted(model.tuned_names)
    assert torch.allclose(render_tuned(model.decoder, out.codes, weights), final.image, atol=1e-5)
    untouched = model.decoder.synthesis(out.codes, noise_mode="const", force_fp32=True)
    assert torch.allclose(untouched, out.start_image, atol=1e-5)


def test_refinement_block_parity():
    """Layer 17 of the 1024 px model (256 -> 128 channels, 3x3): one value per (out, in) pair."""
    meta, arrays = _case("refinement_block_17")
    prefix = f"hypernet.refinement_blocks.{meta['layer']}."
    block = RefinementBlock(layer_shapes(_faces_synthesis())[meta["layer"]])
    assert [(prefix + k, list(v.shape)) for k, v in block.state_dict().items()] == \
        [(r["key"], r["shape"]) for r in meta["state_dict"]]
    block.load_state_dict(_strip(_seeded(meta["state_dict"]), prefix), strict=True)
    with torch.no_grad():
        out = block.eval()(torch.from_numpy(arrays["features"]))
    assert list(out.shape[1:]) == arrays["offsets_shape"].tolist() == [128, 256, 3, 3]
    assert torch.equal(out, out[..., :1, :1].expand_as(out))
    error = relative_error(out[..., 0, 0], arrays["offsets"])
    print(f"\nrefinement_block_17 parity (max|a-b|/std(b)): {error:.1e}")
    assert error < PARITY_TOL


def _faces_synthesis() -> torch.nn.Module:
    """The 1024 px FFHQ synthesis network's layout (on the meta device: shapes only)."""
    with torch.device("meta"):
        return build_generator("stylegan2", dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3,
                                                 channel_base=32768, channel_max=512, num_fp16_res=0,
                                                 architecture="skip")).synthesis


def test_released_faces_layers_map_to_the_official_names():
    names = layer_names(1024)
    assert len(names) == 26
    tuned = [names[i] for i in map(int, FACES_LAYERS.split(","))]
    assert tuned[:3] == ["b4.conv1.weight", "b8.conv0.weight", "b8.conv1.weight"]
    assert tuned[-2:] == ["b1024.conv0.weight", "b1024.conv1.weight"] and not any("torgb" in n for n in tuned)
    shapes = layer_shapes(_faces_synthesis())
    assert [tuple(shapes[i]) for i in (0, 1, 14, 17, 25)] == [(512, 512, 3), (3, 512, 1), (256, 512, 3),
                                                               (128, 256, 3), (3, 32, 1)]


# ------------------------------------------------------------------------------------------------
# The released layout, small


def _tiny_generator(seed: int = 0) -> torch.nn.Module:
    """A 128 px official StyleGAN2, 16 channels wide everywhere (so the shared layers are square)."""
    G = build_generator("stylegan2", dict(z_dim=32, c_dim=0, w_dim=32, img_resolution=128, img_channels=3,
                                          channel_base=2048, channel_max=16, num_fp16_res=0, conv_clamp=None,
                                          architecture="skip", mapping_kwargs=dict(num_layers=2)))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in G.state_dict().items():
            if not name.endswith("resample_filter"):
                r = torch.randn(t.shape, generator=gen)
                t.copy_(1 + 0.3 * r if name.endswith("affine.bias") else 0.3 * r
                        if name.endswith(("noise_strength", "bias")) else r)
    return G.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hyperstyle-tiny")
    G = _tiny_generator()
    hyper_path, w_path = write_tiny_hyperstyle(folder / "models" / "hyperstyle", G, TINY_LAYERS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STYLECORE_CACHE", str(folder / "cache"))
        model = load_hyperstyle(hyper_path)  # finds faces_w_encoder.pt beside it
    assert model.input_size == (256, 256)
    model.input_size = (64, 64)  # the narrow networks reduce to 1x1 all the same; 16x less work
    return G, hyper_path, w_path, model


def _images(n: int, seed: int = 5, size: int = 96) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_released_layout_loads_and_runs(tiny):
    G, hyper_path, w_path, model = tiny
    assert file_globals(hyper_path) == PT4 and file_globals(w_path) == PT4
    assert model.w_encoder_path == str(w_path) and model.resolution == 128
    assert model.tuned_layers == [int(i) for i in TINY_LAYERS.split(",")]
    assert model.tuned_names[:3] == ["b4.conv1.weight", "b4.torgb.weight", "b8.conv0.weight"]
    assert layer_names(128)[14:17] == ["b128.conv0.weight", "b128.conv1.weight", "b128.torgb.weight"]
    ws = torch.randn([1, G.num_ws, G.w_dim], generator=torch.Generator().manual_seed(3))
    assert torch.allclose(model.decoder.synthesis(ws, noise_mode="const", force_fp32=True),
                          G.synthesis(ws, noise_mode="const", force_fp32=True), atol=1e-5)

    seen: list[float] = []
    digest = synthesis_digest(model.decoder)
    result = invert(model, _images(1)[0].permute(1, 2, 0).numpy(), iterations=2,
                    progress=lambda fraction, message: seen.append(fraction))
    assert isinstance(result, InversionResult)
    assert (result.method, result.space, result.steps, result.cancelled) == ("HyperStyle", "W + weight offsets", 2,
                                                                             False)
    assert result.ws.shape == (1, G.num_ws, G.w_dim) and result.image.shape == (128, 128, 3)
    assert len(result.iterations) == 2 and result.start.space == "W" and result.start.image.shape == (128, 128, 3)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) == 3
    assert sorted(result.weights) == sorted(model.tuned_names)
    assert all(result.weights[n].shape == p.shape for n, p in model.decoder.synthesis.named_parameters()
               if n in result.weights)
    # the weights draw the code as the result shows it; the shared decoder is unchanged
    drawn = render_tuned(model.decoder, result.ws, result.weights)
    assert np.abs(((drawn[0].permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy().astype(int)
                   - result.image.astype(int))).max() <= 1
    assert synthesis_digest(model.decoder) == digest
    assert not np.array_equal(result.image, result.start.image)


def test_each_image_of_a_batch_gets_its_own_offsets(tiny):
    model = tiny[3]
    images = _images(2, seed=8)
    both = run(model, images, iterations=2)
    for n in range(2):  # one pass suffices: each image is drawn with its own offsets at every pass
        alone = run(model, images[n:n + 1], iterations=1)
        assert torch.allclose(alone.steps[0].image[0], both.steps[0].image[n], atol=1e-4)
        assert all(torch.allclose(alone.steps[0].offsets[i][0], both.steps[0].offsets[i][n], atol=1e-5)
                   for i in model.tuned_layers)
    assert not torch.allclose(both.steps[-1].image[0], both.steps[-1].image[1])
    # iteration 2 adds the hypernetwork's second prediction to the first
    assert not torch.equal(both.steps[0].offsets[0], both.steps[1].offsets[0])


def test_stop_keeps_the_passes_done(tiny):
    model = tiny[3]
    calls = []
    result = invert(model, _images(1), iterations=4, should_stop=lambda: calls.append(1) or True)
    assert result.cancelled and result.steps == 1 and len(result.iterations) == 1 and len(calls) == 1
    with pytest.raises(ValueError, match="iterations"):
        run(model, _images(1), iterations=0)


# ------------------------------------------------------------------------------------------------
# Refusals


def _rewrite(path: Path, change) -> None:
    ckpt = torch.load(path, weights_only=True)
    change(ckpt)
    torch.save(ckpt, path)


def test_wrong_files_are_refused_with_clear_errors(tiny, tmp_path, monkeypatch):
    G, hyper_path, w_path, _ = tiny
    monkeypatch.setenv("STYLECORE_CACHE", str(tmp_path / "cache"))
    # an encoder checkpoint given as the HyperStyle model, and the model given as its W encoder
    psp = tmp_path / "psp.pt"
    write_tiny_encoder_pt(psp, "psp", G)
    with pytest.raises(CheckpointError, match="load_encoder"):
        load_hyperstyle(psp, w_path)
    with pytest.raises(CheckpointError, match="other file"):
        load_w_encoder(hyper_path, G.num_ws)
    with pytest.raises(CheckpointError, match="GradualStyleEncoder"):
        load_w_encoder(psp, G.num_ws)
    # no W encoder beside the file
    alone = tmp_path / "alone" / "hyperstyle_ffhq.pt"
    alone.parent.mkdir()
    alone.write_bytes(hyper_path.read_bytes())
    with pytest.raises(CheckpointError, match="w_encoder_path"):
        load_hyperstyle(alone)

    def edit(change, message):
        path = tmp_path / "edited.pt"
        path.write_bytes(hyper_path.read_bytes())
        _rewrite(path, change)
        with pytest.raises(CheckpointError, match=message) as err:
            load_hyperstyle(path, w_path)
        assert str(path) in str(err.value)

    edit(lambda c: c["opts"].update(encoder_type="SharedWeightsHyperNetResNetSeparable"), "separable")
    edit(lambda c: c["opts"].update(layers_to_tune="0,2,3"), "layers_to_tune")
    edit(lambda c: c["opts"].update(dataset_type="cars_encode"), "cars")
    edit(lambda c: c["state_dict"].update({"hypernet.refinement_blocks.2.hypernet.w1":
                                           c["state_dict"]["hypernet.shared_weight_hypernet.w1"] + 1}), "identical")
    edit(lambda c: c["state_dict"].pop("hypernet.refinement_blocks.15.output.1.bias"), "output.1.bias")


def test_unsafe_and_truncated_files(tmp_path, tiny):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {"hypernet.conv1.weight": SystemGadget(marker)}, "opts": {}}, evil)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_hyperstyle(evil, tiny[2])
    assert str(evil) in str(err.value) and not marker.exists()
    cut = tmp_path / "hyperstyle_ffhq.pt"
    data = tiny[1].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_hyperstyle(cut, tiny[2])
    assert str(cut) in str(err.value)
    with pytest.raises(CheckpointError, match="no such file"):
        load_hyperstyle(tmp_path / "missing.pt")


def test_shared_layers_must_fit_the_shared_hypernetwork():
    shapes = layer_shapes(_tiny_generator().synthesis)
    with pytest.raises(ValueError, match="shared hypernetwork"):
        SharedWeightsHyperNetResNet(shapes, widths=(8, 8, 8, 8), code_dim=8, shared_channels=32)


# ------------------------------------------------------------------------------------------------
# The released files as the app fetches them


def _size_in_real_files(name: str) -> float:
    """The size real_files.md gives a HyperStyle file, in bytes ('1.44 GB', '258 MB')."""
    import re

    text = (Path(__file__).parents[2] / "shared" / "reference" / "real_files.md").read_text()
    match = re.search(rf"`models/hyperstyle/{re.escape(name)}` \(([\d.]+) (GB|MB), PT4\)", text.replace("\n  ", " "))
    if match is None:
        pytest.skip("../shared/reference/real_files.md is not beside the checkout")
    return float(match.group(1)) * {"GB": 1e9, "MB": 1e6}[match.group(2)]


def test_released_cards_are_the_published_files():
    from stylecore.inversion.hyperstyle_sources import RELEASED

    for card in RELEASED:
        assert card.repo_id == "trysem/DualStyleGANplus" and card.filename.startswith("models/hyperstyle/")
        assert len(card.revision) == 40 and len(card.sha256) == 64
        published = _size_in_real_files(card.filename.rsplit("/", 1)[1])
        assert abs(card.size - published) / published < 0.005


def test_hyperstyle_in_the_comparison_through_the_hub(tiny, fake_hub, tmp_path, monkeypatch):
    """The comparison fetches both released files (real layout, PT4, pinned) through the Hub client and runs
    HyperStyle on the app's own generator: the card that is its decoder, read from a rosinality file (which
    PTI tunes in the same comparison)."""
    import dataclasses
    import hashlib

    from stylecore.engine.manager import ModelManager
    from stylecore.engine.zoo import Zoo
    from stylecore.inversion import hyperstyle_sources
    from stylecore.inversion.compare import compare_on, seed_target
    from stylecore.inversion.methods import choose
    from writers.rosinality import write_rosinality_pt

    G, hyper_path, w_path, _ = tiny
    monkeypatch.setenv("STYLECORE_LPIPS_BACKBONE", "random")
    pinned = []
    for card, path in zip(hyperstyle_sources.RELEASED, (hyper_path, w_path)):
        data = path.read_bytes()
        commit = fake_hub.add_file(card.repo_id, card.filename, data)
        pinned.append(dataclasses.replace(card, revision=commit, sha256=hashlib.sha256(data).hexdigest(),
                                          size=len(data)))
    monkeypatch.setattr(hyperstyle_sources, "RELEASED", tuple(pinned))
    decoder = tmp_path / "stylegan2-ffhq-config-f.pt"
    write_rosinality_pt(decoder, G, "convert_weight")
    commit = fake_hub.add_file("tester/decoder", decoder.name, decoder.read_bytes())
    models = tmp_path / "models.toml"
    models.write_text(f'[[models]]\nid = "sg2-ffhq-1024-rosinality"\ntitle = "the decoder, small"\n'
                      f'architecture = "stylegan2"\nformat = "rosinality"\nrepo_id = "tester/decoder"\n'
                      f'filename = "{decoder.name}"\nrevision = "{commit}"\n')
    manager = ModelManager(Zoo.from_sources(str(models)), device="cpu")
    model = manager.get("sg2-ffhq-1024-rosinality")
    image, _ = seed_target(model.G, 4)
    result, pti = compare_on(manager, model, image, choose(["hyperstyle", "pti"], {"pti": 2}, iterations=2),
                             schedule="full").results
    assert result.space == "W + weight offsets" and len(result.iterations) == 2 and result.metrics["lpips"] >= 0
    assert pti.space == "W + tuned weights" and sorted(pti.weights) == sorted(
        name for name, _ in model.G.synthesis.named_parameters())  # PTI tunes the same file's generator
    assert "same weights as the encoder's own decoder" in result.note  # the app's G is HyperStyle's decoder
    assert sorted(result.weights) == sorted(layer_names(128)[i] for i in map(int, TINY_LAYERS.split(",")))
    assert any(key[0] == "hyperstyle" for key in manager.resource_keys())
    with pytest.raises(ValueError, match="fits StyleGAN2 FFHQ 1024 \\(config-f\\) only"):
        compare_on(manager, manager.get("demo-sg3"), image, choose(["hyperstyle"], {}, iterations=1))
