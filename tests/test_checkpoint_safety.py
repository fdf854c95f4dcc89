"""Hostile, corrupt and truncated checkpoints are refused with the file named; the cache is robust."""
from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from conftest import parity_case
from stylecore.formats import cache
from stylecore.formats.errors import CheckpointError, UnsafeCheckpointError
from stylecore.formats.loader import load_generator
from stylecore.networks import build_generator
from writers import hostile
from writers.official_pickle import write_official_pickle


@pytest.fixture(scope="module")
def sg2_net():
    meta, state, _ = parity_case("sg2_64")
    G = build_generator(meta["architecture"], meta["init_kwargs"])
    G.load_state_dict(state, strict=True)
    return G.eval().requires_grad_(False), meta["init_kwargs"]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """A cache per test, so 'first load is not cached' never depends on test order."""
    monkeypatch.setenv("STYLECORE_CACHE", str(tmp_path / "own-cache"))


@pytest.fixture()
def official_file(tmp_path, sg2_net):
    G, kwargs = sg2_net
    path = tmp_path / "net.pkl"
    write_official_pickle(path, G, kwargs, "sg3")
    return path


def _image(G: torch.nn.Module) -> torch.Tensor:
    z = torch.randn([2, G.z_dim], generator=torch.Generator().manual_seed(0))
    return G(z, None, truncation_psi=0.7, noise_mode="const", force_fp32=True)


# ------------------------------------------------------------------------------------------------
# Code execution is refused, and nothing runs


@pytest.mark.parametrize("kind", sorted(hostile.CODE_GADGETS))
def test_code_gadgets_are_refused(tmp_path, kind):
    marker = tmp_path / "MARKER"
    path = tmp_path / f"{kind}.pkl"
    expected = hostile.CODE_GADGETS[kind](path, marker)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_generator(path)
    assert err.value.global_name == expected
    assert f"'{expected}'" in str(err.value) and str(path) in str(err.value)
    assert not marker.exists()


def test_gadget_nested_in_a_valid_official_pickle_is_refused(tmp_path, sg2_net):
    marker = tmp_path / "MARKER"
    path = tmp_path / "nested.pkl"
    expected = hostile.write_nested_in_official(path, marker, *sg2_net)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_generator(path)
    assert err.value.global_name == expected and str(path) in str(err.value)
    assert not marker.exists()
    assert not list(cache.cache_dir().glob("*.safetensors"))  # nothing of it was cached


def test_unsupported_persistence_version_is_refused(tmp_path, sg2_net, monkeypatch):
    import writers.official_pickle as writer

    G, kwargs = sg2_net
    original = writer._Writer.record

    def record_v5(self, module, init_kwargs=None, extra_state=None):
        rec = original(self, module, init_kwargs, extra_state)
        rec.meta["version"] = 5
        return rec

    monkeypatch.setattr(writer._Writer, "record", record_v5)
    path = tmp_path / "v5.pkl"
    write_official_pickle(path, G, kwargs, "sg3")
    with pytest.raises(CheckpointError, match="version 5"):
        load_generator(path)


# ------------------------------------------------------------------------------------------------
# Torch containers and defaultdicts (StyleNeRF pickles) are read as data, never built or called


def test_torch_containers_and_defaultdicts_are_read_as_data(tmp_path):
    """Real torch containers, pickled as torch pickles them, come back as records walked like any other;
    a defaultdict comes back as a plain dict."""
    import pickle
    from collections import defaultdict

    from stylecore.formats.snapshot import flatten_state_dict
    from stylecore.formats.safe_pickle import PersistentRecord, TorchContainerRecord, safe_load_pickle

    inner = torch.nn.ModuleDict()
    inner.register_buffer("b", torch.arange(3.0))
    seq = torch.nn.Sequential()
    seq.register_parameter("w", torch.nn.Parameter(torch.ones(2)))
    seq.add_module("0", inner)
    seq.add_module("1", torch.nn.ModuleList())
    path = tmp_path / "containers.pkl"
    path.write_bytes(pickle.dumps({"seq": seq, "cache": defaultdict(dict, a={"x": 1})}, protocol=4))
    obj = safe_load_pickle(path)
    record = obj["seq"]
    assert isinstance(record, TorchContainerRecord) and isinstance(record, PersistentRecord)
    assert [record.class_name, record.modules["0"].class_name, record.modules["1"].class_name] == \
        ["Sequential", "ModuleDict", "ModuleList"]
    assert record.module_sha256 == "" and not record.module_doc
    state = flatten_state_dict(record, str(path))
    assert list(state) == ["w", "0.b"] and torch.equal(state["0.b"], torch.arange(3.0))
    assert type(obj["cache"]) is dict and obj["cache"] == {"a": {"x": 1}}


@pytest.mark.parametrize("kind", sorted(hostile.CONTAINER_MISUSE))
def test_misused_containers_are_malformed(tmp_path, kind):
    path = tmp_path / f"{kind}.pkl"
    path.write_bytes(hostile.CONTAINER_MISUSE[kind])
    _expect_checkpoint_error(path)


@pytest.mark.parametrize("kind", sorted(hostile.DEFAULTDICT_FACTORIES))
def test_defaultdict_factory_must_be_a_builtin_type(tmp_path, kind):
    """An allowed callable as the factory is refused at the defaultdict, before anything could call it."""
    path = tmp_path / f"{kind}.pkl"
    path.write_bytes(hostile.DEFAULTDICT_FACTORIES[kind])
    with pytest.raises(UnsafeCheckpointError) as err:
        load_generator(path)
    assert err.value.global_name == "collections.defaultdict" and str(path) in str(err.value)


# ------------------------------------------------------------------------------------------------
# Declared sizes are checked against the bytes present, before allocating


@pytest.mark.parametrize("kind", sorted(hostile.SIZE_LIES))
def test_lying_tensor_sizes_are_refused(tmp_path, kind):
    path = tmp_path / f"{kind}.pkl"
    hostile.SIZE_LIES[kind](path)
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    assert str(path) in str(err.value)


def test_honest_storage_blob_matches_torch(tmp_path):
    """Our blob parser and torch's own weights-only reader agree on a valid blob."""
    import io

    from stylecore.formats.safe_pickle import safe_load_pickle

    path = tmp_path / "ok.pkl"
    values = torch.arange(12, dtype=torch.float32)
    blob = hostile.legacy_blob(12, data=values.numpy().tobytes())
    path.write_bytes(hostile._tensor_pickle(blob, 2, (2, 3), (4, 1)))
    ours = safe_load_pickle(path)["weight"]
    assert torch.equal(ours, values.as_strided((2, 3), (4, 1), 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage deprecation notice
        theirs = torch.load(io.BytesIO(blob), weights_only=True).tolist()
    assert torch.equal(torch.tensor(theirs), values)


# ------------------------------------------------------------------------------------------------
# Corrupt, truncated and foreign files


def _expect_checkpoint_error(path: Path, match: str = "") -> CheckpointError:
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    assert str(path) in str(err.value)
    assert not isinstance(err.value, UnsafeCheckpointError)
    if match:
        assert match in str(err.value)
    return err.value


def test_truncated_pickle(tmp_path, official_file):
    data = official_file.read_bytes()
    path = tmp_path / "truncated.pkl"
    path.write_bytes(data[: len(data) // 2])
    _expect_checkpoint_error(path, "truncated")


def test_random_bytes(tmp_path):
    g = torch.Generator().manual_seed(3)
    noise = bytes(torch.randint(0, 256, [4096], generator=g, dtype=torch.uint8).tolist())
    path = tmp_path / "random.pkl"
    path.write_bytes(b"\x17" + noise)
    _expect_checkpoint_error(path, "unrecognised file format")
    path.write_bytes(b"\x80\x04" + noise)  # looks like a pickle, is not one
    _expect_checkpoint_error(path)


def test_empty_text_missing_and_directory(tmp_path):
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    _expect_checkpoint_error(empty, "empty")
    text = tmp_path / "notes.pkl"
    text.write_text("this is not a network\n")
    _expect_checkpoint_error(text, "supported")
    _expect_checkpoint_error(tmp_path / "absent.pkl", "no such file")
    _expect_checkpoint_error(tmp_path, "not a regular file")


def test_foreign_pickle_is_not_a_checkpoint(tmp_path):
    import pickle

    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=4))
    _expect_checkpoint_error(path, "not a generator checkpoint")


def test_corrupt_zip(tmp_path):
    pytest.importorskip("stylecore.formats.rosinality")
    path = tmp_path / "broken.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02garbage")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _expect_checkpoint_error(path)


# ------------------------------------------------------------------------------------------------
# The converted-copy cache


def test_second_load_comes_from_the_cache(official_file, monkeypatch):
    first = load_generator(official_file)
    assert first.checkpoint_info["cached"] is False
    key = first.checkpoint_info["sha256"]
    tensors, meta = cache.entry_paths(key)
    assert tensors.exists() and json.loads(meta.read_text())["architecture"] == "stylegan2"

    # The second load neither rehashes (index by size+mtime) nor re-reads the pickle.
    monkeypatch.setattr(cache.hashlib, "sha256", lambda *a: pytest.fail("file was rehashed"))
    monkeypatch.setattr("stylecore.formats.loader.read_checkpoint", lambda *a: pytest.fail("pickle was re-read"))
    second = load_generator(official_file)
    assert second.checkpoint_info["cached"] is True and second.checkpoint_info["sha256"] == key
    assert torch.equal(_image(first), _image(second))


@pytest.mark.parametrize("damage", ["tensors_garbage", "tensors_truncated", "json_garbage"])
def test_corrupt_cache_entry_is_discarded_and_rebuilt(official_file, damage):
    reference = _image(load_generator(official_file))
    key = cache.file_sha256(official_file)
    tensors, meta = cache.entry_paths(key)
    if damage == "tensors_garbage":  # same size, unreadable header
        tensors.write_bytes(b"\xff" * tensors.stat().st_size)
    elif damage == "tensors_truncated":
        tensors.write_bytes(tensors.read_bytes()[:1000])
    else:
        meta.write_text("{not json")
    with pytest.warns(RuntimeWarning, match="discarding corrupt entry"):
        again = load_generator(official_file)
    assert again.checkpoint_info["cached"] is False
    assert torch.equal(_image(again), reference)
    third = load_generator(official_file)
    assert third.checkpoint_info["cached"] is True
    assert torch.equal(_image(third), reference)


def test_cache_path_that_is_a_file(official_file, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("occupied")
    monkeypatch.setenv("STYLECORE_CACHE", str(blocker))
    with pytest.warns(RuntimeWarning, match="stylecore cache"):
        G = load_generator(official_file)
    assert G.checkpoint_info["cached"] is False and _image(G).isfinite().all()
    assert blocker.read_text() == "occupied"


def test_failing_cache_write_leaves_no_temp_files(official_file, tmp_path, monkeypatch):
    import safetensors.torch

    cache_root = tmp_path / "cache"
    monkeypatch.setenv("STYLECORE_CACHE", str(cache_root))

    def disk_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    with pytest.warns(RuntimeWarning, match="No space left"):
        G = load_generator(official_file)
    assert G.checkpoint_info["cached"] is False and _image(G).isfinite().all()
    leftovers = sorted(p.name for p in cache_root.iterdir() if p.name != "index.json")
    assert leftovers == []
    monkeypatch.undo()
    monkeypatch.setenv("STYLECORE_CACHE", str(cache_root))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_generator(official_file).checkpoint_info["cached"] is False  # written this time
    assert load_generator(official_file).checkpoint_info["cached"] is True


def test_modified_file_is_rehashed(official_file, sg2_net):
    first = load_generator(official_file)
    G, kwargs = sg2_net
    write_official_pickle(official_file, G, kwargs, "ada")  # different bytes, same path
    os.utime(official_file, ns=(1, 1))
    second = load_generator(official_file)
    assert second.checkpoint_info["sha256"] != first.checkpoint_info["sha256"]
    assert second.checkpoint_info["cached"] is False and "ADA" in second.checkpoint_info["source"]


def test_legacy_torch_save_goes_to_the_torch_reader(tmp_path):
    """A pre-1.6 (non-zip) torch.save file starts like a pickle; it is routed by its magic number."""
    pytest.importorskip("stylecore.formats.rosinality")
    path = tmp_path / "old.pt"
    torch.save({"foo": torch.zeros(2)}, path, _use_new_zipfile_serialization=False)
    _expect_checkpoint_error(path, "torch checkpoint")
