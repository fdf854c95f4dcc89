"""NVIDIA's networks over https: downloads through pooch against a local server standing in for NGC,
with progress, verification, clear errors and nothing half-written left behind."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

from fakengc import NGC_FILES, NGC_PREFIX, FakeNGC
from stylecore.engine import downloads, hub
from stylecore.engine.demo import DEMO_KWARGS, build_demo_generator
from stylecore.engine.manager import ModelManager
from stylecore.engine.remote import ModelUnavailable
from stylecore.engine.zoo import ModelCard, Zoo

SG3_PATH = NGC_FILES.format(family="stylegan3", name="stylegan3-t-ffhqu-256x256.pkl")
PAYLOAD = b"\x80\x04" + bytes(range(256)) * 4000  # a pickle's first bytes, about 1 MB


def card(path: str = SG3_PATH, **kw) -> ModelCard:
    return ModelCard(id=kw.pop("id", "ngc-test"), url=NGC_PREFIX + path, **kw)


@pytest.fixture
def ngc(tmp_path, monkeypatch):
    """The fake NGC, NVIDIA's URLs mirrored to it, a fresh download cache, no offline switch, short timeouts."""
    monkeypatch.setenv("STYLECORE_CACHE", str(tmp_path / "cache" / "converted"))
    monkeypatch.setenv("STYLECORE_URL_TIMEOUT", "2")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(downloads, "_verified", {})
    with FakeNGC() as server:
        monkeypatch.setenv("STYLECORE_URL_MIRRORS", server.mirrors)
        yield server


def leftovers() -> list:
    folder = downloads.downloads_dir()
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_progress_record_and_cache_hit(ngc):
    ngc.add(SG3_PATH, PAYLOAD)
    seen = []
    c = card()
    assert hub.download_state(c) == "not downloaded"
    path = hub.fetch(c, progress=lambda done, total, msg: seen.append((done, total, msg)))
    assert path.read_bytes() == PAYLOAD and hub.download_state(c) == "downloaded"
    assert any(total == len(PAYLOAD) and "downloading stylegan3-t-ffhqu-256x256.pkl" in msg for _, total, msg in seen)
    assert seen[-1][0] == seen[-1][1] == len(PAYLOAD) and "ready" in seen[-1][2]
    record = json.loads(path.with_name(path.name + ".json").read_text())
    assert record == {**record, "url": c.url, "size": len(PAYLOAD), "sha256": hashlib.sha256(PAYLOAD).hexdigest()}
    assert [name for name in leftovers() if name.endswith(".part")] == []
    requests = len(ngc.log)
    assert hub.fetch(c) == path and len(ngc.log) == requests  # a cache hit asks nothing


def test_dropped_connection_restarts_cleanly(ngc):
    ngc.add(SG3_PATH, PAYLOAD, "drop", drops=1)
    path = hub.fetch(card())
    assert path.read_bytes() == PAYLOAD
    gets = [entry for entry in ngc.log if entry[0] == "GET"]
    assert len(gets) == 2 and gets[1][2] is None  # restarted from the first byte, never glued to a partial file
    assert [name for name in leftovers() if name.endswith(".part")] == []


def test_connection_that_keeps_dropping_leaves_nothing(ngc):
    ngc.add(SG3_PATH, PAYLOAD, "drop", drops=99)
    with pytest.raises(ModelUnavailable, match="broke off 3 times") as err:
        hub.fetch(card())
    assert err.value.kind == "incomplete" and "api.ngc.nvidia.com" in str(err.value)
    assert leftovers() == [] and hub.download_state(card()) == "not downloaded"


def test_server_offers_ranges_like_ngc_storage(ngc):
    """The stand-in answers Range requests with 206 (as NGC's storage does), so a client could resume."""
    import requests

    ngc.add(SG3_PATH, PAYLOAD)
    answer = requests.get(ngc.url + SG3_PATH, headers={"Range": "bytes=1000-"}, timeout=5)
    assert answer.status_code == 206 and answer.content == PAYLOAD[1000:]
    assert answer.headers["Content-Range"] == f"bytes 1000-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"


@pytest.mark.parametrize("behaviour, words", [("json", "a JSON document"), ("html", "an HTML page")])
def test_status_page_instead_of_the_file(ngc, behaviour, words):
    ngc.add(SG3_PATH, behaviour=behaviour)
    with pytest.raises(ModelUnavailable, match=words) as err:
        hub.fetch(card())
    assert err.value.kind == "not-a-checkpoint" and card().url in str(err.value)
    assert "nothing was cached" in str(err.value)
    assert leftovers() == []


def test_missing_file_and_slow_server(ngc):
    with pytest.raises(ModelUnavailable, match="404") as err:
        hub.fetch(card())
    assert err.value.kind == "file-not-found"
    ngc.add(SG3_PATH, PAYLOAD, "slow", delay=4)
    with pytest.raises(ModelUnavailable, match="did not answer within 2 s") as err:
        hub.fetch(card())
    assert err.value.kind == "timeout" and leftovers() == []


def test_redirect_is_followed(ngc):
    ngc.add("/storage/blob.pkl", PAYLOAD)
    ngc.add(SG3_PATH, behaviour="redirect", target=ngc.url + "/storage/blob.pkl")
    assert hub.fetch(card()).read_bytes() == PAYLOAD


def test_hosts_not_allowed_and_plain_http_are_refused(ngc):
    with pytest.raises(ModelUnavailable, match="not an allowed host") as err:
        hub.fetch(ModelCard(id="x", url="https://files.example.invalid/net.pkl"))
    assert err.value.kind == "not-allowed" and "allowed_hosts" in str(err.value)
    with pytest.raises(ModelUnavailable, match="is not https"):
        hub.fetch(ModelCard(id="y", url="http://api.ngc.nvidia.com.invalid/net.pkl"))
    assert not any("invalid" in path for _, path, _ in ngc.log)


def test_offline_mode_uses_the_cache_and_nothing_else(ngc, monkeypatch):
    ngc.add(SG3_PATH, PAYLOAD)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="offline mode is on") as err:
        hub.fetch(card())
    assert err.value.kind == "offline" and ngc.log == []
    monkeypatch.delenv("HF_HUB_OFFLINE")
    path = hub.fetch(card())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.fetch(card()) == path


def test_a_changed_cached_file_is_caught_at_the_next_use(ngc, monkeypatch):
    ngc.add(SG3_PATH, PAYLOAD)
    path = hub.fetch(card())
    path.write_bytes(PAYLOAD[:-4] + b"evil")  # same size, other bytes
    monkeypatch.setattr(downloads, "_verified", {})  # a new process
    with pytest.raises(ModelUnavailable, match="no longer matches what was downloaded") as err:
        hub.fetch(card())
    assert err.value.kind == "corrupt" and not path.exists()
    assert hub.fetch(card()).read_bytes() == PAYLOAD  # downloaded anew


def test_card_hash_and_size_must_match(ngc):
    ngc.add(SG3_PATH, PAYLOAD)
    wrong = card(sha256="0" * 64)
    with pytest.raises(ModelUnavailable, match="not the one this card was made for") as err:
        hub.fetch(wrong)
    assert err.value.kind == "corrupt" and leftovers() == []
    with pytest.raises(ModelUnavailable, match="the card expects 5 bytes"):
        hub.fetch(card(size=5))
    right = card(sha256=hashlib.sha256(PAYLOAD).hexdigest(), size=len(PAYLOAD))
    assert hub.fetch(right).read_bytes() == PAYLOAD


def test_official_layout_stylegan3_pickle_loads_through_the_engine(ngc, tmp_path):
    """The whole path: an official-layout StyleGAN3 pickle (real SG3-10 globals) served as NGC serves it,
    downloaded, verified, converted and generating the same image as the network that was written."""
    from writers.official_pickle import write_official_pickle

    G = build_demo_generator("stylegan3").eval()
    local = tmp_path / "sg3.pkl"
    write_official_pickle(local, G, DEMO_KWARGS["stylegan3"], "sg3")
    ngc.add(SG3_PATH, local.read_bytes())
    manager = ModelManager(Zoo([card(architecture="stylegan3")]), device="cpu")
    model = manager.get("ngc-test")
    z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = G(z, None, truncation_psi=0.7, noise_mode="const")
        got = model.G(z, None, truncation_psi=0.7, noise_mode="const")
    assert torch.allclose(got, expected, atol=1e-5)
    assert model.info.get("sha256") in (None, hashlib.sha256(local.read_bytes()).hexdigest())


def test_a_server_gone_silent_mid_file_is_a_timeout_and_is_retried(ngc):
    """The hang users reported: half the file, then nothing. Restarted; when it persists, said as a timeout."""
    ngc.add(SG3_PATH, PAYLOAD, "stall", drops=1, delay=3)
    assert hub.fetch(card()).read_bytes() == PAYLOAD
    other = NGC_FILES.format(family="stylegan2", name="stylegan2-ffhq-256x256.pkl")
    ngc.add(other, PAYLOAD, "stall", drops=99, delay=3)
    with pytest.raises(ModelUnavailable, match="did not answer within 2 s") as err:
        hub.fetch(card(other, id="stalls"))
    assert err.value.kind == "timeout" and [n for n in leftovers() if "ffhq-256" in n] == []


def test_concurrent_fetches_of_one_url_download_it_once(ngc):
    import threading

    ngc.add(SG3_PATH, PAYLOAD, "slow", delay=0.5)
    paths = []
    threads = [threading.Thread(target=lambda: paths.append(hub.fetch(card()))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(paths) == 3 and len(set(paths)) == 1 and paths[0].read_bytes() == PAYLOAD
    assert len([entry for entry in ngc.log if entry[0] == "GET"]) == 1


def test_downloads_sit_below_the_hub_and_the_cards():
    """remote.py is the bottom of the download stack and downloads.py uses only it: neither imports the
    hub or the cards, even lazily (the hub dispatches to downloads, never the reverse)."""
    import ast
    from pathlib import Path

    import stylecore.engine.downloads as downloads_module

    engine = Path(downloads_module.__file__).parent
    for name, allowed in (("remote.py", set()), ("downloads.py", {"stylecore.engine.remote"})):
        tree = ast.parse((engine / name).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert {m for m in imported if m.startswith("stylecore.engine")} == allowed, name
