"""Model cards: the built-in list, user models files (TOML/JSON, env var), specs, clear errors."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stylecore.zoo import (BUILTIN_CARDS, ENV_VAR, ModelCard, ModelsFileError, UnknownModelError, Zoo,
                           parse_spec)

HUB_MODELS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "hub_models.md"


# -- built-in cards -------------------------------------------------------------------------------


def test_builtin_cards_are_valid_and_unique():
    ids = [card.id for card in BUILTIN_CARDS]
    assert len(ids) == len(set(ids))
    sources = [(c.repo_id, c.filename, c.revision) for c in BUILTIN_CARDS if not c.is_builtin]
    assert len(sources) == len(set(sources)), "two cards point at the same file"
    for card in BUILTIN_CARDS:
        assert card.architecture in ("stylegan2", "stylegan3", "stylenerf")
        assert card.format in ("nvidia-pickle", "tf-pickle", "rosinality", "builtin")
        assert card.resolution > 0 and card.domain and card.license and card.title
        if not card.is_builtin:
            assert card.repo_id and card.filename and card.local_path is None
            assert card.filename.endswith(".pkl" if card.format != "rosinality" else ".pt")


def test_builtin_cards_cover_the_confirmed_checkpoints():
    by_id = {card.id: card for card in BUILTIN_CARDS}
    for wanted in ("sg2-ffhq-512", "sg2-ffhq-1024-tf", "sg2-ffhq-1024-rosinality", "sg2-afhqcat-512",
                   "sg2-metfaces-1024", "sg2-lhq-256", "sg2-human-1024", "sg3-t-lhq-256"):
        assert wanted in by_id
    assert by_id["sg3-t-lhq-256"].architecture == "stylegan3"
    assert by_id["sg2-human-1024"].force_fp32 and "force_fp32=True" in by_id["sg2-human-1024"].notes
    assert by_id["sg2-ffhq-1024-tf"].format == "tf-pickle"
    repos = {card.repo_id for card in BUILTIN_CARDS if card.repo_id}
    assert repos <= {"DragGan/DragGan-Models", "ZeqiangLai/StyleGAN2-pkl", "ZeqiangLai/StyleGAN2",
                     "public-data/StyleGAN-Human", "justinpinkney/stylegan3-t-lhq-256",
                     "akhaliq/jojogan-stylegan2-ffhq-config-f", "facebook/stylenerf-ffhq-config-basic"}
    if HUB_MODELS.exists():  # every built-in repo is one the reference marks as seen ([V])
        text = HUB_MODELS.read_text()
        for repo in repos:
            assert f"`{repo}` [V]" in text, repo


def test_demo_card_needs_no_download():
    demo = Zoo().get("demo")
    assert demo.format == "builtin" and demo.architecture == "stylegan2" and demo.resolution == 64
    assert demo.title == "Built-in demo network (random weights, untrained)"
    assert demo.repo_id is None and demo.local_path is None and demo.source == "built-in"


def test_unknown_model_lists_known_ids():
    with pytest.raises(KeyError) as info:
        Zoo().get("sg2-ffhq-51")
    assert isinstance(info.value, UnknownModelError)
    message = str(info.value)
    assert message.startswith("Unknown model 'sg2-ffhq-51'") and "sg2-ffhq-512" in message and "demo" in message
    assert "Did you mean 'sg2-ffhq-512'" in message


def test_card_needs_a_source():
    with pytest.raises(ValueError, match="needs a source"):
        ModelCard(id="x")
    with pytest.raises(ValueError, match="architecture"):
        ModelCard(id="x", architecture="stylegan9", local_path="/x.pkl")
    card = ModelCard(id="x", repo_id="o/r", filename="f.pkl", revision="v1", repo_type="dataset")
    assert card.title == "x" and card.source == "hf://datasets/o/r/f.pkl@v1"


# -- models files -----------------------------------------------------------------------------------

TOML = """
[[models]]
id = "sg3-r-ffhq-1024"
title = "StyleGAN3-R FFHQ 1024 (my mirror)"
architecture = "stylegan3"
format = "nvidia-pickle"
repo_id = "me/sg3-mirror"
filename = "stylegan3-r-ffhq-1024x1024.pkl"
revision = "v2"
resolution = 1024
domain = "faces"
license = "NVIDIA Source Code License-NC"

[[models]]
id = "sg2-ffhq-512"
local_path = "weights/ffhq512.pkl"

[[models]]
id = "nada-pixar"
spec = "hf://rinong/stylegan-nada-models/pixar.pt"
"""


def test_toml_models_file_adds_and_overrides(tmp_path):
    path = tmp_path / "models.toml"
    path.write_text(TOML)
    zoo = Zoo.from_sources(path, environ={})
    new = zoo.get("sg3-r-ffhq-1024")
    assert (new.repo_id, new.filename, new.revision, new.architecture, new.resolution) == (
        "me/sg3-mirror", "stylegan3-r-ffhq-1024x1024.pkl", "v2", "stylegan3", 1024)
    override = zoo.get("sg2-ffhq-512")
    assert override.local_path == str(tmp_path / "weights" / "ffhq512.pkl")  # relative to the file
    assert override.repo_id is None and override.filename is None
    assert override.title == "StyleGAN2 FFHQ 512" and override.resolution == 512  # other fields kept
    nada = zoo.get("nada-pixar")
    assert (nada.repo_id, nada.filename, nada.format) == ("rinong/stylegan-nada-models", "pixar.pt", "rosinality")
    assert zoo.ids()[0] == "demo" and len(zoo) == len(BUILTIN_CARDS) + 2


@pytest.mark.parametrize("wrap", [False, True])
def test_json_models_file(tmp_path, wrap):
    entries = [{"id": "mine", "repo_id": "me/repo", "filename": "g.pkl", "resolution": 256},
               {"id": "sg2-lhq-256", "revision": "0123456789abcdef0123456789abcdef01234567"}]
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": entries} if wrap else entries))
    zoo = Zoo.from_sources(str(path), environ={})
    mine = zoo.get("mine")
    assert mine.format == "nvidia-pickle" and mine.architecture == "auto" and mine.title == "mine"
    lhq = zoo.get("sg2-lhq-256")
    assert lhq.revision == "0123456789abcdef0123456789abcdef01234567"
    assert lhq.repo_id == "DragGan/DragGan-Models" and lhq.filename == "stylegan2-lhq-256x256.pkl"


def test_env_var_files_and_cli_file_wins(tmp_path):
    a, b, cli = tmp_path / "a.json", tmp_path / "b.toml", tmp_path / "cli.json"
    a.write_text(json.dumps([{"id": "from-a", "local_path": "/m/a.pkl"}, {"id": "shared", "local_path": "/m/1.pkl"}]))
    b.write_text('[[models]]\nid = "from-b"\nrepo_id = "o/r"\nfilename = "b.pt"\n')
    cli.write_text(json.dumps([{"id": "shared", "local_path": "/m/2.pkl"}]))
    zoo = Zoo.from_sources(cli, environ={ENV_VAR: f"{a}{os.pathsep}{b}"})
    assert zoo.get("from-a").local_path == "/m/a.pkl"
    assert zoo.get("from-b").format == "rosinality"
    assert zoo.get("shared").local_path == "/m/2.pkl"


def test_env_var_is_read_from_os_environ(tmp_path, monkeypatch):
    path = tmp_path / "m.json"
    path.write_text(json.dumps([{"id": "env-model", "local_path": "/m/e.pkl"}]))
    monkeypatch.setenv(ENV_VAR, str(path))
    assert "env-model" in Zoo.from_sources()
    monkeypatch.delenv(ENV_VAR)
    assert "env-model" not in Zoo.from_sources()


@pytest.mark.parametrize("content, suffix, expected", [
    ('[[models]]\nid = "x"\nrepo = "o/r"\nfilename = "f.pkl"\n', ".toml",
     r"entry 1 \(id 'x'\): unknown key 'repo' \(did you mean 'repo_id'\?\)"),
    ('[[models]]\nid = "x"\ntitle = "no source"\n', ".toml", r"entry 1 \(id 'x'\):.*needs a source"),
    ('[[models]]\nid = "x"\nrepo_id = "o/r"\n', ".toml", r"entry 1 \(id 'x'\):.*filename is missing"),
    ('[[models]]\nid = "ok"\nlocal_path = "/a.pkl"\n[[models]]\nid = "x"\nresolution = "512"\n', ".toml",
     r"entry 2 \(id 'x'\): 'resolution' must be a whole number >= 0, not '512'"),
    ('[[models]]\nid = "x"\nlocal_path = "/a.pkl"\nforce_fp32 = "yes"\n', ".toml", r"'force_fp32' must be true or"),
    ('[[models]]\nid = "x"\nlocal_path = "/a.pkl"\narchitecture = "stylegan5"\n', ".toml",
     r"entry 1 \(id 'x'\):.*architecture 'stylegan5' is not one of"),
    ('[[models]]\ntitle = "no id"\nlocal_path = "/a.pkl"\n', ".toml", r"entry 1: missing 'id'"),
    ('[[models]]\nid = "Bad Id"\nlocal_path = "/a.pkl"\n', ".toml", r"id 'Bad Id' must be lower-case"),
    ('[[models]]\nid = "x"\nlocal_path = "/a"\n[[models]]\nid = "x"\nlocal_path = "/b"\n', ".toml", "appears twice"),
    ('[[models]\nid = "x"', ".toml", "is not valid TOML"),
    ('[model]\nid = "x"\n', ".toml", r"expected \[\[models\]\] tables"),
    ('[{"id": "x", "local_path": 5}]', ".json", r"'local_path' must be a string, not 5"),
    ('{"model": []}', ".json", "expected a JSON list"),
    ('[1]', ".json", "entry 1: expected a table/object"),
    ('[{"id": "x",', ".json", "is not valid JSON"),
    ('[{"id": "x", "spec": "ftp://a/b"}]', ".json", r"entry 1 \(id 'x'\):.*only hf:// addresses"),
    ('[]', ".yaml", "unknown extension '.yaml'"),
])
def test_bad_models_file_names_file_and_entry(tmp_path, content, suffix, expected):
    path = tmp_path / f"models{suffix}"
    path.write_text(content)
    with pytest.raises(ModelsFileError, match=expected) as info:
        Zoo.from_sources(path, environ={})
    assert str(path) in str(info.value)


def test_missing_models_file(tmp_path):
    with pytest.raises(ModelsFileError, match=r"models file .*nope\.toml does not exist"):
        Zoo.from_sources(environ={ENV_VAR: str(tmp_path / "nope.toml")})


# -- specs ------------------------------------------------------------------------------------------


def test_hf_spec_with_subfolder_and_revision():
    zoo = Zoo()
    card = zoo.add_spec("hf://owner/repo/sub/file.pkl@v1.0")
    assert (card.repo_id, card.filename, card.revision, card.repo_type) == ("owner/repo", "sub/file.pkl", "v1.0",
                                                                              "model")
    assert card.format == "nvidia-pickle" and card.architecture == "auto" and card.resolution == 0
    assert zoo.get(card.id) is card and card.source == "hf://owner/repo/sub/file.pkl@v1.0"
    assert zoo.add_spec("hf://owner/repo/sub/file.pkl@v1.0") is card  # same spec twice: one card
    other = zoo.add_spec("hf://owner/repo/sub/file.pkl")
    assert other.id != card.id and other.revision is None


@pytest.mark.parametrize("spec, fields", [
    ("hf://owner/repo/g.pt", {"repo_id": "owner/repo", "filename": "g.pt", "format": "rosinality"}),
    ("hf://owner/repo/g.pth@refs/pr/3", {"filename": "g.pth", "revision": "refs/pr/3", "format": "rosinality"}),
    ("hf://datasets/owner/data/x/g.pkl", {"repo_type": "dataset", "repo_id": "owner/data", "filename": "x/g.pkl"}),
    ("hf://spaces/owner/app/models/net.bin", {"repo_type": "space", "filename": "models/net.bin", "format": "auto"}),
])
def test_spec_forms(spec, fields):
    parsed = parse_spec(spec)
    for key, value in fields.items():
        assert parsed[key] == value


@pytest.mark.parametrize("spec", ["hf://owner/repo", "hf://owner/repo/", "hf://owner/repo/f.pkl@",
                                  "https://example.com/f.pkl", ""])
def test_bad_specs(spec):
    with pytest.raises(ModelsFileError):
        Zoo().add_spec(spec)


def test_local_path_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    zoo = Zoo()
    card = zoo.add_spec("nets/my-net.pkl")
    assert card.local_path == str(tmp_path / "nets" / "my-net.pkl") and card.repo_id is None
    assert card.id == "my-net" and card.format == "nvidia-pickle"
    named = zoo.add_spec("ffhq-rosi=" + str(tmp_path / "g.pt"))
    assert named.id == "ffhq-rosi" and named.format == "rosinality"
    over = zoo.add_spec("sg2-ffhq-512=/data/ffhq.pkl")  # an explicit existing id replaces that card
    assert zoo.get("sg2-ffhq-512") is over and over.local_path == "/data/ffhq.pkl"
