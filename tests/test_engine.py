"""stylecore.engine.manager: the model manager (load once, LRU within a memory budget, devices), memory
sizes, offline behaviour and download progress through a fake Hub."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

from stylecore.engine import hub
from stylecore.engine.manager import ModelManager, module_bytes, parse_bytes, resolve_device
from stylecore.engine.remote import ModelUnavailable
from stylecore.engine.zoo import Zoo

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


LOAD_THREADS = 16
LOAD_ROUNDS = 25


def _fingerprint(model) -> torch.Tensor:
    """The image of a fixed z (constant noise): tells the tiny networks (different seeds) apart."""
    with torch.no_grad():
        z = torch.linspace(-1, 1, model.G.z_dim).unsqueeze(0)
        return model.G.synthesis(model.G.mapping(z, None), noise_mode="const", force_fp32=True)


def test_memory_budget_under_concurrent_load(tiny_files, tmp_path, monkeypatch):
    """16 threads ask for 4 models (room for 2) in random order. What the manager guarantees:
    the models it keeps never add up to more than the budget (checked by a sampler during the run
    and by each thread right after its get returns); a model is never loaded by two threads at once
    (one lock per model); every get returns the model asked for. Not counted in the budget: the
    loads in flight (at most one per model) and evicted models that requests still hold."""
    files, size = tiny_files
    files = dict(files, d=write_tiny(tmp_path / "tiny-d.pkl", 3)[0])
    zoo = local_zoo(files)
    ids = sorted(f"tiny-{name}" for name in files)
    reference = {i: _fingerprint(ModelManager(zoo, device="cpu").get(i)) for i in ids}
    for a in ids:  # the fingerprint tells every pair apart
        assert all(not torch.equal(reference[a], reference[b]) for b in ids if b != a)
    budget = int(size * 2.5)
    manager = ModelManager(zoo, device="cpu", memory_budget=budget)

    real_load = manager._load
    in_flight: dict[str, int] = {}
    peaks = {"same_model": 0, "loads": 0, "kept_plus_loading": 0}
    calls: list[str] = []
    count_lock = threading.Lock()

    def counted_load(card, progress):  # the real load, with a count of the loads running at once
        with count_lock:
            calls.append(card.id)
            in_flight[card.id] = in_flight.get(card.id, 0) + 1
            peaks["same_model"] = max(peaks["same_model"], in_flight[card.id])
            peaks["loads"] = max(peaks["loads"], sum(in_flight.values()))
        try:
            time.sleep(0.01)  # widen the window in which other threads run into this load
            return real_load(card, progress)
        finally:
            with count_lock:
                in_flight[card.id] -= 1

    monkeypatch.setattr(manager, "_load", counted_load)
    done = threading.Event()
    samples = {"n": 0, "max_used": 0, "max_kept": 0}
    problems: list[str] = []

    def sampler():
        while not done.is_set():
            used, kept = manager.used_bytes(), manager.loaded_ids()
            with count_lock:
                loading = sum(in_flight.values())
            samples["n"] += 1
            samples["max_used"] = max(samples["max_used"], used)
            samples["max_kept"] = max(samples["max_kept"], len(kept))
            peaks["kept_plus_loading"] = max(peaks["kept_plus_loading"], len(kept) + loading)
            if used > budget or len(kept) > 2 or len(set(kept)) != len(kept):
                problems.append(f"sampler: {used} bytes kept ({kept}), budget {budget}")
            time.sleep(0.0005)

    barrier = threading.Barrier(LOAD_THREADS)

    def user(k: int):
        import random

        rng = random.Random(k)
        barrier.wait(timeout=30)
        for _ in range(LOAD_ROUNDS):
            want = rng.choice(ids)
            model = manager.get(want)
            used = manager.used_bytes()
            if used > budget:
                problems.append(f"thread {k}: {used} bytes kept after get({want}), budget {budget}")
            if model.card.id != want or not torch.equal(_fingerprint(model), reference[want]):
                problems.append(f"thread {k}: get({want}) returned {model.card.id}, or a network that is not it")

    watcher = threading.Thread(target=sampler, daemon=True)
    watcher.start()
    threads = [threading.Thread(target=user, args=(k,)) for k in range(LOAD_THREADS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        done.set()
        watcher.join(timeout=10)
    assert not any(t.is_alive() for t in threads), "a thread hung in ModelManager.get"
    assert not problems, "\n".join(problems[:10])
    print(f"\nbudget under load: {len(calls)} loads for {LOAD_THREADS * LOAD_ROUNDS} gets, {samples['n']} samples, "
          f"kept at most {samples['max_kept']} models ({samples['max_used']} of {budget} bytes); at most "
          f"{peaks['loads']} loads at once, kept + loading at most {peaks['kept_plus_loading']} models")
    assert samples["n"] > 100 and samples["max_used"] <= budget and samples["max_kept"] == 2
    assert peaks["same_model"] == 1, "a model was loaded by two threads at once"
    assert sum(manager.load_count.values()) == len(calls) > len(ids), "no evictions: the test checked nothing"
    assert {i: calls.count(i) for i in set(calls)} == manager.load_count
    assert manager.used_bytes() <= budget and len(manager.loaded_ids()) == 2


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
    with pytest.raises(ModelUnavailable, match="does not exist") as info:
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
    with pytest.raises(ModelUnavailable) as info:
        manager.get("hub-tiny")
    err = info.value
    assert err.kind == "offline" and "offline" in str(err)
    assert "HF_HUB_OFFLINE=1" in str(err) and f"{REPO}/{FILE}" in str(err)
    assert fake_hub.count() == 0, "offline mode must not send a single request"
    assert "hub-tiny" not in manager.loaded_ids() and manager.get("demo") is manager.get("demo")
    assert hub.download_state(zoo.get("hub-tiny")) == "not downloaded"


def test_networks_and_tables_share_the_generators_budget(tiny_files):
    """Every kind of loaded thing counts against one budget and leaves least recently used first."""
    files, size = tiny_files
    manager = ModelManager(local_zoo(files), device="cpu", memory_budget=int(size * 2.5))
    manager.get("tiny-a")
    table = manager.resource(("table", "tiny-a"), lambda: torch.zeros(size // 4))  # about `size` bytes
    assert manager.resource(("table", "tiny-a"), lambda: pytest.fail("built twice")) is table
    encoder = manager.resource(("encoder", "e1"), lambda: torch.nn.Linear(size // 10, 1, bias=False))
    table_bytes, encoder_bytes = 4 * (size // 4), 4 * (size // 10)
    assert manager.used_bytes() == size + table_bytes + encoder_bytes
    manager.get("tiny-b")  # over budget: the least recently used, tiny-a, goes
    assert manager.loaded_ids() == ["tiny-b"]
    assert manager.resource_keys() == [("table", "tiny-a"), ("encoder", "e1")]
    assert manager.resource(("encoder", "e1"), lambda: pytest.fail("evicted too early")) is encoder
    manager.get("tiny-c")  # now the table is the least recently used
    assert manager.loaded_ids() == ["tiny-b", "tiny-c"] and manager.resource_keys() == [("encoder", "e1")]
    assert manager.used_bytes() == 2 * size + encoder_bytes <= manager.memory_budget


def test_a_resource_key_names_its_kind():
    manager = ModelManager(Zoo([]), device="cpu")
    with pytest.raises(TypeError, match="tuples that start with the kind"):
        manager.resource("clip", lambda: None)
