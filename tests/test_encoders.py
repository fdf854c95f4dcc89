"""pSp / e4e / ReStyle: parity with the fixtures, the released file layouts, ReStyle iterations, safety."""
from __future__ import annotations

import os
import shutil

import pytest
import torch
import torch.nn.functional as F

from conftest import parity_case, relative_error
from name_seeded import category, name_seeded
from stylecore.inversion.encoders import (EncoderModel, average_image, decode, encode, load_encoder, preprocess,
                                restyle)
from stylecore.formats.errors import CheckpointError, UnsafeCheckpointError
from stylecore.networks import build_generator
from writers.encoders import encoder_opts, write_encoder_pt, write_tiny_encoder_pt
from writers.hostile import SystemGadget

PARITY_TOL = 1e-4
SMALL_INPUT = 64


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """A converted-decoder cache per test, so nothing leaks between cases."""
    monkeypatch.setenv("STYLECORE_CACHE", str(tmp_path / "own-cache"))


# ------------------------------------------------------------------------------------------------
# Parity with the original implementations (1024 decoder, full IR-SE50)


@pytest.mark.parametrize("case,kind", [("psp_ffhq1024", "psp"), ("e4e_ffhq1024", "e4e")])
def test_parity(tmp_path, case, kind):
    meta, _, arrays = parity_case(case)
    records = meta["state_dict"]
    keys = [rec["key"] for rec in records]
    assert all(category(r["key"], r["shape"], keys, torch.int64 if r["dtype"] == "int64" else torch.float32)
               == r["init"] for r in records)  # the shared key-name rule agrees with the fixture
    state = name_seeded(records)
    enc = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    dec = {k[len("decoder."):]: v for k, v in state.items() if k.startswith("decoder.")}
    del state
    path = tmp_path / f"{kind}_ffhq_encode.pt"
    write_encoder_pt(path, enc, dec, encoder_opts(kind, 1024), torch.from_numpy(arrays["latent_avg"]))
    del enc, dec
    try:
        model = load_encoder(path)
        assert (model.kind, model.n_styles, model.resolution) == (kind, meta["n_styles"], 1024)
        # the module's own state dict has exactly the fixture's encoder keys, in order, with its shapes
        own = model.encoder.state_dict()
        assert [f"encoder.{k}" for k in own] == [k for k in keys if k.startswith("encoder.")]
        assert all(list(own[k[len("encoder."):]].shape) == r["shape"] for r, k in zip(records, keys)
                   if k.startswith("encoder."))

        images = torch.from_numpy(arrays["input_uint8"])
        x = preprocess(model, images)
        assert torch.equal(x, (images.float() / 255 - 0.5) / 0.5)
        with torch.no_grad():
            codes_encoder = model.encoder(x)
        codes = encode(model, images)
        pooled = F.adaptive_avg_pool2d(decode(model, codes), (256, 256))
        results = {"codes_encoder": codes_encoder, "codes": codes, "images_pooled": pooled}
        assert set(results) == set(meta["outputs"])
        errors = {name: relative_error(out, arrays[name]) for name, out in results.items()}
        print(f"\n{case} parity (max|a-b|/std(b)):", ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
        assert all(e < PARITY_TOL for e in errors.values()), errors
    finally:  # 1.2 GB file and a 120 MB converted decoder
        os.unlink(path)
        shutil.rmtree(tmp_path / "own-cache", ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# Each checkpoint type, small, in its released layout


def _tiny_generator(resolution: int = 32, seed: int = 0) -> torch.nn.Module:
    """A small official StyleGAN2 whose every tensor is non-trivial (stands in for the 1024 decoder)."""
    G = build_generator("stylegan2", dict(z_dim=32, c_dim=0, w_dim=32, img_resolution=resolution, img_channels=3,
                                          channel_base=512, channel_max=32, num_fp16_res=0, conv_clamp=None,
                                          architecture="skip", mapping_kwargs=dict(num_layers=2)))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in G.state_dict().items():
            if name.endswith("resample_filter"):
                continue
            r = torch.randn(t.shape, generator=gen)
            t.copy_(1 + 0.3 * r if name.endswith("affine.bias") else 0.3 * r
                    if name.endswith(("noise_strength", "bias")) else r)
    return G.eval().requires_grad_(False)


def _images(n: int = 2, seed: int = 7, size: int = SMALL_INPUT) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def _load_small(path) -> EncoderModel:
    """load_encoder, then a 64x64 encoder input instead of 256 to keep CPU tests fast.

    The heads still reduce to 1x1 (stride-2 convs of a 1x1 map stay 1x1); the released 256 input
    is covered by the parity tests and by `test_checkpoint_types_load_and_run`'s resize check.
    """
    model = load_encoder(path)
    assert model.input_size == (256, 256)
    assert preprocess(model, _images(1, size=100)).shape == (1, 3, 256, 256)
    model.input_size = (SMALL_INPUT, SMALL_INPUT)
    return model


@pytest.mark.parametrize("kind,encoder_type,dataset", [
    ("psp", None, "ffhq_encode"),
    ("e4e", None, "ffhq_encode"),
    ("restyle_psp", None, "ffhq_encode"),
    ("restyle_e4e", None, "ffhq_encode"),
    ("restyle_e4e", "ResNetProgressiveBackboneEncoder", "church_encode"),
], ids=["psp", "e4e", "restyle_psp", "restyle_e4e", "restyle_e4e_resnet34"])
def test_checkpoint_types_load_and_run(tmp_path, kind, encoder_type, dataset):
    G = _tiny_generator()
    path = tmp_path / f"{kind}.pt"
    opts = write_tiny_encoder_pt(path, kind, G, encoder_type=encoder_type, dataset_type=dataset)
    model = _load_small(path)
    assert isinstance(model, EncoderModel)
    assert model.kind == kind and model.encoder_type == opts["encoder_type"]
    assert model.n_styles == G.num_ws and model.input_nc == (6 if kind.startswith("restyle") else 3)
    assert model.opts["dataset_type"] == dataset and model.latent_avg.shape == (G.num_ws, G.w_dim)
    ws = torch.randn([2, G.num_ws, G.w_dim], generator=torch.Generator().manual_seed(3))
    assert torch.allclose(decode(model, ws), G.synthesis(ws, noise_mode="const", force_fp32=True), atol=1e-5)

    codes = encode(model, _images())
    assert codes.shape == (2, G.num_ws, G.w_dim) and torch.isfinite(codes).all()
    assert decode(model, codes).shape == (2, 3, 32, 32)
    # other sizes and float input in [-1, 1] are resized to the encoder's input size
    floats = torch.rand(1, 3, 200, 180, generator=torch.Generator().manual_seed(4)) * 2 - 1
    assert preprocess(model, floats).shape == (1, 3, SMALL_INPUT, SMALL_INPUT)
    assert encode(model, floats).shape == (1, G.num_ws, G.w_dim)


def test_restyle_iterations_and_intermediate_outputs(tmp_path):
    G = _tiny_generator(seed=1)
    path = tmp_path / "restyle_psp_ffhq.pt"
    write_tiny_encoder_pt(path, "restyle_psp", G)
    model = _load_small(path)
    images = _images(2, seed=9)
    seen = []
    steps = restyle(model, images, iterations=3, progress=lambda done, total, msg: seen.append((done, total)))
    assert len(steps) == 3 and seen == [(1, 3), (2, 3), (3, 3)]
    assert all(s.codes.shape == (2, G.num_ws, G.w_dim) and s.image.shape == (2, 3, 32, 32) for s in steps)
    assert not torch.equal(steps[0].codes, steps[1].codes)

    # iteration 0 encodes [x, average image] on latent_avg; iteration t on [x, pooled previous] + codes_{t-1}
    x = preprocess(model, images)
    avg = F.adaptive_avg_pool2d(G.synthesis(model.latent_avg[None], noise_mode="const", force_fp32=True),
                                SMALL_INPUT)
    assert torch.allclose(average_image(model), avg[0], atol=1e-6)
    with torch.no_grad():
        c0 = model.encoder(torch.cat([x, avg.expand(2, -1, -1, -1)], 1)) + model.latent_avg
        assert torch.allclose(steps[0].codes, c0, atol=1e-5)
        assert torch.allclose(steps[0].image, G.synthesis(c0, noise_mode="const", force_fp32=True), atol=1e-5)
        prev = F.adaptive_avg_pool2d(steps[0].image, SMALL_INPUT)
        c1 = model.encoder(torch.cat([x, prev], 1)) + steps[0].codes
        assert torch.allclose(steps[1].codes, c1, atol=1e-5)

    assert model.default_iterations == 5  # the file's n_iters_per_batch
    model.opts["n_iters_per_batch"] = 2
    assert torch.allclose(encode(model, images), restyle(model, images, 2)[-1].codes, atol=1e-6)
    with pytest.raises(ValueError, match="iterations"):
        restyle(model, images, iterations=0)


def test_single_pass_models_refuse_restyle(tmp_path):
    path = tmp_path / "e4e.pt"
    write_tiny_encoder_pt(path, "e4e", _tiny_generator())
    with pytest.raises(ValueError, match="single pass"):
        restyle(_load_small(path), _images(1), 2)


@pytest.mark.parametrize("shape", [(32,), (1, 32)])
def test_latent_avg_shapes_broadcast(tmp_path, shape):
    G = _tiny_generator()
    avg = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    path = tmp_path / "restyle.pt"
    write_tiny_encoder_pt(path, "restyle_e4e", G, latent_avg=avg)
    model = load_encoder(path)
    assert model.latent_avg.shape == (G.num_ws, G.w_dim)
    assert torch.equal(model.latent_avg, avg.reshape(1, -1).expand(G.num_ws, -1))


def test_e4e_without_latent_avg_uses_decoder_w_avg(tmp_path):
    G = _tiny_generator()
    path = tmp_path / "e4e.pt"
    write_tiny_encoder_pt(path, "e4e", G, latent_avg=None)
    model = load_encoder(path)
    assert torch.allclose(model.latent_avg, model.decoder.mapping.w_avg.expand(G.num_ws, -1))
    assert any("w_avg" in note for note in model.notes)


# ------------------------------------------------------------------------------------------------
# Refusals


def test_unknown_encoder_types_and_layouts(tmp_path):
    G = _tiny_generator()
    path = tmp_path / "odd.pt"
    write_tiny_encoder_pt(path, "psp", G, encoder_type="GradualStyleEncoder")
    ckpt = torch.load(path, weights_only=True)
    ckpt["opts"]["encoder_type"] = "BackboneEncoderUsingLastLayerIntoW"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="BackboneEncoderUsingLastLayerIntoW") as err:
        load_encoder(path)
    assert str(path) in str(err.value)

    torch.save({"g_ema": {"style.1.weight": torch.zeros(2, 2)}}, path)
    with pytest.raises(CheckpointError, match="not a pSp / e4e / ReStyle checkpoint"):
        load_encoder(path)
    torch.save({"state_dict": {"hypernet.x": torch.zeros(1), "decoder.input.input": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="HyperStyle"):
        load_encoder(path)

    write_tiny_encoder_pt(path, "e4e", G)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["state_dict"]["encoder.latlayer2.bias"]
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="latlayer2.bias"):
        load_encoder(path)


def test_unsafe_global_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"encoder.input_layer.0.weight": SystemGadget(marker)},
                "opts": {"encoder_type": "GradualStyleEncoder"}}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_encoder(path)
    assert str(path) in str(err.value) and "system" in err.value.global_name
    assert not marker.exists()


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "e4e_ffhq_encode.pt"
    write_tiny_encoder_pt(path, "e4e", _tiny_generator())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_encoder(path)
    assert str(path) in str(err.value)
    with pytest.raises(CheckpointError, match="no such file"):
        load_encoder(tmp_path / "missing.pt")


# ------------------------------------------------------------------------------------------------
# Registry of the released checkpoints


def test_encoder_zoo_fetches_and_loads_through_the_hub(tmp_path, fake_hub):
    from stylecore.inversion.encoder_cards import (
        ENCODER_CARDS,
        ENCODER_KINDS,
        encoder_zoo,
        load_zoo_encoder,
    )
    from stylecore.engine.zoo import UnknownModelError

    from stylecore.engine.remote import ModelUnavailable

    assert {ENCODER_KINDS[c.id] for c in ENCODER_CARDS} == {"psp", "e4e"}  # no StyleGAN2 ReStyle on the Hub
    card = encoder_zoo().get("e4e-ffhq")
    assert (card.repo_id, card.filename) == ("public-data/e4e", "e4e_ffhq_encode.pt")
    assert len(card.revision) == 40 and card.sha256 and card.size == 1201649680
    local = tmp_path / "e4e_ffhq_encode.pt"
    write_tiny_encoder_pt(local, "e4e", _tiny_generator())
    fake_hub.add_file(card.repo_id, card.filename, local.read_bytes(), revision=card.revision)
    # The built-in card knows the published file's SHA-256: other bytes at its pinned commit are refused.
    with pytest.raises(ModelUnavailable, match="SHA-256"):
        load_zoo_encoder("e4e-ffhq")
    # The same Hub file through a user spec (no known hash) loads through the Hub client.
    seen = []
    zoo = encoder_zoo([f"e4e-tiny=hf://{card.repo_id}/{card.filename}@{card.revision}"])
    model = load_zoo_encoder("e4e-tiny", progress=lambda done, total, msg: seen.append(msg), zoo=zoo)
    assert model.kind == "e4e" and seen

    # ReStyle-pSp has no Hub copy: a user spec (local path here) adds it
    path = tmp_path / "restyle_psp_ffhq_encode.pt"
    write_tiny_encoder_pt(path, "restyle_psp", _tiny_generator())
    zoo = encoder_zoo([f"restyle-psp-ffhq={path}"])
    assert load_zoo_encoder("restyle-psp-ffhq", zoo=zoo).kind == "restyle_psp"
    with pytest.raises(UnknownModelError, match="e4e-ffhq"):
        load_zoo_encoder("restyle-psp-ffhq")


def test_stylegan3_encoders_are_refused_by_name(tmp_path):
    """trysem/restyle-e4e-ffhq's file is stylegan3-editing's ReStyle-e4e: its decoder is a StyleGAN3
    generator (`decoder.synthesis.input.*`, `decoder.synthesis.L0_36_512.*`). It must not load as if it
    were a StyleGAN2 encoder, and the message says what it is and what to use instead."""
    G = _tiny_generator()
    path = tmp_path / "restyle_e4e_ffhq.pt"
    write_tiny_encoder_pt(path, "restyle_e4e", G)
    ckpt = torch.load(path, weights_only=True)
    state = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("decoder.")}
    state.update({"decoder.synthesis.input.affine.weight": torch.zeros(4, 512),
                  "decoder.synthesis.input.freqs": torch.zeros(512, 2),
                  "decoder.synthesis.L0_36_512.weight": torch.zeros(512, 512, 3, 3)})
    ckpt["state_dict"] = state
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="StyleGAN3") as err:
        load_encoder(path)
    assert "restyle_e4e_ffhq_encode.pt" in str(err.value) and str(path) in str(err.value)
