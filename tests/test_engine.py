"""stylecore.engine: the model manager (load once, LRU within a memory budget, devices), memory
sizes, offline behaviour and download progress through a fake Hub."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

from stylecore import hub
from stylecore.engine import ModelManager, module_bytes, parse_bytes, resolve_device
from stylecore.zoo import Zoo

TINY_KWARGS = dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, mapping_kwargs={"num_layers": 2},
                   channel_base=256, channel_max=16, num_fp16_res=0, conv_clamp=256)
REPO, FILE = "owner/engine-tiny", "tiny-16x16.pkl"


def write_tiny(path: Path, seed: int) -> tuple[Path, int]:
    """A tiny official StyleGAN2 pickle; returns its path and the network's parameter+buffer bytes."""
    from stylecore.networks import build_generator
    from writers.official_pickle import write_official_pickle

    torch.manual_seed(seed)
    G = build_generator("stylegan2", TINY_KWARGS).eval().requires_grad_(False)
    write_official_pickle(path, G, TINY_KWARGS, "sg3")
    return path, module_bytes(G)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> tuple[dict[str, Path], int]:
    folder = tmp_path_factory.mktemp("engine-nets")
    files, size = {}, 0
    for seed, name in enumerate(("a", "b", "c")):
        files[name], size = write_tiny(folder / f"tiny-{name}.pkl", seed)
    return files, size


def local_zoo(files: dict[str, Path]) -> Zoo:
    zoo = Zoo()
    for name, path in files.items():
        zoo.add_spec(f"tiny-{name}={path}")
    return zoo


# -- devices and sizes ---------------------------------------------------------------------------


def test_device_cpu():
    manager = ModelManager(Zoo(), device="cpu")
    assert manager.device == torch.device("cpu")
    model = manager.get("demo")
    assert model.device.type == "cpu" and model.force_fp32
    assert {p.device.type for p in model.G.parameters()} == {"cpu"}
    assert model.untrained and model.nbytes == module_bytes(model.G) > 0


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU is usable here; use --device cpu or auto"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="--device cuda"):
        ModelManager(Zoo(), device="cuda")
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: 'cuda' is valid here")
def test_cuda_without_a_gpu_here():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda")


@pytest.mark.parametrize("text,expected", [
    ("8GB", 8 * 1024 ** 3), ("512 MiB", 512 * 1024 ** 2), ("1e9", 10 ** 9), ("100", 100), ("2K", 2048),
    ("1.5G", int(1.5 * 1024 ** 3)), (" 3 TB ", 3 * 1024 ** 4), ("64B", 64), ("4KiB", 4096),
])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "8 PB", "-1GB", "GB"])
def test_parse_bytes_rejects_bad_sizes(text):
    with pytest.raises(ValueError, match="cannot read memory size"):
        parse_bytes(text)


# -- loading once, LRU ---------------------------------------------------------------------------------


def test_concurrent_gets_load_once(tiny_files, monkeypatch):
    files, _ = tiny_files
    manager = ModelManager(local_zoo(files), device="cpu")
    real_load = manager._load
    calls: list[str] = []

    def slow_load(card, progress):
        calls.append(card.id)
        time.sleep(0.3)  # keep the other threads waiting on the model's lock
        return real_load(card, progress)

    monkeypatch.setattr(manager, "_load", slow_load)
    barrier = threading.Barrier(8)
    results: list = []
    errors: list = []

    def worker():
        try:
            barrier.wait(timeout=10)
            results.append(manager.get("tiny-a"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len(results) == 8 and all(r is results[0] for r in results)
    assert calls == ["tiny-a"] and manager.load_count == {"tiny-a": 1}
    assert manager.loaded_ids() == ["tiny-a"]


def test_lru_eviction_when_the_budget_fits_one_model(tiny_files):
    files, size = tiny_files
    manager = ModelManager(local_zoo(files), device="cpu", memory_budget=int(size * 1.5))
    a = manager.get("tiny-a")
    assert a.nbytes == size and manager.loaded_ids() == ["tiny-a"]
    manager.get("tiny-b")
    assert manager.loaded_ids() == ["tiny-b"] and manager.used_bytes() == size
    again = manager.get("tiny-a")
    assert manager.loaded_ids() == ["tiny-a"] and again is not a
    assert manager.load_count == {"tiny-a": 2, "tiny-b": 1}


def test_lru_evicts_the_least_recently_used(tiny_files):
    files, size = tiny_files
    manager = ModelManager(local_zoo(files), device="cpu", memory_budget=int(size * 2.5))
    manager.get("tiny-a")
    manager.get("tiny-b")
    manager.get("tiny-a")  # a is now more recent than b
    manager.get("tiny-c")
    assert manager.loaded_ids() == ["tiny-a", "tiny-c"]
    assert manager.load_count == {"tiny-a": 1, "tiny-b": 1, "tiny-c": 1}
    assert manager.used_bytes() == 2 * size <= manager.memory_budget


def test_a_model_larger_than_the_budget_still_loads(tiny_files):
    files, size = tiny_files
    manager = ModelManager(local_zoo(files), device="cpu", memory_budget=size // 2)
    manager.get("tiny-a")
    manager.get("tiny-b")
    assert manager.loaded_ids() == ["tiny-b"]  # the newest is kept even over budget; the rest go


def test_unknown_id_and_missing_local_file(tmp_path):
    zoo = Zoo()
    zoo.add_spec(f"gone={tmp_path / 'not-here.pkl'}")
    manager = ModelManager(zoo, device="cpu")
    with pytest.raises(KeyError, match="Unknown model 'dem'. Did you mean 'demo'"):
        manager.get("dem")
    with pytest.raises(hub.ModelUnavailable, match="does not exist") as info:
        manager.get("gone")
    assert info.value.kind == "missing-local-file"
    assert manager.loaded_ids() == [] and manager.load_count == {}


# -- the Hub: progress and offline ------------------------------------------------------------------


def test_progress_is_reported_during_a_hub_download(fake_hub, tiny_files):
    files, _ = tiny_files
    fake_hub.add_file(REPO, FILE, files["a"].read_bytes())
    zoo = Zoo()
    zoo.add_spec(f"hub-tiny=hf://{REPO}/{FILE}")
    manager = ModelManager(zoo, device="cpu")
    calls: list[tuple[float, str]] = []
    model = manager.get("hub-tiny", progress=lambda fraction, message: calls.append((fraction, message)))
    assert fake_hub.count(server="cdn") == 1
    fractions = [f for f, _ in calls]
    assert all(b >= a - 1e-9 for a, b in zip(fractions, fractions[1:])), calls  # never goes backwards
    assert all(0.0 <= f <= 1.0 + 1e-9 for f in fractions), calls
    messages = [m for _, m in calls]
    assert any(m == f"downloading {REPO}/{FILE}" for m in messages), messages
    assert any(m.startswith("reading ") for m in messages) and calls[-1] == (1.0, "hub-tiny ready")
    assert model.G.img_resolution == 16 and not model.untrained

    fake_hub.reset_counts()
    calls.clear()
    assert manager.get("hub-tiny", progress=lambda f, m: calls.append((f, m))) is model
    assert calls == [] and fake_hub.count() == 0  # already loaded: no request, nothing to report


def test_offline_demo_works_and_hub_models_say_why_not(fake_hub, tiny_files, monkeypatch):
    files, _ = tiny_files
    fake_hub.add_file(REPO, FILE, files["a"].read_bytes())
    fake_hub.add_file(REPO, "cached.pkl", files["b"].read_bytes())
    zoo = Zoo()
    zoo.add_spec(f"hub-tiny=hf://{REPO}/{FILE}")
    zoo.add_spec(f"hub-cached=hf://{REPO}/cached.pkl")
    hub.fetch(zoo.get("hub-cached"))  # downloaded while online
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake_hub.reset_counts()

    manager = ModelManager(zoo, device="cpu")
    assert manager.get("demo").untrained
    assert manager.get("hub-cached").G.img_resolution == 16  # in the cache: usable offline
    with pytest.raises(hub.ModelUnavailable) as info:
        manager.get("hub-tiny")
    err = info.value
    assert err.kind == "offline" and "offline" in str(err)
    assert "HF_HUB_OFFLINE=1" in str(err) and f"{REPO}/{FILE}" in str(err)
    assert fake_hub.count() == 0, "offline mode must not send a single request"
    assert "hub-tiny" not in manager.loaded_ids() and manager.get("demo") is manager.get("demo")
    assert hub.download_state(zoo.get("hub-tiny")) == "not downloaded"
