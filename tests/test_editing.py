"""Semantic editing: S round trip, identity at strength 0, every edit changes the image, local edits
stay in their part, PCA reproducible and cached, boundary files in their real layouts (served by the
fake Hub), conditional projection orthogonal, region channel search. Demo networks only: fast on CPU."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from stylecore.engine.demo import build_demo_generator
from stylecore.edit import ganspace, interfacegan, local_edit, stylespace_channels
from stylecore.engine import assets
from stylecore.codes.generate import GenerationSettings, settings_ws
from stylecore.networks import build_generator
from stylecore.codes.stylespace import (load_styles, save_styles, style_layers, synthesize_from_styles, ws_to_styles)

KW = {"noise_mode": "const", "force_fp32": True}


@pytest.fixture(scope="module")
def G():
    return build_demo_generator("stylegan2").eval().requires_grad_(False)


@pytest.fixture(scope="module")
def ws(G):
    return settings_ws(G, [0, 1], GenerationSettings(truncation_psi=0.7), "cpu")


@pytest.fixture(scope="module")
def parts(G):
    return local_edit.compute_parts(G, k=6, n_samples=8, seed=0)


def render(G, ws):
    with torch.no_grad():
        return G.synthesis(ws, **KW)


# --- StyleSpace codes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("arch, kwargs", [
    ("stylegan2", {}),
    ("stylegan2", {"img_resolution": 32, "architecture": "resnet"}),
    ("stylegan2", {"img_resolution": 16, "architecture": "orig"}),
    ("stylegan3", {}),
])
def test_styles_round_trip_is_exact(arch, kwargs):
    from stylecore.engine.demo import DEMO_KWARGS

    torch.manual_seed(0)
    G = build_generator(arch, {**DEMO_KWARGS[arch], **kwargs}).eval().requires_grad_(False)
    ws = G.mapping(torch.randn(1 if arch == "stylegan3" else 2, G.z_dim), None, truncation_psi=0.8)
    with torch.no_grad():
        styles = ws_to_styles(G, ws)
        from_s = synthesize_from_styles(G, styles, ws, noise_mode="const")
        assert torch.equal(from_s, G.synthesis(ws, noise_mode="const"))
    layers = style_layers(G)
    assert [s.shape[1] for s in styles] == [l.channels for l in layers]
    if arch == "stylegan2" and kwargs.get("architecture", "skip") == "skip":
        log2 = int(np.log2(G.img_resolution))
        assert len(layers) == 3 * log2 - 4  # 26 at 1024, 14 here


def test_ffhq_1024_layout_matches_the_published_s():
    with torch.device("meta"):
        G = build_generator("stylegan2", dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3))
    layers = style_layers(G)
    assert len(layers) == 26 and sum(l.channels for l in layers) == 9088
    assert [l.index for l in layers if not l.is_torgb] == [0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23, 24]
    assert stylespace_channels.known_channels_fit(G)
    for known in stylespace_channels.FFHQ_CHANNELS:
        assert known.channel < layers[known.layer].channels and not layers[known.layer].is_torgb and known.source


def test_s_code_file_round_trip(G, ws, tmp_path):
    from stylecore.codes.latents import load_latents

    styles = ws_to_styles(G, ws)
    path = save_styles(tmp_path / "s.npz", ws, styles)
    assert all(torch.equal(a, b) for a, b in zip(load_styles(path), styles))
    assert torch.equal(load_latents(path, G.num_ws, G.w_dim), ws)  # other tabs read its 'w'


# --- strength 0 is the identity; every edit changes the image --------------------------------------------


def test_w_edits_identity_at_zero_and_change_the_image(G, ws):
    direction = np.random.RandomState(0).randn(G.w_dim).astype(np.float32)
    direction /= np.linalg.norm(direction)
    assert torch.equal(interfacegan.apply_direction(ws, direction, 0.0), ws)
    edited = interfacegan.apply_direction(ws, direction, 3.0, layers=[0, 1, 2])
    assert torch.equal(edited[:, 3:], ws[:, 3:]) and not torch.equal(edited[:, :3], ws[:, :3])
    assert (render(G, edited) - render(G, ws)).abs().mean() > 1e-3

    pca = ganspace.compute_pca(G, n_samples=500, n_components=8)
    assert torch.equal(ganspace.apply_component(ws, pca, 2, 0.0), ws)
    moved = ganspace.apply_component(ws, pca, 0, 2.0)
    assert (render(G, moved) - render(G, ws)).abs().mean() > 1e-3
    # two σ along a unit component: the W distance is 2·stdev
    assert torch.allclose((moved - ws)[0, 0].norm(), torch.tensor(2 * float(pca.stdev[0])), rtol=1e-4)


def test_stylespace_channel_identity_at_zero_and_changes_the_image(G, ws):
    styles = ws_to_styles(G, ws)
    std = stylespace_channels.style_std(G, n_samples=200)
    same = stylespace_channels.edit_channel(styles, 6, 3, 0.0, std)
    assert all(torch.equal(a, b) for a, b in zip(same, styles))
    edited = stylespace_channels.edit_channel(styles, 6, 3, 10.0, std)
    changed = [i for i, (a, b) in enumerate(zip(edited, styles)) if not torch.equal(a, b)]
    assert changed == [6] and torch.nonzero(edited[6] - styles[6])[:, 1].unique().tolist() == [3]
    with torch.no_grad():
        diff = synthesize_from_styles(G, edited, **KW) - synthesize_from_styles(G, styles, **KW)
    assert diff.abs().mean() > 1e-3
    with pytest.raises(ValueError, match="channel must be from 0 to 63"):
        stylespace_channels.edit_channel(styles, 6, 64, 1.0)


def test_local_edit_identity_at_zero_changes_only_the_part(G, ws, parts):
    target, reference = ws_to_styles(G, ws[:1]), ws_to_styles(G, ws[1:])
    assert all(torch.equal(a, b) for a, b in zip(local_edit.transfer_part(target, reference, parts, 0, 0.0), target))
    labels = local_edit.part_map(G, ws[:1], parts, **KW)[0]
    assert labels.shape == (G.img_resolution, G.img_resolution)
    sizes = np.bincount(labels.ravel())
    assert (sizes > 0).sum() >= 2, "k-means found a single part"
    part = int(np.argsort(sizes)[-2])  # the second-largest part: neither everything nor a speck
    mask = labels == part
    assert 0 < mask.mean() < 1
    edited = local_edit.transfer_part(target, reference, parts, part, 1.0, threshold=0.3)
    assert local_edit.part_channel_counts(parts, part, 0.3) > 0
    # only channels whose energy lies mostly in the part move, and they take the reference's values
    for t, r, e, share in zip(target, reference, edited, parts.contributions):
        moved = (e != t).any(0).numpy()
        assert not moved[share[part] < 0.3].any()
        assert torch.allclose(e[:, torch.from_numpy(moved)], r[:, torch.from_numpy(moved)])

    before = synthesize_from_styles(G, target, **KW)
    after = local_edit.render_confined(G, target, edited, mask, **KW)
    change = (after - before).abs().sum(1)[0].numpy()
    assert change[mask].mean() > 1e-3, "the part did not change"
    assert change[~mask].max() == 0, "the edit leaked outside the part"
    same = local_edit.render_confined(G, target, target, mask, **KW)
    assert torch.equal(same, before)


def test_part_selectivity_is_relative_to_the_parts_most_concentrated_channel(parts):
    """Any selectivity from 0 to 1 moves channels, on an untrained network too: 1 keeps the part's most
    concentrated channel(s), 0 takes every channel, and lower never takes fewer."""
    counts = [local_edit.part_channel_counts(parts, 0, local_edit.part_threshold(parts, 0, s))
              for s in (1.0, 0.5, 0.0)]
    assert 1 <= counts[0] <= counts[1] <= counts[2] == sum(c.shape[1] for c in parts.contributions)
    with pytest.raises(ValueError, match="selectivity must be from 0 to 1"):
        local_edit.part_threshold(parts, 0, 1.5)
    assert len(local_edit.PALETTE_NAMES) == len(local_edit.PALETTE)


def test_parts_are_cached_and_reproducible(G, parts, tmp_path, monkeypatch):
    again = local_edit.cached_parts(G, "builtin-demo", k=6, n_samples=8)
    np.testing.assert_array_equal(again.centroids, parts.centroids)
    for a, b in zip(again.contributions, parts.contributions):
        np.testing.assert_allclose(a, b, atol=1e-6)
        np.testing.assert_allclose(a.sum(0), 1.0, atol=1e-4)  # every channel's energy is split over the parts
    monkeypatch.setattr(local_edit, "compute_parts", lambda *a, **k: pytest.fail("the cache was not used"))
    cached = local_edit.cached_parts(G, "builtin-demo", k=6, n_samples=8)
    np.testing.assert_array_equal(cached.centroids, parts.centroids)
    assert local_edit.overlay_parts(np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64), int)).dtype == np.uint8


# --- GANSpace ----------------------------------------------------------------------------------------------


def test_pca_reproducible_correct_and_cached(G, monkeypatch):
    reports = []
    a = ganspace.compute_pca(G, n_samples=3000, n_components=10, seed=3, batch_size=700,
                             progress=lambda f, m: reports.append(f))
    b = ganspace.compute_pca(G, n_samples=3000, n_components=10, seed=3, batch_size=1024)
    for name in ("mean", "components", "stdev", "explained"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-5, atol=1e-6)
    assert reports and reports[-1] == 1.0 and reports == sorted(reports)
    other = ganspace.compute_pca(G, n_samples=3000, n_components=10, seed=4)
    assert not np.allclose(other.mean, a.mean)
    np.testing.assert_allclose(a.components @ a.components.T, np.eye(10), atol=1e-5)
    assert np.all(np.diff(a.explained) <= 0) and 0 < a.explained.sum() <= 1

    # the same numbers as a direct PCA of the same samples
    z = torch.from_numpy(np.random.RandomState(3).randn(3000, G.z_dim)).float()
    with torch.no_grad():
        w = G.mapping(z, None)[:, 0].double().numpy()
    values, vectors = np.linalg.eigh(np.cov(w, rowvar=False))
    np.testing.assert_allclose(a.stdev, np.sqrt(values[::-1][:10]), rtol=1e-4)
    np.testing.assert_allclose(np.abs(np.sum(a.components * vectors[:, ::-1][:, :10].T, axis=1)), 1, atol=1e-4)
    np.testing.assert_allclose(a.explained, values[::-1][:10] / values.sum(), rtol=1e-4)

    first = ganspace.cached_pca(G, "builtin-demo", n_samples=3000, n_components=10, seed=3)
    path = ganspace.pca_cache_path("builtin-demo", 3000, 10, 3)
    assert path.is_file() and path.parent.parent.name == "editing"
    monkeypatch.setattr(ganspace, "compute_pca", lambda *a, **k: pytest.fail("the cache was not used"))
    second = ganspace.cached_pca(G, "builtin-demo", n_samples=3000, n_components=10, seed=3)
    np.testing.assert_array_equal(first.components, second.components)
    assert second.variance_table(2)[1][0] == 1 and second.variance_table()[-1][2] <= 100


# --- InterFaceGAN directions: files, projection ------------------------------------------------------------


def test_conditional_projection_is_orthogonal():
    rng = np.random.RandomState(0)
    primary = rng.randn(512)
    primary /= np.linalg.norm(primary)
    conds = [rng.randn(512) + 0.5 * primary for _ in range(2)]
    out = interfacegan.project_out(primary, conds)
    for c in conds:
        assert abs(float(np.dot(out, c))) < 1e-4 * np.linalg.norm(c)
    assert np.isclose(np.linalg.norm(out), 1.0, atol=1e-5)
    assert np.dot(out, primary) > 0
    # per-layer (e4e pose) primary with a single W condition: orthogonal row by row
    rows = interfacegan.project_out(rng.randn(18, 512), [conds[0]])
    assert np.abs(rows @ conds[0]).max() < 1e-3
    with pytest.raises(ValueError, match="span"):
        interfacegan.project_out(conds[0], [conds[0] * 2])


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _pt_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_boundaries_in_their_real_layouts_from_the_hub(fake_hub, tmp_path):
    rng = np.random.RandomState(1)
    boundary = rng.randn(1, 512)  # InterFaceGAN: float64 [1, 512], unit norm
    boundary /= np.linalg.norm(boundary)
    item = assets.asset("interfacegan-smiling")
    assert item.repo_type == "space" and item.filename == "boundaries/stylegan2_ffhq/boundary_Smiling.npy"
    fake_hub.add_file(item.repo_id, item.filename, _npy_bytes(boundary), repo_type="space", revision=item.revision)
    reports = []
    path = assets.fetch_asset(item, progress=lambda done, total, message: reports.append(message))
    direction = interfacegan.load_direction(path)
    assert direction.shape == (512,) and direction.dtype == np.float32
    np.testing.assert_allclose(direction, boundary[0], rtol=1e-6)
    assert reports
    assert assets.fetch_asset(item) == path  # cached: no second download
    hub_gets = fake_hub.count("GET")
    assets.fetch_asset(item)
    assert fake_hub.count("GET") == hub_gets

    # e4e's interfacegan_directions: age.pt [1, 512], pose.pt [1, 18, 512] (per W+ row)
    fake_hub.add_file("someone/e4e-editings", "interfacegan_directions/age.pt", _pt_bytes(torch.randn(1, 512)))
    fake_hub.add_file("someone/e4e-editings", "interfacegan_directions/pose.pt", _pt_bytes(torch.randn(1, 18, 512)))
    age = interfacegan.load_direction(assets.fetch_file("someone/e4e-editings", "interfacegan_directions/age.pt"))
    pose = interfacegan.load_direction(assets.fetch_file("someone/e4e-editings", "interfacegan_directions/pose.pt"))
    assert age.shape == (512,) and pose.shape == (18, 512)
    ws = torch.zeros(1, 18, 512)
    edited = interfacegan.apply_direction(ws, pose, 2.0, layers=range(4))
    np.testing.assert_allclose(edited[0, :4].numpy(), 2 * pose[:4], rtol=1e-6)
    assert torch.equal(edited[0, 4:], ws[0, 4:])

    # a boundary for another generator, and files that are not directions
    with pytest.raises(ValueError, match="made for another generator"):
        interfacegan.apply_direction(torch.zeros(1, 14, 64), direction, 1.0)
    (tmp_path / "evil.pt").write_bytes(_pt_bytes({"x": torch.zeros(2), "obj": io.BytesIO}))  # a pickled class
    with pytest.raises(ValueError, match="safely"):
        interfacegan.load_direction(tmp_path / "evil.pt")
    (tmp_path / "obj.npy").write_bytes(_npy_bytes(np.array([{"a": 1}], dtype=object)))
    with pytest.raises(ValueError):
        interfacegan.load_direction(tmp_path / "obj.npy")
    with pytest.raises(ValueError, match="must be .npy"):
        interfacegan.load_direction(tmp_path / "x.txt")


def test_missing_hub_boundary_is_a_clear_error(fake_hub):
    from stylecore.engine.remote import ModelUnavailable

    with pytest.raises(ModelUnavailable, match="boundary_Young.npy"):
        assets.fetch_asset(assets.asset("interfacegan-young"))


def test_e4e_ganspace_pca_file_loads(tmp_path):
    comp = torch.nn.functional.normalize(torch.randn(80, 1, 512), dim=-1)
    path = tmp_path / "ffhq_pca.pt"
    path.write_bytes(_pt_bytes({"mean": torch.randn(1, 512), "comp": comp, "std": torch.rand(80) + 0.1}))
    pca = ganspace.load_pca(path)
    assert pca.components.shape == (80, 512) and pca.stdev.shape == (80,)
    assert np.isclose(pca.explained.sum(), 1.0, atol=1e-5)
    moved = ganspace.apply_component(torch.zeros(1, 18, 512), pca, 46, -2.0, layers=[4])
    np.testing.assert_allclose(moved[0, 4].numpy(), -2 * pca.stdev[46] * pca.components[46], rtol=1e-5, atol=1e-6)


def test_layer_ranges_are_checked():
    assert interfacegan.parse_layers("all", 14) == list(range(14))
    assert interfacegan.parse_layers("0-3, 8", 14) == [0, 1, 2, 3, 8]
    with pytest.raises(ValueError, match="from 0 to 13"):
        interfacegan.parse_layers("10-14", 14)


# --- StyleSpace: channels for a region ------------------------------------------------------------------------


def test_region_channels_gradient_agrees_with_perturbation(G, ws):
    mask = np.zeros((64, 64), bool)
    mask[8:32, 8:32] = True
    std = stylespace_channels.style_std(G, n_samples=200)
    layers = [9]  # b32.conv1: 64 channels, so the exact method stays quick
    grad = stylespace_channels.locate_channels(G, ws, mask, "gradient", top=64, layers=layers, std=std, probes=8, **KW)
    exact = stylespace_channels.locate_channels(G, ws, mask, "perturbation", top=64, layers=layers, std=std,
                                            perturbation=1.0, **KW)
    assert len(grad) == len(exact) == 64 and {c.layer for c in grad} == {9}
    share = {c.channel: c.share for c in exact}
    best = [share[c.channel] for c in grad[:5]]
    assert np.mean(best) > np.median(list(share.values())), (best, np.median(list(share.values())))
    assert all(0 <= c.share <= 1 for c in grad) and grad[0].score == max(c.score for c in grad)
    # deterministic for a seed
    again = stylespace_channels.locate_channels(G, ws, mask, "gradient", top=5, layers=layers, std=std, probes=8, **KW)
    assert [c.code for c in again] == [c.code for c in grad[:5]]
    with pytest.raises(ValueError, match="part of the image"):
        stylespace_channels.locate_channels(G, ws, np.zeros((64, 64)), layers=layers)
