"""Model cards: the built-in list, user models files (TOML/JSON, env var), specs, clear errors."""
from __future__ import annotations

import json
import re
import os
import sys
from pathlib import Path

import pytest

from stylecore.engine.remote import RemoteFile
from stylecore.engine.zoo import (BUILTIN_CARDS, BUILTIN_CARDS_FILE, BUILTIN_ENCODERS, BUILTIN_FILES, ENV_VAR, ModelCard,
                                  ModelsFileError, UnknownModelError, Zoo, builtin_file, parse_spec)

HUB_MODELS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "hub_models.md"
REAL_FILES = HUB_MODELS.with_name("real_files.md")


# -- built-in cards -------------------------------------------------------------------------------


def test_builtin_cards_are_valid_and_unique():
    ids = [card.id for card in BUILTIN_CARDS]
    assert len(ids) == len(set(ids))
    sources = [(c.repo_id, c.filename, c.revision, c.url) for c in BUILTIN_CARDS if not c.is_builtin]
    assert len(sources) == len(set(sources)), "two cards point at the same file"
    for card in BUILTIN_CARDS:
        assert card.architecture in ("stylegan2", "stylegan3", "stylenerf")
        assert card.format in ("nvidia-pickle", "tf-pickle", "rosinality", "builtin")
        assert card.resolution > 0 and card.domain and card.license and card.title
        if card.url:
            assert card.repo_id is None and card.local_path is None and card.url.endswith(".pkl")
            assert card.license.startswith("NVIDIA Source Code License-NC")
        elif not card.is_builtin:
            assert card.repo_id and card.filename and card.local_path is None
            assert card.filename.endswith(".pkl" if card.format != "rosinality" else ".pt")
            assert card.revision is None or len(card.revision) == 40, f"{card.id}: pin a full commit hash"


def test_builtin_cards_are_a_data_file_read_like_a_models_file(tmp_path):
    """cards.toml ships beside the zoo module; its [[models]], handed to the reader as a user's models file,
    give exactly the built-in cards."""
    import stylecore.engine.zoo as zoo_module

    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")

    assert BUILTIN_CARDS_FILE == Path(zoo_module.__file__).with_name("cards.toml") and BUILTIN_CARDS_FILE.is_file()
    data = tomllib.loads(BUILTIN_CARDS_FILE.read_text())
    assert set(data) == {"models", "encoders", "files"}
    user_file = tmp_path / "models.json"
    user_file.write_text(json.dumps({"models": data["models"]}))
    assert tuple(Zoo([]).load_file(user_file)) == BUILTIN_CARDS
    assert [card.id for card, _ in BUILTIN_ENCODERS] == [entry["id"] for entry in data["encoders"]]
    assert [file.id for file in BUILTIN_FILES] == [entry["id"] for entry in data["files"]]


def test_builtin_files_are_unique_and_pinned():
    """Every built-in download (generator, encoder, auxiliary file) has its own id, and every Hub file is
    pinned to a full commit, except those never pinned (two unresolved commits, the optional CLIPs)."""
    everything = [*BUILTIN_CARDS, *(card for card, _ in BUILTIN_ENCODERS), *BUILTIN_FILES]
    ids = [item.id for item in everything]
    assert len(ids) == len(set(ids))
    assert all(type(f) is RemoteFile for f in BUILTIN_FILES)  # auxiliary files are not generator cards
    unpinned = {item.id for item in everything if item.repo_id and not item.revision}
    assert unpinned == {"dlib-68-landmarks", "arcface-ir-se50", "clip-openai-vit-b-16", "clip-openai-vit-l-14"}
    assert all(len(item.revision) == 40 for item in everything if item.revision)
    # 24 of the 25 StyleGAN-NADA domains have a checksum (not marble.pt) and 19 an exact size; HyperStyle's two both
    assert sum(1 for item in everything if item.sha256) == 20 + 24 + 2
    assert sum(1 for item in everything if item.size) == 11 + 19 + 2
    assert {kind for _, kind in BUILTIN_ENCODERS} == {"psp", "e4e"}
    fs3 = builtin_file("styleclip-fs3")
    assert (fs3.repo_id, fs3.filename, fs3.revision) == ("rinong/stylegan-nada-models", "fs3.npy",
                                                         "dd12f4d3c46e10ba576962aa13ccca1b80e24565")
    with pytest.raises(KeyError, match="unknown built-in file 'nope'; known: lpips-vgg16-backbone"):
        builtin_file("nope")


def test_files_and_cards_share_one_validator(tmp_path):
    """A file needs a Hub or https source (a card may also be local or built in); the same field rules,
    with the same words, hold for a dataclass and for a models-file entry."""
    with pytest.raises(ValueError, match=r"file 'x': needs a source: repo_id and filename \(a Hub file\) or url$"):
        RemoteFile(id="x")
    with pytest.raises(ValueError, match="file 'x': 'size' must be a whole number >= 0, not -1"):
        RemoteFile(id="x", url="https://host/f.bin", size=-1)
    bad_sha = "sha256 'ABC' must be 64 lower-case hex digits"
    with pytest.raises(ValueError, match=bad_sha):
        RemoteFile(id="x", repo_id="o/r", filename="f.bin", sha256="ABC")
    path = tmp_path / "models.toml"
    path.write_text('[[models]]\nid = "x"\nlocal_path = "/a.pkl"\nsha256 = "ABC"\n')
    with pytest.raises(ModelsFileError, match=r"entry 1 \(id 'x'\): " + bad_sha):
        Zoo.from_sources(path, environ={})
    assert ModelCard(id="x", local_path="/a.pkl").source == "/a.pkl"


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
                     "akhaliq/OneshotCLIP-stylegan2-ffhq", "facebook/stylenerf-ffhq-config-basic",
                     "rinong/stylegan-nada-models"}
    if HUB_MODELS.exists():  # every built-in repo is one the references saw: [V] in hub_models, or real_files
        text = HUB_MODELS.read_text() + REAL_FILES.read_text()
        for repo in repos:
            assert f"`{repo}` [V]" in text or f"| {repo} |" in text, repo


def test_demo_card_needs_no_download():
    demo = Zoo().get("demo")
    assert demo.format == "builtin" and demo.architecture == "stylegan2" and demo.resolution == 64
    assert demo.title == "Demo StyleGAN2 (untrained, random weights)"
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
id = "my-pixar"
spec = "hf://rinong/stylegan-nada-models/pixar.pt"
"""


def test_toml_models_file_adds_and_overrides(tmp_path):
    path = tmp_path / "models.toml"
    path.write_text(TOML)
    zoo = Zoo.from_sources(path, environ={})
    mirror = zoo.get("sg3-r-ffhq-1024")  # NVIDIA's card, pointed at a Hub mirror: the URL is dropped
    assert (mirror.repo_id, mirror.filename, mirror.revision, mirror.architecture, mirror.resolution) == (
        "me/sg3-mirror", "stylegan3-r-ffhq-1024x1024.pkl", "v2", "stylegan3", 1024)
    assert mirror.url is None and mirror.title == "StyleGAN3-R FFHQ 1024 (my mirror)"
    override = zoo.get("sg2-ffhq-512")
    assert override.local_path == str(tmp_path / "weights" / "ffhq512.pkl")  # relative to the file
    assert override.repo_id is None and override.filename is None
    assert override.title == "StyleGAN2 FFHQ 512" and override.resolution == 512  # other fields kept
    nada = zoo.get("my-pixar")
    assert (nada.repo_id, nada.filename, nada.format) == ("rinong/stylegan-nada-models", "pixar.pt", "rosinality")
    assert zoo.ids()[0] == "demo" and len(zoo) == len(BUILTIN_CARDS) + 1


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
    ('[{"id": "x", "spec": "ftp://a/b"}]', ".json", r"entry 1 \(id 'x'\):.*only hf:// and https:// addresses"),
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
                                  "https://example.com/", "ftp://example.com/f.pkl", ""])
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


# -- the real files: NVIDIA's zoo, pins and hashes as the references record them ------------------------


def test_official_nvidia_zoo_is_complete():
    """real_files.md section 2: 12 StyleGAN3 and 15 StyleGAN2 files on NGC, 7 ADA and 5 TF on nvlabs-fi-cdn."""
    urls = {card.url.rsplit("/", 1)[-1]: card for card in BUILTIN_CARDS if card.url}
    ngc3 = [u for u, c in urls.items() if "/research/stylegan3/" in c.url]
    ngc2 = [u for u, c in urls.items() if "/research/stylegan2/" in c.url]
    ada = [c for c in urls.values() if "stylegan2-ada-pytorch/pretrained/" in c.url]
    tf = [c for c in urls.values() if "/stylegan2/networks/" in c.url]
    assert (len(ngc3), len(ngc2), len(ada), len(tf)) == (12, 15, 7, 5)
    assert all(c.format == "tf-pickle" for c in tf) and all(c.format == "nvidia-pickle" for c in ada)
    assert urls["stylegan2-cifar10-32x32.pkl"].c_dim == 10 and urls["cifar10.pkl"].c_dim == 10
    assert sum(1 for c in urls.values() if c.c_dim) == 2
    if REAL_FILES.exists():
        text = REAL_FILES.read_text()
        for name in ("stylegan3-{t,r}-ffhqu-256x256.pkl", "stylegan2-cifar10-32x32.pkl", "afhqwild.pkl",
                     "stylegan2-{ffhq,car,cat,church,horse}-config-f.pkl"):
            assert name in text
        for card in urls.values():
            assert card.url.startswith(("https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan",
                                        "https://nvlabs-fi-cdn.nvidia.com/"))


@pytest.mark.skipif(not REAL_FILES.exists(), reason="needs ../shared/reference/real_files.md")
def test_known_hashes_sizes_and_pins_match_the_reference():
    """Every SHA-256 and size a card carries is the one real_files.md section 3 lists for that repo and file,
    and every commit pinned is one it names (or resolved from the Hub's file pages, listed here)."""
    from stylecore.inversion.encoder_cards import ENCODER_CARDS

    rows = {}
    for line in REAL_FILES.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and len(cells[3]) == 64:
            rows[(cells[0], cells[1])] = (cells[2], cells[3])
    resolved = {  # short ids of real_files.md resolved to full hashes from the Hub's file pages
        "024390a9508cb2d124dfaa8ec1caee3ad1a9da59", "dd4308f2149943e240c2c7e963b3e2f294eefb02",
        "2ffc51649a4967b850584a751cc3070cbf78741e"}
    text = REAL_FILES.read_text()
    checked = 0
    for card in (*BUILTIN_CARDS, *ENCODER_CARDS):
        if card.repo_id == NADA_REPO:  # pinned from the Hub's file pages (below), not from real_files.md
            continue
        if card.sha256:
            size, sha = rows[(card.repo_id, card.filename)]
            assert card.sha256 == sha, card.id
            if size.isdigit():
                assert card.size == int(size), card.id
            checked += 1
        if card.revision:
            assert card.revision in text or card.revision in resolved, card.id
    assert checked >= 15


NADA_REPO = "rinong/stylegan-nada-models"


def test_stylegan_nada_domains_are_pinned_domains_of_the_ffhq_generator():
    """The 25 StyleGAN-NADA files real_files.md lists, each a domain of the FFHQ 1024 config-f generator,
    pinned to the commit and SHA-256 its Hub file page shows (marble.pt's page gave no checksum), with
    the size every page that showed one gave."""
    text = REAL_FILES.read_text()
    listed = re.search(r"rinong/stylegan-nada-models \(each (\d+) bytes.*?\):(.*?)\(`\.pt`\)", text, re.S)
    size, names = int(listed.group(1)), {n.strip() for n in re.sub(r"\s+", " ", listed.group(2)).split(",")}
    nada = [card for card in BUILTIN_CARDS if card.repo_id == NADA_REPO]
    assert {card.filename.removesuffix(".pt") for card in nada} == names and len(nada) == 25
    for card in nada:
        assert card.base == "sg2-ffhq-1024-rosinality" and card.format == "rosinality", card.id
        assert len(card.revision) == 40 and (card.size in (0, size)), card.id
        assert (card.sha256 is None) == (card.filename == "marble.pt"), card.id
    assert len({card.sha256 for card in nada if card.sha256}) == 24


def test_models_command_lists_the_official_zoo_with_sources_pins_and_licenses(tmp_path):
    import subprocess
    import sys

    from app_server import REPO_ROOT, app_env

    done = subprocess.run([sys.executable, "-m", "stylecore", "models", "--all"], cwd=str(REPO_ROOT),
                          env=app_env({"HF_HUB_OFFLINE": "1"}, tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    ngc = rows["sg3-t-ffhqu-256"]
    assert "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/" \
           "stylegan3-t-ffhqu-256x256.pkl" in ngc
    assert "not downloaded" in ngc and "NVIDIA Source Code License-NC" in ngc and "recorded at first download" in ngc
    assert "@024390a9508c, sha256 bae494ef77e3" in rows["sg2-ffhq-1024-rosinality"]
    assert "@fdd18714fc6b" in rows["e4e-ffhq"] and "restyle-e4e-ffhq" not in rows
    assert "@main (unpinned)" in rows["arcface-ir-se50"] and "@3394518cba29" in rows["lpips-vgg16-backbone"]
    assert "built-in" in rows["demo"]


def test_url_specs_and_allowed_hosts(tmp_path):
    """An https spec becomes a url card; a models file may allow more hosts; overriding a url card with a
    local file (or the reverse) drops the old source and what was known about its bytes."""
    from stylecore.engine import downloads

    zoo = Zoo()
    card = zoo.add_spec("https://example.org/nets/stylegan3-t-afhqv2-512x512.pkl?download=1")
    assert card.url.startswith("https://example.org/") and card.format == "nvidia-pickle"
    assert card.id == "stylegan3-t-afhqv2-512x512" and card.source == card.url
    assert zoo.add_spec("https://example.org/nets/stylegan3-t-afhqv2-512x512.pkl?download=1") is card
    assert "example.org" not in downloads.allowed_hosts()
    path = tmp_path / "models.toml"
    path.write_text('allowed_hosts = ["example.org"]\n\n[[models]]\nid = "sg2-ffhq-1024"\n'
                    'local_path = "ffhq.pkl"\n\n[[models]]\nid = "sg2-lhq-256"\nurl = "https://example.org/lhq.pkl"\n')
    zoo.load_file(path)
    assert "example.org" in downloads.allowed_hosts()
    local = zoo.get("sg2-ffhq-1024")
    assert local.url is None and local.local_path == str(tmp_path / "ffhq.pkl") and local.c_dim == 0
    lhq = zoo.get("sg2-lhq-256")
    assert (lhq.url, lhq.repo_id, lhq.revision, lhq.sha256) == ("https://example.org/lhq.pkl", None, None, None)
    bad = tmp_path / "bad.toml"
    bad.write_text('allowed_hosts = "example.org"\n[[models]]\nid = "x"\nlocal_path = "x.pkl"\n')
    with pytest.raises(ModelsFileError, match="allowed_hosts must be a list"):
        Zoo().load_file(bad)


def test_a_rejected_models_file_allows_no_host(tmp_path):
    from stylecore.engine import downloads

    path = tmp_path / "models.json"
    path.write_text(json.dumps({"allowed_hosts": ["rejected.example.net"], "models": [{"id": "Bad Id"}]}))
    with pytest.raises(ModelsFileError, match="Bad Id"):
        Zoo().load_file(path)
    assert "rejected.example.net" not in downloads.allowed_hosts()
