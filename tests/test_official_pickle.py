"""Official NVIDIA pickles (ADA and StyleGAN3 code-base layouts) load into our networks exactly."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from conftest import REPO_ROOT, parity_case, relative_error
from stylecore.formats.errors import CheckpointError
from stylecore.formats.nvidia_pickle import parse_official_pickle
from stylecore.formats.safe_pickle import PersistentRecord, safe_load_pickle
from stylecore.formats.loader import load_generator
from stylecore.networks import build_generator
from writers.official_pickle import nest_ada_kwargs, write_official_pickle

TOL = 1e-4


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """A cache per test, so 'first load is not cached' never depends on test order."""
    monkeypatch.setenv("STYLECORE_CACHE", str(tmp_path / "own-cache"))


def _fixture_net(name: str):
    meta, state, arrays = parity_case(name)
    G = build_generator(meta["architecture"], meta["init_kwargs"])
    G.load_state_dict(state, strict=True)
    return G.eval().requires_grad_(False), meta, arrays


def _assert_parity(G: torch.nn.Module, arrays: dict) -> None:
    z = torch.from_numpy(arrays["z"])
    c = torch.from_numpy(arrays["c"]) if arrays["c"].size else None
    ws = G.mapping(z, c, truncation_psi=0.7)
    assert relative_error(ws, arrays["ws_psi0.7"]) < TOL
    img = G.synthesis(ws, noise_mode="const", force_fp32=True)
    assert relative_error(img, arrays["img_psi0.7_const"]) < TOL
    img = G(z, c, truncation_psi=1, noise_mode="none", force_fp32=True)
    assert relative_error(img, arrays["img_psi1_none"]) < TOL


@pytest.mark.parametrize("case,flavour", [("sg2_64", "ada"), ("sg2_64", "sg3"), ("sg3t_64", "sg3")])
def test_official_pickle_reproduces_parity(tmp_path, case, flavour):
    G, meta, arrays = _fixture_net(case)
    kwargs = nest_ada_kwargs(meta["init_kwargs"]) if flavour == "ada" else meta["init_kwargs"]
    path = tmp_path / f"{case}-{flavour}.pkl"
    write_official_pickle(path, G, kwargs, flavour)

    loaded = load_generator(path)
    info = loaded.checkpoint_info
    assert info["architecture"] == meta["architecture"]
    assert ("ADA" in info["source"]) == (flavour == "ada") and "G_ema" in info["source"]
    assert info["cached"] is False and len(info["sha256"]) == 64
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert set(loaded.state_dict()) == set(G.state_dict())
    _assert_parity(loaded, arrays)


def test_records_are_data_and_kwargs_are_plain(tmp_path):
    G, meta, _ = _fixture_net("sg3t_64")
    path = tmp_path / "g.pkl"
    write_official_pickle(path, G, meta["init_kwargs"], "sg3")
    obj = safe_load_pickle(path)
    record = obj["G_ema"]
    assert isinstance(record, PersistentRecord) and record.class_name == "Generator"
    assert "Alias-Free" in record.module_doc and len(record.module_sha256) == 64
    parsed = parse_official_pickle(obj, str(path))
    json.dumps(parsed.init_kwargs)  # numpy scalars / EasyDicts converted
    for key, value in meta["init_kwargs"].items():
        if key != "mapping_kwargs":
            assert parsed.init_kwargs[key] == value, key
    assert parsed.init_kwargs["mapping_kwargs"]["num_layers"] == 2
    assert parsed.init_kwargs["use_radial_filters"] is False and parsed.init_kwargs["conv_kernel"] == 3
    assert list(parsed.state_dict) == list(G.state_dict())


def _small_sg2(**overrides):
    kwargs = dict(z_dim=32, c_dim=0, w_dim=32, img_resolution=32, img_channels=3,
                  mapping_kwargs={"num_layers": 2}, channel_base=512, channel_max=32)
    kwargs.update(overrides)
    torch.manual_seed(0)
    return build_generator("stylegan2", kwargs).eval().requires_grad_(False), kwargs


def _outputs(G: torch.nn.Module, c_dim: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    z = torch.randn([2, G.z_dim], generator=g)
    c = torch.eye(c_dim)[:2] if c_dim else None
    return G(z, c, truncation_psi=0.6, noise_mode="const", force_fp32=True)


def test_ada_defaults_never_leak(tmp_path):
    """An ADA file relying on ADA defaults (conv_clamp None, w_avg_beta 0.995, fp16 blocks only
    visible as use_fp16) must not pick up our network's SG3-code-base defaults."""
    G, kwargs = _small_sg2(conv_clamp=None, num_fp16_res=2, mapping_kwargs={"num_layers": 2, "w_avg_beta": 0.995})
    stored = {"z_dim": 32, "c_dim": 0, "w_dim": 32, "img_resolution": 32, "img_channels": 3,
              "mapping_kwargs": {"num_layers": 2}, "synthesis_kwargs": {"channel_base": 512, "channel_max": 32}}
    path = tmp_path / "ada.pkl"
    write_official_pickle(path, G, stored, "ada")
    parsed = parse_official_pickle(safe_load_pickle(path), str(path))
    kw = parsed.init_kwargs
    assert kw["conv_clamp"] is None and kw["num_fp16_res"] == 2
    assert kw["mapping_kwargs"]["w_avg_beta"] == 0.995 and kw["mapping_kwargs"]["lr_multiplier"] == 0.01
    assert kw["channel_base"] == 512 and kw["channel_max"] == 32 and kw["architecture"] == "skip"

    loaded = load_generator(path)
    assert loaded.synthesis.b4.conv1.conv_clamp is None and loaded.mapping.w_avg_beta == 0.995
    assert [getattr(loaded.synthesis, f"b{r}").use_fp16 for r in (4, 8, 16, 32)] == [False, False, True, True]
    assert torch.equal(_outputs(loaded), _outputs(G))


def test_sg3_codebase_stylegan2_without_stored_synthesis_kwargs(tmp_path):
    """SG3-code-base defaults differ too: only the records say num_fp16_res=0 and the channel widths."""
    G, _ = _small_sg2(num_fp16_res=0, conv_clamp=256, architecture="resnet", c_dim=4)
    stored = {"z_dim": 32, "c_dim": 4, "w_dim": 32, "img_resolution": 32, "img_channels": 3,
              "mapping_kwargs": {"num_layers": 2}}
    path = tmp_path / "sg3cb.pkl"
    write_official_pickle(path, G, stored, "sg3")
    loaded = load_generator(path)
    kw = parse_official_pickle(safe_load_pickle(path), str(path)).init_kwargs
    assert kw["num_fp16_res"] == 0 and kw["architecture"] == "resnet"
    assert (kw["channel_base"], kw["channel_max"]) != (32768, 512)
    assert kw["mapping_kwargs"]["embed_features"] == 32
    assert torch.equal(_outputs(loaded, c_dim=4), _outputs(G, c_dim=4))


def test_only_G_present_loads_G(tmp_path):
    G, meta, arrays = _fixture_net("sg2_64")
    path = tmp_path / "only-g.pkl"
    write_official_pickle(path, G, meta["init_kwargs"], "sg3", keys=("G", "D"))
    loaded = load_generator(path)
    assert loaded.checkpoint_info["source"].endswith(", G)")
    _assert_parity(loaded, arrays)


def test_G_ema_preferred_and_extra_keys_tolerated(tmp_path):
    G, meta, arrays = _fixture_net("sg2_64")
    G_raw, _, _ = _fixture_net("sg2_64")
    with torch.no_grad():
        for p in G_raw.parameters():
            p.zero_()
    path = tmp_path / "extra.pkl"
    write_official_pickle(path, G, nest_ada_kwargs(meta["init_kwargs"]), "ada", G_raw=G_raw, extra_keys=True)
    assert {"progress", "fork_note", "metrics"} <= set(safe_load_pickle(path))
    loaded = load_generator(path)
    _assert_parity(loaded, arrays)


def test_missing_generators_is_a_clear_error(tmp_path):
    G, meta, _ = _fixture_net("sg2_64")
    path = tmp_path / "no-generator.pkl"
    write_official_pickle(path, G, meta["init_kwargs"], "ada", keys=("training_set_kwargs", "D", "augment_pipe"))
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    assert str(path) in str(err.value) and "G_ema" in str(err.value) and "'D'" in str(err.value)


def test_format_is_sniffed_by_content_not_extension(tmp_path):
    G, meta, arrays = _fixture_net("sg2_64")
    path = tmp_path / "looks-like-rosinality.pt"
    write_official_pickle(path, G, meta["init_kwargs"], "sg3")
    _assert_parity(load_generator(path), arrays)


def test_import_stylecore_stays_light():
    code = ("import sys, stylecore; assert 'torch' not in sys.modules, 'torch imported eagerly'; "
            "assert callable(stylecore.load_generator)")
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


def test_strict_mismatch_lists_keys_and_shapes():
    from stylecore.formats.parsed import ParsedCheckpoint
    from stylecore.formats.loader import build_from_parsed

    G, meta, _ = _fixture_net("sg2_64")
    state = dict(G.state_dict())
    state.pop("mapping.w_avg")
    state["synthesis.b4.extra"] = torch.zeros(1)
    state["synthesis.b4.const"] = torch.zeros(3, 4, 4)
    parsed = ParsedCheckpoint("stylegan2", meta["init_kwargs"], state, "test")
    with pytest.raises(CheckpointError) as err:
        build_from_parsed(parsed, "/somewhere/model.pkl")
    message = str(err.value)
    assert "/somewhere/model.pkl" in message and "missing: mapping.w_avg" in message
    assert "unexpected: synthesis.b4.extra" in message and "synthesis.b4.const: file [3, 4, 4]" in message
