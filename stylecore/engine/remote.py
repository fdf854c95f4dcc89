"""What a downloadable file is: a Hub file or an https address, and what is known of its bytes.

The bottom of the download stack: `stylecore.engine.downloads` fetches https files,
`stylecore.engine.hub` fetches Hub files and dispatches between the two, and generator cards
(`stylecore.engine.zoo.ModelCard`) are RemoteFiles with generator facts added. Auxiliary files
(LPIPS' VGG16, dlib landmarks, ArcFace, editing directions...) are plain RemoteFiles.

`entry_problems` is the one check of card fields: the dataclasses run it on themselves, and the
models-file reader on each raw entry, so a file and the code can never disagree on what is valid.

A `FileRole` says what a file is to the user and how to do without downloading it: a generator is
added by path, an encoder replaced by an optimisation method, CLIP chosen in the StyleCLIP tab... so
that a `ModelUnavailable` names the thing and offers the remedy that fits it.

Every fetcher asks two things before it goes to the network: is offline mode on (`offline_mode`), and
did the server fail to answer moments ago (`known_unreachable`: the last answers of the start-up probe,
of downloads and of `stylecore.engine.online`'s quick checks, kept here). Either way it fails at once.
"""
from __future__ import annotations

import difflib
import os
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping, Optional

__all__ = ["RemoteFile", "ModelUnavailable", "FileRole", "FILE", "GENERATOR", "ENCODER", "ServerAnswer",
           "RECHECK_AFTER", "entry_problems", "offline_mode", "truthy", "record_answer", "last_answer",
           "known_unreachable", "forget_answers", "ID_RE", "REPO_TYPES"]

REPO_TYPES = ("model", "dataset", "space")
ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_URL_RE = re.compile(r"https?://[^/\s]+/\S*")
_REPO_RE = re.compile(r"[\w.-]+(/[\w.-]+)?")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# a field's annotation -> (does a value fit, what to ask for)
_FIELD_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "Optional[str]": (lambda v: v is None or isinstance(v, str), "a string"),
    "int": (_whole, "a whole number >= 0"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
}


def entry_problems(values: Mapping[str, Any], kind: type["RemoteFile"], extra: Optional[Mapping[str, str]] = None,
                   complete: bool = True) -> list[str]:
    """Every reason `values` cannot be a `kind` (a RemoteFile class); empty when they can.

    `extra` names keys a file may add beyond the fields (name -> annotation, e.g. {"spec": "str"}).
    `complete=False` checks an entry that may override only some fields of an existing card: what
    is given is checked, whether a source is missing is left to the merged card.
    """
    annotations = {f.name: str(f.type) for f in fields(kind)} | dict(extra or {})
    for key in values:
        if key not in annotations:
            close = difflib.get_close_matches(str(key), sorted(annotations), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return [f"unknown key {key!r}{hint}; known keys: {', '.join(sorted(annotations))}"]
    if "id" not in values:
        return ["missing 'id' (a short name such as \"sg2-ffhq-512\")"]
    wrong = []
    for key, value in values.items():
        fits, want = _FIELD_TYPES[annotations[key]]
        if not fits(value):
            wrong.append(f"{key!r} must be {want}, not {value!r}")
    if wrong:
        return wrong  # the rules below assume the right types
    out = [] if ID_RE.fullmatch(values["id"]) else \
        [f"id {values['id']!r} must be lower-case letters, digits, '.', '_' or '-'"]
    return out + kind.value_problems(values, complete)


def truthy(value: Optional[str]) -> bool:
    """An environment switch as huggingface_hub reads them: 1, on, yes or true, in any case."""
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def offline_mode() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) as set now: every fetcher then uses its cache and nothing else."""
    return truthy(os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE"))


# ---------------------------------------------------------------------------------------------
# what servers answered lately

RECHECK_AFTER = 30.0  # seconds a "could not be reached" is trusted before the server is tried again


@dataclass(frozen=True)
class ServerAnswer:
    """The last answer about one server: reached or not, why not (in the socket's words), and when
    (time.monotonic())."""

    up: bool
    reason: str
    at: float


_answers: dict[str, ServerAnswer] = {}
_answers_lock = threading.Lock()


def _server(url: str) -> str:
    """The server a URL names, as the answers are kept: scheme://host:port."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def record_answer(url: str, reason: Optional[str]) -> None:
    """Remember that the server of `url` was reached (`reason` None) or could not be, and why."""
    with _answers_lock:
        _answers[_server(url)] = ServerAnswer(reason is None, reason or "", time.monotonic())


def last_answer(url: str) -> Optional[ServerAnswer]:
    """The last answer about the server of `url`, however old; None when it was never tried."""
    with _answers_lock:
        return _answers.get(_server(url))


def known_unreachable(url: str) -> Optional[str]:
    """Why the server of `url` could not be reached, when that was found less than RECHECK_AFTER seconds ago."""
    answer = last_answer(url)
    if answer is None or answer.up or time.monotonic() - answer.at >= RECHECK_AFTER:
        return None
    return answer.reason


def forget_answers() -> None:
    """Drop every server's last answer (tests; a fresh start)."""
    with _answers_lock:
        _answers.clear()


@dataclass(frozen=True)
class FileRole:
    """What a downloadable file is, as errors name it (`noun`), and what to do when it cannot be
    downloaded (`instead`: another way to supply it, or a way to work without it)."""

    noun: str
    instead: str


FILE = FileRole("File", "download the file yourself and give its local path instead")
GENERATOR = FileRole("Model", "pick a built-in demo network or a model that is already downloaded, or download "
                     "the file yourself and add it with --models or a local path (see README 'Adding a model')")
ENCODER = FileRole("Encoder", "choose an optimisation method (they need no download) or an encoder that is already "
                   "downloaded, or download the .pt file yourself and give its path as the encoder")


@dataclass(frozen=True)
class RemoteFile:
    """One file the app downloads: `repo_id` + `filename` (a Hub file, at `revision`) or `url` (https).

    `sha256` and `size` (bytes), when known, are what the published file must be: a download that
    differs is refused, so a changed upstream file never loads silently. `license` and `notes` say
    whose file it is and what it is for (shown by `python -m stylecore models --all`).
    """

    id: str
    title: str = ""
    repo_id: Optional[str] = None
    filename: Optional[str] = None
    revision: Optional[str] = None
    repo_type: str = "model"
    url: Optional[str] = None
    sha256: Optional[str] = None
    size: int = 0
    license: str = ""
    notes: str = ""

    describes = "file"  # what an error calls an invalid one
    local_ok = False  # whether a subclass's `local_path` may stand in for a download source
    role = FILE  # what errors call it, and their remedy when it cannot be downloaded

    def __post_init__(self) -> None:
        problems = entry_problems({f.name: getattr(self, f.name) for f in fields(self)}, type(self))
        if problems:
            raise ValueError(f"{self.describes} {self.id!r}: " + "; ".join(problems))
        if not self.title:
            object.__setattr__(self, "title", self.id)

    @classmethod
    def value_problems(cls, values: Mapping[str, Any], complete: bool) -> list[str]:
        """What is wrong with type-checked field values; subclasses add their own rules."""
        out: list[str] = []
        repo_type = values.get("repo_type", "model")
        if repo_type not in REPO_TYPES:
            out.append(f"repo_type {repo_type!r} is not one of {', '.join(REPO_TYPES)}")
        sha256 = values.get("sha256")
        if sha256 is not None and not _SHA256_RE.fullmatch(sha256):
            out.append(f"sha256 {sha256!r} must be 64 lower-case hex digits")
        url, repo_id, filename = values.get("url"), values.get("repo_id"), values.get("filename")
        local_path = values.get("local_path") if cls.local_ok else None
        if url is not None and not _URL_RE.fullmatch(url):
            out.append(f"url {url!r} must be an http(s) address such as https://host/path/file.pkl")
        if repo_id and not _REPO_RE.fullmatch(repo_id):
            out.append(f"repo_id {repo_id!r} must look like 'owner/name'")
        if not complete:
            return out
        if url is not None:
            if repo_id or filename:
                out.append("give either url or repo_id/filename, not both")
        elif repo_id and not filename:
            out.append("repo_id is set but filename is missing")
        elif filename and not repo_id and not local_path:
            out.append("filename is set but repo_id is missing")
        elif not (repo_id and filename) and not local_path:
            local = ", url or local_path" if cls.local_ok else " or url"
            out.append(f"needs a source: repo_id and filename (a Hub file){local}")
        return out

    @property
    def source(self) -> str:
        """Where the file comes from, as a user would write it (a spec)."""
        if self.url:
            return self.url
        prefix = "" if self.repo_type == "model" else f"{self.repo_type}s/"
        rev = f"@{self.revision}" if self.revision else ""
        return f"hf://{prefix}{self.repo_id}/{self.filename}{rev}"

    @property
    def where(self) -> str:
        """The file's place as error messages name it."""
        if self.url:
            return self.url
        where = f"{self.repo_id}/{self.filename} @ {self.revision or 'main'}"
        return where if self.repo_type == "model" else f"{where} ({self.repo_type} repo)"


class ModelUnavailable(Exception):
    """A file cannot be had right now: what went wrong, where from, and what to do.

    `kind` is a stable code for callers ("offline", "repo-not-found", "gated", "file-not-found",
    "revision-not-found", "auth", "disk", "incomplete", "corrupt", "missing-local-file", "hub-error").
    `advice` is what to do about this failure; with `otherwise`, the file's `role` adds how to do without
    the download. `role` starts as the file's own and may be set by a caller that knows better what the
    file is for (`stylecore.engine.hub.fetch(..., role=)`), so the message is composed when it is read.
    """

    def __init__(self, file: RemoteFile, kind: str, reason: str, advice: str, otherwise: bool = False):
        self.model_id = file.id
        self.repo_id = file.repo_id
        self.filename = file.filename
        self.revision = file.revision
        self.where = file.where
        self.kind = kind
        self.reason = reason
        self.advice = advice
        self.otherwise = otherwise
        self.role: FileRole = file.role
        super().__init__(kind, reason)

    @property
    def remedy(self) -> str:
        return f"{self.advice}, or {self.role.instead}" if self.otherwise else self.advice

    def __str__(self) -> str:
        return (f"{self.role.noun} '{self.model_id}' is not available: {self.reason}. File: {self.where}. "
                f"To use it: {self.remedy}.")
