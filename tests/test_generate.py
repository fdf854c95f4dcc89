"""Seeds, labels, latent files and the generation functions behind the generation tab."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stylecore.engine.demo import build_demo_generator
from stylecore.codes.generate import (GenerationSettings, generate_images, image_grid, make_transform, style_mix,
                                to_uint8)
from stylecore.codes.latents import class_labels, load_latents, parse_seeds, save_latents, z_from_seeds


@pytest.fixture(scope="module")
def sg2():
    return build_demo_generator("stylegan2").eval()


@pytest.fixture(scope="module")
def sg3():
    return build_demo_generator("stylegan3").eval()


@pytest.mark.parametrize("text,seeds", [
    ("0-3, 42", [0, 1, 2, 3, 42]), ("7", [7]), (" 5 ; 2..3 ", [5, 2, 3]), ("1, 1, 0 - 1", [1, 0]), (9, [9]),
])
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text,message", [
    ("", "no seeds"), ("abc", "cannot read"), ("9-2", "backwards"), ("-5", "out of range"),
    ("4294967296", "out of range"), ("0-5000", "at most 256"), ("1.5", "cannot read"),
])
def test_parse_seeds_rejects_bad_input(text, message):
    with pytest.raises(ValueError, match=message):
        parse_seeds(text)


def test_seed_gives_the_official_z():
    z = z_from_seeds([3], 8)
    assert np.allclose(z.numpy()[0], np.random.RandomState(3).randn(8).astype(np.float32))


def test_class_labels_are_one_hot_and_checked():
    assert class_labels(0, None, 2) is None
    assert class_labels(3, 2, 2).tolist() == [[0, 0, 1], [0, 0, 1]]
    with pytest.raises(ValueError, match="classes 0 to 2"):
        class_labels(3, 3, 1)
    with pytest.raises(ValueError, match="conditional"):
        class_labels(3, None, 1)


def test_latents_round_trip_and_validation(tmp_path):
    ws = torch.randn(2, 10, 64)
    path = save_latents(tmp_path / "codes.npz", ws, seed=3)
    assert torch.equal(load_latents(path, num_ws=10, w_dim=64), ws)
    np.savez(tmp_path / "w.npz", w=np.zeros((1, 64), np.float32))
    assert load_latents(tmp_path / "w.npz", num_ws=10).shape == (1, 10, 64)
    np.savez(tmp_path / "bad.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="no array named 'w'"):
        load_latents(tmp_path / "bad.npz")
    np.savez(tmp_path / "nan.npz", w=np.full((1, 10, 64), np.nan, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        load_latents(tmp_path / "nan.npz")
    with pytest.raises(ValueError, match="does not fit"):
        load_latents(path, num_ws=18, w_dim=512)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz file \\(not a zip archive") as info:
        load_latents(tmp_path / "junk.npz")
    assert "allow_pickle" not in str(info.value)  # numpy's advice to load it unsafely is not for users
    np.save(tmp_path / "plain.npy", np.zeros((1, 64), np.float32))
    (tmp_path / "plain.npz").write_bytes((tmp_path / "plain.npy").read_bytes())  # a .npy named .npz
    with pytest.raises(ValueError, match="plain.npz: not a readable .npz file \\(not a zip archive"):
        load_latents(tmp_path / "plain.npz")


def test_generate_images_is_deterministic_per_seed(sg2):
    a = generate_images(sg2, [0, 1, 2], GenerationSettings(truncation_psi=0.7), batch_size=2)
    b = generate_images(sg2, [2], GenerationSettings(truncation_psi=0.7))
    assert len(a) == 3 and a[0].shape == (64, 64, 3) and a[0].dtype == np.uint8
    assert np.array_equal(a[2], b[0])
    assert not np.array_equal(a[0], a[1])


def test_truncation_zero_gives_the_average_image(sg2):
    imgs = generate_images(sg2, [0, 1], GenerationSettings(truncation_psi=0.0))
    assert np.array_equal(imgs[0], imgs[1])


def test_progress_is_reported(sg2):
    seen = []
    generate_images(sg2, [0, 1, 2, 3], batch_size=2, progress=lambda f, m: seen.append(f))
    assert seen == [0.5, 1.0]


@pytest.mark.parametrize("settings,message", [
    (GenerationSettings(truncation_psi=float("nan")), "psi"),
    (GenerationSettings(truncation_psi=5), "psi"),
    (GenerationSettings(truncation_cutoff=99), "cutoff"),
    (GenerationSettings(noise_mode="loud"), "noise mode"),
    (GenerationSettings(translate=(float("inf"), 0)), "finite"),
])
def test_bad_settings_are_rejected(sg2, settings, message):
    with pytest.raises(ValueError, match=message):
        generate_images(sg2, [0], settings)


def test_translate_needs_stylegan3(sg2):
    with pytest.raises(ValueError, match="only with StyleGAN3"):
        generate_images(sg2, [0], GenerationSettings(translate=(0.1, 0)))


def test_stylegan3_translate_moves_content_and_leaves_the_model_unchanged(sg3):
    before = sg3.synthesis.input.transform.clone()
    base = generate_images(sg3, [0])[0].astype(float)
    moved = generate_images(sg3, [0], GenerationSettings(translate=(0.25, 0)))[0].astype(float)
    assert torch.equal(sg3.synthesis.input.transform, before)
    assert np.abs(base - moved).mean() > 1
    # Shifting by a quarter of the width moves the picture by 16 of its 64 pixels.
    shift = np.abs(base[:, :-16] - moved[:, 16:]).mean()
    assert shift < np.abs(base - moved).mean()


def test_make_transform_is_the_inverse_of_the_motion():
    m = make_transform((0.125, -0.25), 30)
    a = np.radians(30)
    motion = np.array([[np.cos(a), np.sin(a), 0.125], [-np.sin(a), np.cos(a), -0.25], [0, 0, 1]])
    assert np.allclose(m @ motion, np.eye(3))


def test_style_mix_grid_layout(sg2):
    grid = style_mix(sg2, [0, 1], [2, 3, 4], col_layers=range(0, 4))
    assert grid.shape == (3 * 64, 4 * 64, 3)
    cols = generate_images(sg2, [2, 3, 4])
    assert np.array_equal(grid[:64, 64:128], cols[0])
    # Taking every layer from the column seed reproduces the column image.
    # (Batches of different sizes may round one level apart.)
    full = style_mix(sg2, [0], [2], col_layers=range(sg2.num_ws))
    assert np.abs(full[64:, 64:].astype(int) - cols[0]).max() <= 1
    with pytest.raises(ValueError, match="layers"):
        style_mix(sg2, [0], [1], col_layers=[99])


def test_to_uint8_rounds_like_the_official_scripts():
    x = torch.tensor([-1.0, 0.0, 0.999, 1.0]).reshape(1, 1, 1, 4)
    assert to_uint8(x).tolist() == [[[0, 128, 255, 255]]]


def test_image_grid_pads_to_a_rectangle():
    imgs = [np.full((2, 2, 3), i, np.uint8) for i in range(5)]
    assert image_grid(imgs).shape == (4, 6, 3)  # 3 columns, 2 rows
    assert image_grid(imgs, cols=5).shape == (2, 10, 3)
