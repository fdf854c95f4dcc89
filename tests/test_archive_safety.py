"""Hostile zip containers: .pt checkpoints and .npz codes with members that climb out of the archive
or expand far beyond their size (zip bombs) are refused before anything is decompressed."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

from stylecore.formats.errors import CheckpointError
from stylecore.formats.rosinality import load_torch_checkpoint
from stylecore.codes.latents import MAX_CODES_BYTES, load_latents


def _zeros_member(archive: zipfile.ZipFile, name: str, size: int) -> None:
    """A deflated member of `size` zero bytes, written in chunks (a few KB on disk per MB)."""
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with archive.open(info, "w", force_zip64=True) as member:
        chunk = bytes(1 << 20)
        for _ in range(size // len(chunk)):
            member.write(chunk)


def _deflated(path, members: dict[str, int]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, size in members.items():
            _zeros_member(archive, name, size)


def test_checkpoint_zip_bomb_is_refused_before_loading(tmp_path):
    path = tmp_path / "bomb.pt"
    _deflated(path, {"archive/data.pkl": 1 << 20, "archive/data/0": 64 << 20})
    assert path.stat().st_size < 1 << 20
    with pytest.raises(CheckpointError, match="zip bomb") as info:
        load_torch_checkpoint(str(path))
    assert "bomb.pt" in str(info.value)


@pytest.mark.parametrize("member", ["../../escape/data.pkl", "/abs/data.pkl", "C:/windows/data.pkl"])
def test_checkpoint_member_outside_the_archive_is_refused(tmp_path, member):
    good = tmp_path / "good.pt"
    torch.save({"g_ema": {"x": torch.zeros(2)}}, good)
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            dst.writestr(member if info.filename.endswith("data.pkl") else info.filename, src.read(info))
    with pytest.raises(CheckpointError, match="outside the archive"):
        load_torch_checkpoint(str(bad))


def test_a_real_torch_checkpoint_still_loads(tmp_path):
    path = tmp_path / "ok.pt"
    torch.save({"g_ema": {"w": torch.arange(4.0)}}, path)
    assert torch.equal(load_torch_checkpoint(str(path))["g_ema"]["w"], torch.arange(4.0))


def test_codes_zip_bomb_is_refused(tmp_path):
    path = tmp_path / "codes.npz"
    _deflated(path, {"w.npy": MAX_CODES_BYTES + (1 << 20)})
    with pytest.raises(ValueError, match="zip bomb"):
        load_latents(path)


def test_codes_member_outside_the_archive_is_refused(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, w=np.zeros((1, 10, 64), np.float32))
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        dst.writestr("../w.npy", src.read("w.npy"))
    with pytest.raises(ValueError, match="outside the archive"):
        load_latents(bad)
    assert load_latents(good, num_ws=10, w_dim=64).shape == (1, 10, 64)
