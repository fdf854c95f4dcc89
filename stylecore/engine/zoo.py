"""Model cards: which checkpoint a model id means, where it lives and what it is.

A card only *describes* a model; nothing here touches the network or the disk beyond reading
cards files (downloads are `stylecore.engine.hub`, reading checkpoints is `stylecore.formats.loader`).

The built-in cards are data, not code: ``cards.toml`` beside this module holds the generators
(``[[models]]``: NVIDIA's official networks on NGC and its CDN, and the Hub checkpoints of
reference/hub_models.md whose repo has been seen in a file listing), the released encoders
(``[[encoders]]``) and the auxiliary files the methods download (``[[files]]``: LPIPS' VGG16, dlib
landmarks, ArcFace, editing directions), each with the revision, SHA-256 and size it is pinned to.
It is read by the same reader, and checked by the same rules, as a user's models file.

Users add or override cards without editing code:

* a models file, ``--models FILE`` or ``STYLECORE_MODELS=FILE[:FILE...]`` (``os.pathsep``),
  JSON (a list of objects, or ``{"models": [...]}``) or TOML (``[[models]]`` tables)::

      [[models]]
      id = "sg3-t-ffhq-1024"                       # a new id adds a card
      title = "StyleGAN3-T FFHQ 1024"
      architecture = "stylegan3"
      repo_id = "someone/stylegan3-mirror"          # any repo you trust
      filename = "stylegan3-t-ffhq-1024x1024.pkl"
      revision = "a1b2c3..."                        # optional: branch, tag or commit (default main)
      resolution = 1024
      domain = "faces"

      [[models]]
      id = "sg2-ffhq-512"                           # an existing id overrides fields of that card
      local_path = "/data/stylegan2-ffhq-512x512.pkl"

  Keys are the `ModelCard` fields, plus ``spec`` (see below) as a shorthand for the source.
  Relative ``local_path`` values are relative to the models file. Overriding merges: the fields
  given replace the card's; giving ``local_path`` drops the Hub source and vice versa.
* a one-off spec (``--model SPEC`` / `Zoo.add_spec`): ``hf://owner/repo/path/file.pkl[@revision]``
  (``hf://datasets/...`` and ``hf://spaces/...`` for other repo types), an ``https://`` URL on an
  allowed host (NVIDIA's by default; a models file adds hosts with a top-level
  ``allowed_hosts = ["host"]``), or a local path; prefix ``my-id=`` to choose the id.

The rosinality-format domain-adapted generators of ``rinong/stylegan-nada-models``
(``hf://rinong/stylegan-nada-models/pixar.pt`` ...) load through a spec.
"""
from __future__ import annotations

import difflib
import json
import os
import re
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

from stylecore.engine.downloads import allow_hosts
from stylecore.engine.remote import ENCODER, GENERATOR, ID_RE, RemoteFile, entry_problems

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, packaged as tomli (a requirement there)
    import tomli as tomllib

__all__ = [
    "ModelCard", "EncoderCard", "Zoo", "UnknownModelError", "ModelsFileError", "BUILTIN_CARDS", "BUILTIN_ENCODERS",
    "BUILTIN_FILES", "BUILTIN_CARDS_FILE", "ENV_VAR", "ARCHITECTURES", "FORMATS", "builtin_file", "parse_spec",
    "read_models_file",
]

ENV_VAR = "STYLECORE_MODELS"
ARCHITECTURES = ("stylegan2", "stylegan3", "stylenerf", "auto")
FORMATS = ("nvidia-pickle", "tf-pickle", "rosinality", "builtin", "auto")
BUILTIN_CARDS_FILE = Path(__file__).with_name("cards.toml")
_EXT_FORMAT = {".pkl": "nvidia-pickle", ".pt": "rosinality", ".pth": "rosinality"}

PathLike = Union[str, "os.PathLike[str]"]


class UnknownModelError(KeyError):
    """An id no card has; the message lists the ids that exist so the user can pick one."""

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0]) if self.args else ""


class ModelsFileError(ValueError):
    """A user models file (or spec) that cannot be used; says which file and which entry."""


@dataclass(frozen=True)
class ModelCard(RemoteFile):
    """A generator checkpoint: where its file comes from (a `RemoteFile`) and what the app needs to know
    about it before it is downloaded.

    `architecture`/`format` may be "auto" (decided when the file is read: the loader sniffs the
    content) and `resolution` 0 (unknown until loaded). `local_path` (a file on this machine) may
    stand in for the download source; "builtin" cards need no source at all.
    """

    architecture: str = "auto"
    format: str = "auto"
    resolution: int = 0
    domain: str = ""
    local_path: Optional[str] = None
    c_dim: int = 0
    force_fp32: bool = False
    base: str = ""  # a domain generator (StyleGAN-NADA): the id of the generator it was fine-tuned from

    describes = "model card"
    local_ok = True
    role = GENERATOR

    @classmethod
    def value_problems(cls, values: Mapping[str, Any], complete: bool) -> list[str]:
        out: list[str] = []
        architecture, fmt = values.get("architecture", "auto"), values.get("format", "auto")
        if architecture not in ARCHITECTURES:
            out.append(f"architecture {architecture!r} is not one of {', '.join(ARCHITECTURES)}")
        if fmt not in FORMATS:
            out.append(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
        return out + super().value_problems(values, complete and fmt != "builtin")

    @property
    def is_builtin(self) -> bool:
        return self.format == "builtin"

    @property
    def source(self) -> str:
        """Where the file comes from, as a user would write it (a spec or a path)."""
        if self.is_builtin:
            return "built-in"
        return self.local_path or super().source

    @property
    def where(self) -> str:
        return self.local_path or super().where


@dataclass(frozen=True)
class EncoderCard(ModelCard):
    """A released encoder (pSp, e4e) from the built-in cards file: a ModelCard whose errors speak of an
    encoder and offer an encoder's remedies."""

    describes = "encoder card"
    role = ENCODER


# ---------------------------------------------------------------------------------------------
# specs


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return slug or "model"


def guess_format(filename: str) -> str:
    """Format from the file extension; "auto" (the loader sniffs) when the extension says nothing."""
    return _EXT_FORMAT.get(Path(filename).suffix.lower(), "auto")


def parse_spec(spec: str, base_dir: Optional[PathLike] = None) -> dict[str, Any]:
    """`hf://[datasets/|spaces/]owner/repo/path/file[@revision]`, an https URL or a local path -> card fields.

    The id is not included (the caller picks one); relative local paths resolve against
    `base_dir` (default: the current folder).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ModelsFileError(f"empty model spec {spec!r}: write hf://owner/repo/file.pkl[@revision] or a path")
    spec = spec.strip()
    if spec.startswith("hf://"):
        rest = spec[len("hf://"):]
        repo_type = "model"
        for plural, kind in (("datasets/", "dataset"), ("spaces/", "space"), ("models/", "model")):
            if rest.startswith(plural):
                repo_type, rest = kind, rest[len(plural):]
                break
        parts = rest.split("/", 2)
        if len(parts) < 3 or not all(parts):
            raise ModelsFileError(f"model spec {spec!r}: expected hf://owner/repo/path/to/file.pkl[@revision]")
        repo_id, path = f"{parts[0]}/{parts[1]}", parts[2]
        filename, at, revision = path.partition("@")  # revisions may hold '/' (refs/pr/1), filenames rarely '@'
        if not filename or filename.endswith("/") or (at and not revision):
            raise ModelsFileError(f"model spec {spec!r}: expected hf://owner/repo/path/to/file.pkl[@revision]")
        return {"repo_id": repo_id, "filename": filename, "revision": revision or None, "repo_type": repo_type,
                "format": guess_format(filename), "architecture": "auto"}
    if spec.startswith(("https://", "http://")):
        if not re.fullmatch(r"https?://[^/\s]+/\S*[^/]", spec):
            raise ModelsFileError(f"model spec {spec!r}: expected https://host/path/to/file.pkl")
        name = Path(spec.split("?", 1)[0]).name
        return {"url": spec, "format": guess_format(name), "architecture": "auto"}
    if "://" in spec:
        raise ModelsFileError(f"model spec {spec!r}: only hf:// and https:// addresses and local paths are supported")
    path = Path(os.path.expandvars(spec)).expanduser()
    if not path.is_absolute():
        path = Path(base_dir or os.getcwd()) / path
    return {"local_path": str(path), "format": guess_format(path.name), "architecture": "auto"}


# ---------------------------------------------------------------------------------------------
# cards files: the built-in one and users' models files, one reader

# table -> (the card class its entries become, keys an entry may add beyond the class's fields)
_TABLES: dict[str, tuple[type[RemoteFile], dict[str, str]]] = {
    "models": (ModelCard, {"spec": "str"}),  # generators; `spec` is a shorthand for the source
    "encoders": (ModelCard, {"kind": "str"}),  # released encoders; `kind`: "psp" or "e4e"
    "files": (RemoteFile, {}),  # auxiliary files the methods download
}
_USER_TABLES = ("models",)
_SOURCE_FIELDS = ("repo_id", "filename", "revision", "repo_type", "local_path", "url")


def _entry_name(table: str, index: int, entry: Any) -> str:
    ident = entry.get("id") if isinstance(entry, dict) else None
    where = "entry" if table == "models" else f"[[{table}]] entry"
    return f"{where} {index + 1}" + (f" (id {ident!r})" if isinstance(ident, str) else "")


def _checked_hosts(path: Path, hosts: Any) -> list[str]:
    """A models file's `allowed_hosts`: more https hosts model URLs may be downloaded from."""
    if not isinstance(hosts, list) or not all(isinstance(h, str) and re.fullmatch(r"[A-Za-z0-9.-]+", h)
                                              for h in hosts):
        raise ModelsFileError(f"models file {path}: allowed_hosts must be a list of host names such as "
                              "[\"download.example.org\"]")
    return hosts


def _load_raw(path: Path, tables: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """The raw entries of a cards file, by table, and the hosts it allows."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ModelsFileError(f"models file {path} does not exist") from None
    except OSError as exc:
        raise ModelsFileError(f"models file {path} cannot be read: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            data: Any = tomllib.loads(text.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ModelsFileError(f"models file {path} is not valid TOML: {exc}") from None
        if not isinstance(data.get(tables[0]), list):
            raise ModelsFileError(f"models file {path}: expected [[{tables[0]}]] tables (found keys: "
                                  f"{', '.join(data) or 'none'})")
        extra = sorted(set(data) - {*tables, "allowed_hosts"})
        if extra:
            read = " and ".join([*(f"[[{t}]]" for t in tables), "allowed_hosts"])
            raise ModelsFileError(f"models file {path}: unknown top-level key {extra[0]!r}; only {read} are read")
    elif suffix == ".json":
        try:
            data = json.loads(text.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelsFileError(f"models file {path} is not valid JSON: {exc}") from None
        if isinstance(data, list):
            data = {tables[0]: data}
        elif not (isinstance(data, dict) and {tables[0]} <= set(data) <= {*tables, "allowed_hosts"}
                  and isinstance(data[tables[0]], list)):
            raise ModelsFileError(f"models file {path}: expected a JSON list of model objects or "
                                  "{\"models\": [...], \"allowed_hosts\": [...]}")
    else:
        raise ModelsFileError(f"models file {path}: unknown extension {path.suffix!r}; use .toml or .json")
    raw = {table: data.get(table, []) for table in tables}
    for table, entries in raw.items():
        if not isinstance(entries, list):
            raise ModelsFileError(f"models file {path}: {table!r} must be a list of tables/objects")
    return raw, _checked_hosts(path, data.get("allowed_hosts", []))


def _read_entry(path: Path, table: str, raw: Any, where: str) -> dict[str, Any]:
    """One checked entry, with `spec` expanded and a relative `local_path` made absolute."""
    if not isinstance(raw, dict):
        raise ModelsFileError(f"{where}: expected a table/object of card fields, got {type(raw).__name__}")
    kind, extra = _TABLES[table]
    problems = entry_problems(raw, kind, extra, complete=False)
    if problems:
        raise ModelsFileError(f"{where}: " + "; ".join(problems))
    entry = dict(raw)
    spec = entry.pop("spec", None)
    if spec is not None:
        if any(k in entry for k in ("repo_id", "filename", "local_path", "url")):
            raise ModelsFileError(f"{where}: give either 'spec' or repo_id/filename/url/local_path, not both")
        try:
            parsed = parse_spec(spec, base_dir=path.parent)
        except ModelsFileError as exc:
            raise ModelsFileError(f"{where}: {exc}") from None
        entry = {**parsed, **entry}
    elif entry.get("local_path"):
        local = Path(os.path.expandvars(entry["local_path"])).expanduser()
        entry["local_path"] = str(local if local.is_absolute() else path.parent / local)
    entry["_where"] = where
    return entry


def _read_tables(path: PathLike, tables: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Checked entries of a cards file, by table; its `allowed_hosts` are allowed once all of it is read."""
    path = Path(os.path.expandvars(os.fspath(path))).expanduser()
    raw_tables, hosts = _load_raw(path, tables)
    out: dict[str, list[dict[str, Any]]] = {}
    for table, raw_entries in raw_tables.items():
        seen: set[str] = set()
        out[table] = []
        for index, raw in enumerate(raw_entries):
            where = f"models file {path}, {_entry_name(table, index, raw)}"
            entry = _read_entry(path, table, raw, where)
            if entry["id"] in seen:
                raise ModelsFileError(f"{where}: id {entry['id']!r} appears twice in this file")
            seen.add(entry["id"])
            out[table].append(entry)
    allow_hosts(hosts)  # only once the whole file was read without error
    return out


def read_models_file(path: PathLike) -> list[dict[str, Any]]:
    """Checked card fields from a user's TOML/JSON models file, one dict per entry (sources resolved).

    Returns partial field dicts, not cards, because an entry may override only some fields
    of an existing card; `Zoo.load_file` merges them.
    """
    return _read_tables(path, _USER_TABLES)["models"]


def _source_name(values: Mapping[str, Any]) -> str:
    """The file name a card's source ends in (for guessing its format)."""
    url = (values.get("url") or "").split("?", 1)[0]
    return values.get("filename") or values.get("local_path") or Path(url).name or ""


def _new(kind: type[RemoteFile], entry: dict[str, Any]) -> Any:
    """The card (or file) an entry describes; its problems are the entry's, named by `_where`."""
    values = dict(entry)
    where = values.pop("_where", f"model {values.get('id')!r}")
    try:
        return kind(**values)
    except ValueError as exc:
        raise ModelsFileError(f"{where}: {exc}") from None


def _merge(base: Optional[ModelCard], entry: dict[str, Any]) -> ModelCard:
    if base is None:
        values = dict(entry)
        if "format" not in values:
            values["format"] = guess_format(_source_name(values))
    else:
        values = {f.name: getattr(base, f.name) for f in fields(ModelCard)}
        hub = {"repo_id": None, "filename": None, "revision": None, "repo_type": "model"}
        if any(entry.get(k) for k in ("local_path", "url", "repo_id", "filename")):
            # a new source replaces the card's: what was known about the old file no longer applies
            values.update(sha256=None, size=0)
        if entry.get("local_path") and not entry.get("repo_id"):
            values.update(hub, url=None)
        elif entry.get("url"):
            values.update(hub, local_path=None)
        elif entry.get("repo_id") or entry.get("filename"):
            values.update(local_path=None, url=None)
        if base.is_builtin and "format" not in entry and any(entry.get(k) for k in _SOURCE_FIELDS):
            values["format"] = guess_format(_source_name(entry))
        values.update(entry)
    return _new(ModelCard, values)


_BUILTIN = _read_tables(BUILTIN_CARDS_FILE, tuple(_TABLES))
BUILTIN_CARDS: tuple[ModelCard, ...] = tuple(_new(ModelCard, entry) for entry in _BUILTIN["models"])
# (card, kind) of each released encoder: kept out of the generator list (see stylecore.inversion.encoder_cards)
BUILTIN_ENCODERS: tuple[tuple[ModelCard, str], ...] = tuple(
    (_new(EncoderCard, {k: v for k, v in entry.items() if k != "kind"}), entry["kind"])
    for entry in _BUILTIN["encoders"])
BUILTIN_FILES: tuple[RemoteFile, ...] = tuple(_new(RemoteFile, entry) for entry in _BUILTIN["files"])


def builtin_file(file_id: str) -> RemoteFile:
    """The built-in auxiliary file with this id; the error lists the ids there are."""
    for item in BUILTIN_FILES:
        if item.id == file_id:
            return item
    raise KeyError(f"unknown built-in file {file_id!r}; known: {', '.join(f.id for f in BUILTIN_FILES)}")


# ---------------------------------------------------------------------------------------------
# the zoo


class Zoo:
    """The model cards this run knows, by id, in display order (built-ins first)."""

    def __init__(self, cards: Optional[Iterable[ModelCard]] = None):
        self._cards: dict[str, ModelCard] = {}
        for card in BUILTIN_CARDS if cards is None else cards:
            self.add(card)

    @classmethod
    def from_sources(cls, models_file: Union[PathLike, Sequence[PathLike], None] = None,
                     environ: Optional[Mapping[str, str]] = None) -> "Zoo":
        """Built-ins, then files named by $STYLECORE_MODELS, then `--models` (later files win)."""
        zoo = cls()
        env = os.environ if environ is None else environ
        for item in (env.get(ENV_VAR) or "").split(os.pathsep):
            if item.strip():
                zoo.load_file(item.strip())
        if models_file is not None:
            files = [models_file] if isinstance(models_file, (str, os.PathLike)) else list(models_file)
            for item in files:
                zoo.load_file(item)
        return zoo

    def load_file(self, path: PathLike) -> list[ModelCard]:
        """Add or override cards from a models file; returns the resulting cards."""
        return [self._apply(entry) for entry in read_models_file(path)]

    def _apply(self, entry: dict[str, Any]) -> ModelCard:
        card = _merge(self._cards.get(entry["id"]), entry)
        self._cards[card.id] = card
        return card

    def add(self, card: ModelCard) -> ModelCard:
        """Add a card, replacing any card with the same id."""
        self._cards[card.id] = card
        return card

    def add_spec(self, spec: str, id: Optional[str] = None, **fields_: Any) -> ModelCard:
        """Add a one-off model from `hf://owner/repo/file.pkl[@rev]`, an https URL, a local path, or
        `my-id=<any of these>`.

        Adding a spec that is already known returns the existing card; a new spec whose
        derived id is taken gets a numbered id.
        """
        text = spec.strip() if isinstance(spec, str) else spec
        if id is None and isinstance(text, str) and "=" in text and not Path(text).exists():
            head, _, tail = text.partition("=")
            if ID_RE.fullmatch(head):
                id, text = head, tail
        values = {**parse_spec(text), **fields_}
        if id is None:
            for card in self._cards.values():
                if not card.is_builtin and all(getattr(card, k) == values.get(k, getattr(card, k))
                                               for k in ("repo_id", "filename", "revision", "repo_type",
                                                         "local_path", "url")):
                    return card
            name = _source_name(values) or "model"
            stem = _slug(Path(name).stem)
            if values.get("revision"):
                stem = f"{stem}-{_slug(values['revision'])[:12]}"
            id, n = stem, 2
            while id in self._cards:
                id, n = f"{stem}-{n}", n + 1
        values.setdefault("title", f"{Path(_source_name(values)).name} (added)")
        try:
            card = ModelCard(id=id, **values)
        except ValueError as exc:
            raise ModelsFileError(f"model spec {spec!r}: {exc}") from None
        return self.add(card)

    def get(self, model_id: str) -> ModelCard:
        """The card for `model_id`; an `UnknownModelError` listing the known ids otherwise."""
        try:
            return self._cards[model_id]
        except (KeyError, TypeError):
            close = difflib.get_close_matches(str(model_id), list(self._cards), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownModelError(f"Unknown model {model_id!r}.{hint} Known models: {', '.join(self._cards)}. "
                                    "Add others with --models FILE, $STYLECORE_MODELS or a spec "
                                    "(hf://owner/repo/file.pkl or a local path).") from None

    def cards(self) -> list[ModelCard]:
        return list(self._cards.values())

    def domains_of(self, base_id: str) -> list[ModelCard]:
        """The domain generators fine-tuned from `base_id` (StyleGAN-NADA), in the cards' order."""
        return [card for card in self._cards.values() if card.base and card.base == base_id]

    def domain_bases(self) -> list[str]:
        """The generators that have domain generators, in the cards' order."""
        return [card.id for card in self._cards.values() if self.domains_of(card.id)]

    def ids(self) -> list[str]:
        return list(self._cards)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._cards

    def __iter__(self) -> Iterator[ModelCard]:
        return iter(list(self._cards.values()))

    def __len__(self) -> int:
        return len(self._cards)
