"""A `RemoteFile` (or a model card) -> a local file: Hub files through huggingface_hub's cache, https
files through `stylecore.engine.downloads`, local paths as they are; honest errors when it can't.

Nothing here runs at import: `huggingface_hub` is imported on first use, and a file is only
downloaded by `fetch`. huggingface_hub reads HF_ENDPOINT, HF_HUB_OFFLINE and the cache folder
once, when it is imported; this module reads them (and HF_TOKEN) from `os.environ` on every
call and passes them explicitly, so the app and the tests can change them at run time.

huggingface_hub does not check downloaded bytes against the Hub's SHA-256 on the plain HTTP
path (only the size), so `fetch` hashes a freshly downloaded LFS blob itself and removes it
from the cache when it does not match. A file whose SHA-256 is known (the published one)
refuses any other bytes: a changed upstream file never loads silently.

When the Hub cannot be reached (the start-up probe or an earlier failure found so moments ago, or
a quick check does now: `stylecore.engine.online`), `fetch` fails at once instead of entering
huggingface_hub's retry ladder, which spends about 23 s before the same failure.
"""
from __future__ import annotations

import errno
import os
import re
import urllib.parse
from pathlib import Path
from typing import Optional

from stylecore.engine import online
from stylecore.engine.downloads import DEFAULT_HOSTS, fetch_url, file_sha256, mirrored_url, remove_files, url_local_file
from stylecore.engine.remote import FileRole, ModelUnavailable, RemoteFile, last_answer, offline_mode, record_answer
from stylecore.engine.zoo import ModelCard
from stylecore.progress import ByteProgress

# huggingface_hub sends a telemetry request to the Hub on first use unless this is set before it
# is imported; an offline or private deployment should not reach out for that.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

__all__ = ["local_file", "download_state", "fetch_blocker", "fetch", "hub_cache_dir", "hub_endpoint"]

DEFAULT_ENDPOINT = "https://huggingface.co"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DISK_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST,
                errno.EISDIR, getattr(errno, "EDQUOT", errno.ENOSPC)}


# ---------------------------------------------------------------------------------------------
# settings, read at call time


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_cache_dir() -> Path:
    """The folder huggingface_hub would use, following HF_HUB_CACHE > HUGGINGFACE_HUB_CACHE > HF_HOME/hub."""
    env = os.environ
    explicit = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        folder = explicit
    else:
        home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"),
                                                  "huggingface")
        folder = os.path.join(home, "hub")
    return Path(os.path.expandvars(folder)).expanduser()


def _token() -> Optional[str]:
    """HF_TOKEN now, else the token saved by `hf auth login`; None when there is none."""
    token = (os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or "").strip()
    if token:
        return token
    try:
        from huggingface_hub import get_token

        return get_token()
    except Exception:  # a broken token file or OIDC set-up must not hide the real error
        return None


# ---------------------------------------------------------------------------------------------
# state without network


def local_file(file: RemoteFile) -> Optional[Path]:
    """The file if it is already on this machine (cache or local path); never touches the network."""
    if isinstance(file, ModelCard):
        if file.is_builtin:
            return None
        if file.local_path:
            path = Path(file.local_path).expanduser()
            return path if path.is_file() else None
    if file.url:
        return url_local_file(file)
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(file.repo_id, file.filename, cache_dir=str(hub_cache_dir()),
                                       revision=file.revision, repo_type=file.repo_type)
    except (OSError, ValueError):
        return None
    return Path(found) if isinstance(found, str) and os.path.isfile(found) else None


def download_state(card: ModelCard) -> str:
    """"built-in", "local file", "missing local file", "downloaded" or "not downloaded"."""
    if card.is_builtin:
        return "built-in"
    if card.local_path:
        return "local file" if local_file(card) else "missing local file"
    return "downloaded" if local_file(card) else "not downloaded"


def fetch_blocker(file: RemoteFile) -> str:
    """What is known to stop `fetch` from downloading `file` now, without asking the network: "offline
    mode", "Hub unreachable", "NVIDIA unreachable", "<host> unreachable", or "" when nothing is known to."""
    if isinstance(file, ModelCard) and (file.is_builtin or file.local_path):
        return ""
    if offline_mode():
        return "offline mode"
    url = mirrored_url(file.url) if file.url else hub_endpoint()
    answer = last_answer(url)
    if answer is None or answer.up:
        return ""
    if not file.url:
        return "Hub unreachable"
    host = urllib.parse.urlsplit(file.url).hostname or ""
    return f"{'NVIDIA' if host in DEFAULT_HOSTS else host} unreachable"


# ---------------------------------------------------------------------------------------------
# fetch


def _progress_class(progress: ByteProgress, label: str) -> type:
    """A tqdm subclass, made per call, that forwards byte counts to `progress` and prints nothing.

    huggingface_hub instantiates it as `cls(total=, initial=, desc=, unit=, unit_scale=)` and calls
    `update(n)` per chunk (negative when a resumed transfer restarts); defining `update_transfer`
    makes its Xet path use one bar instead of two.
    """
    from tqdm.std import tqdm as std_tqdm

    class _ForwardingBar(std_tqdm):
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs.pop("name", None)
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            total = kwargs.get("total")
            self._total = int(total) if isinstance(total, (int, float)) and total > 0 else None
            self._done = int(kwargs.get("initial") or 0)  # type: ignore[arg-type]
            progress(self._done, self._total, f"downloading {label}")

        def update(self, n: float = 1) -> None:
            self._done = max(0, self._done + int(n or 0))
            progress(self._done, self._total, f"downloading {label}")

        def update_transfer(self, n: float = 1) -> None:
            pass

    return _ForwardingBar


def _local(card: ModelCard, progress: ByteProgress) -> Path:
    path = Path(card.local_path).expanduser()  # type: ignore[arg-type]
    if path.is_file():
        if progress is not None:
            size = path.stat().st_size
            progress(size, size, f"using local file {path.name}")
        return path
    what = "is a folder, not a file" if path.is_dir() else "does not exist"
    raise ModelUnavailable(card, "missing-local-file", f"the local file {path} {what}",
                           "check the path given in --models, $STYLECORE_MODELS or the spec, or remove "
                           "local_path from the card to download it from the Hub")


def fetch(file: RemoteFile, progress: ByteProgress = None, refresh: bool = False,
          role: Optional[FileRole] = None) -> Path:
    """The file (a model card's checkpoint, or any RemoteFile) as a local file, downloaded on first use:
    Hub files through the Hub cache, https URLs through `stylecore.engine.downloads`.

    A file already in the cache is returned without any request (huggingface_hub alone would
    send a HEAD per call to see whether a branch moved); `refresh=True` asks the Hub, and
    downloads again if the revision now points at different bytes.
    `progress(bytes_done, bytes_total_or_None, message)` is called while downloading. Every
    failure is a `ModelUnavailable` naming the model, repo, file and a remedy, chained to the
    original exception; `role` (default: the file's own) says what the file is for, which decides
    how the error names it and what it offers instead of the download.
    """
    if isinstance(file, ModelCard):
        if file.is_builtin:
            raise ValueError(f"model {file.id!r} is built in: it has no file to fetch")
        if file.local_path:
            return _local(file, progress)
    try:
        if file.url:
            return fetch_url(file, progress=progress, refresh=refresh)
        return _fetch_hub(file, progress, refresh)
    except ModelUnavailable as exc:
        if role is not None:
            exc.role = role
        raise


def _fetch_hub(file: RemoteFile, progress: ByteProgress, refresh: bool) -> Path:
    from huggingface_hub import hf_hub_download

    cache_dir = hub_cache_dir()
    offline = offline_mode()
    token = _token()
    label = f"{file.repo_id}/{file.filename}"
    cached = local_file(file)
    if cached is not None and not refresh:
        _check_published_hash(file, cached, cache_dir)
        if progress is not None:
            size = cached.stat().st_size
            progress(size, size, f"{label} is in the cache")
        return cached
    endpoint = hub_endpoint()
    down = None if offline else online.unreachable(endpoint)
    if down is not None:
        if cached is not None:  # a refresh while the Hub is down keeps the cached file, as huggingface_hub would
            _check_published_hash(file, cached, cache_dir)
            return cached
        raise ModelUnavailable(file, "offline", f"the Hub could not be reached at {endpoint} ({down})",
                               "connect to the internet and retry", otherwise=True)
    if progress is not None:
        progress(0, None, f"looking up {label} on the Hub")
    try:
        found = hf_hub_download(
            file.repo_id, file.filename, revision=file.revision, repo_type=file.repo_type,
            cache_dir=str(cache_dir), endpoint=endpoint, token=token or False,
            local_files_only=offline,
            tqdm_class=_progress_class(progress, label) if progress is not None else None,
        )
    except Exception as exc:
        error = _explain(file, exc, cache_dir=cache_dir, offline=offline, has_token=bool(token))
        if error is None:
            raise
        cause = _connection_failure(exc)
        if cause is not None and error.kind == "offline":
            record_answer(endpoint, cause)  # the next Hub file fails at once, not after the retries again
        raise error from exc
    path = Path(found)
    if cached is None or os.path.realpath(cached) != os.path.realpath(path):
        _verify(file, path, cache_dir, progress)
    _check_published_hash(file, path, cache_dir)
    if progress is not None:
        size = path.stat().st_size
        progress(size, size, f"{label} is ready")
    return path


def _check_published_hash(file: RemoteFile, path: Path, cache_dir: Path) -> None:
    """Refuse a file that is not the one the card was made for (its published SHA-256), and drop it.

    The cache names LFS blobs by their SHA-256, already checked against the Hub by `_verify`, so this
    costs nothing; a file the cache does not name so (no symlinks) is hashed."""
    if not file.sha256:
        return
    blob = Path(os.path.realpath(path))
    actual = blob.name if blob.parent.name == "blobs" and _SHA256.fullmatch(blob.name) else file_sha256(blob)
    if actual == file.sha256:
        return
    remove_files(path, blob)
    raise ModelUnavailable(
        file, "changed-upstream",
        f"the file at {file.repo_id}@{file.revision or 'main'} is not the one this card was made for: SHA-256 "
        f"{actual[:12]}... instead of the published {file.sha256[:12]}...; the upstream file changed, so it was "
        f"removed from the cache {cache_dir} and not loaded",
        "check the repo's history; to use the new file anyway, add it under another id with a spec "
        "(hf://owner/repo/file@revision), which carries no expected hash")


def _verify(file: RemoteFile, path: Path, cache_dir: Path, progress: ByteProgress) -> None:
    """Check a fresh blob against its SHA-256 (the name the cache gives LFS blobs); drop it if wrong."""
    blob = Path(os.path.realpath(path))
    expected = blob.name
    if blob.parent.name != "blobs" or not _SHA256.fullmatch(expected):
        return  # a small git file (named by its git hash) or a cache without symlinks: nothing to compare
    if progress is not None:
        progress(blob.stat().st_size, blob.stat().st_size, f"checking {file.filename}")
    actual = file_sha256(blob)
    if actual == expected:
        return
    remove_files(path, blob)
    raise ModelUnavailable(
        file, "corrupt",
        f"the downloaded file is corrupt (SHA-256 {actual[:12]}... instead of the Hub's {expected[:12]}...) "
        f"and was removed from the cache {cache_dir}",
        "retry; if it happens again, a proxy or the Hub copy is damaged", otherwise=True)


# ---------------------------------------------------------------------------------------------
# error mapping


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    pending: list[Optional[BaseException]] = [exc]
    while pending:
        item = pending.pop(0)
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        pending.extend([item.__cause__, item.__context__])
    return seen


def _connection_failure(exc: BaseException) -> Optional[str]:
    """What kept the request from reaching the Hub at all (refused, no route, no name, timeout), or None."""
    try:
        import httpx2 as httpx  # the HTTP client huggingface_hub 1.x+/2.x uses
    except ImportError:  # pragma: no cover - older huggingface_hub
        import httpx  # type: ignore[no-redef]

    failure = next((e for e in _chain(exc) if isinstance(e, (httpx.ConnectError, httpx.TimeoutException,
                                                              httpx.NetworkError, ConnectionError))), None)
    return None if failure is None else str(failure) or type(failure).__name__


def _status(exc: BaseException) -> Optional[int]:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _explain(file: RemoteFile, exc: BaseException, *, cache_dir: Path, offline: bool,
             has_token: bool) -> Optional[ModelUnavailable]:
    """Map a huggingface_hub / network / disk failure to a ModelUnavailable; None when unrecognised."""
    from huggingface_hub import errors as hf_errors

    try:
        import httpx2 as httpx  # the HTTP client huggingface_hub 1.x+/2.x uses
    except ImportError:  # pragma: no cover - older huggingface_hub
        import httpx  # type: ignore[no-redef]

    chain = _chain(exc)
    repo = file.repo_id
    endpoint = hub_endpoint()
    login = "set HF_TOKEN to a token with read access (or run `hf auth login`)"

    def first(*types: type) -> Optional[BaseException]:
        return next((e for e in chain if isinstance(e, types)), None)

    if offline or first(hf_errors.OfflineModeIsEnabled):
        why = "HF_HUB_OFFLINE=1" if offline else "HF_HUB_OFFLINE was set when huggingface_hub was imported"
        return ModelUnavailable(file, "offline", f"the Hub could not be reached (offline mode is on: {why}) and "
                                f"the file is not in the cache {cache_dir}",
                                "unset HF_HUB_OFFLINE, connect to the internet and retry", otherwise=True)
    gated = first(hf_errors.GatedRepoError)
    if gated is not None:
        if has_token:
            return ModelUnavailable(file, "gated", f"the repo {repo} is gated and the token in use has not been "
                                    "granted access", f"accept its conditions at {endpoint}/{repo} with the account "
                                    "of your token, then retry")
        return ModelUnavailable(file, "gated", f"the repo {repo} is gated: it needs a logged-in account that "
                                "accepted its conditions", f"accept them at {endpoint}/{repo}, then {login}")
    if first(hf_errors.RepositoryNotFoundError):
        if has_token:
            return ModelUnavailable(file, "repo-not-found", f"the repo {repo} was not found, or the token in use "
                                    "cannot read it", "check the repo id; if the repo is private, use a token of an "
                                    "account that can read it")
        return ModelUnavailable(file, "repo-not-found", f"the Hub has no public repo {repo} (it does not exist, or "
                                "it is private)", f"check the repo id; if the repo is private, {login}")
    if first(hf_errors.RevisionNotFoundError):
        return ModelUnavailable(file, "revision-not-found", f"the repo {repo} has no revision "
                                f"'{file.revision or 'main'}'", "fix the revision (a branch, tag or commit hash) "
                                "in the card or the spec's @revision, or remove it to use main")
    if first(hf_errors.RemoteEntryNotFoundError):
        return ModelUnavailable(file, "file-not-found", f"the repo {repo} has no file '{file.filename}' at "
                                f"revision '{file.revision or 'main'}'", "check the file's path inside the repo "
                                f"({endpoint}/{repo}/tree/{file.revision or 'main'}) and the revision")
    http_errors = [e for e in chain if isinstance(e, hf_errors.HfHubHTTPError) and _status(e) is not None]
    auth = next((e for e in http_errors if _status(e) in (401, 403)), None)
    if auth is not None:
        code = _status(auth)
        if has_token:
            return ModelUnavailable(file, "auth", f"the Hub refused the token in use (HTTP {code})",
                                    "check HF_TOKEN or run `hf auth login` again: the token may be invalid, expired, "
                                    f"or lack read access to {repo}")
        return ModelUnavailable(file, "auth", f"the Hub refused access without a token (HTTP {code})", login)
    broken = first(httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout, httpx.WriteError)
    consistency = next((e for e in chain if isinstance(e, OSError) and "Consistency check failed" in str(e)), None)
    if consistency is not None or (broken is not None and not first(hf_errors.LocalEntryNotFoundError)):
        detail = "the size received does not match the size the Hub announced" if consistency else str(broken)
        return ModelUnavailable(file, "incomplete", f"the download was interrupted or incomplete ({detail}); "
                                "the partial file was discarded", "retry; if it keeps failing, check the connection "
                                "or proxy", otherwise=True)
    unreachable = _connection_failure(exc)
    if unreachable is not None:
        return ModelUnavailable(file, "offline", f"the Hub could not be reached at {endpoint} ({unreachable})",
                                "connect to the internet and retry", otherwise=True)
    if first(hf_errors.FileMetadataError):
        return ModelUnavailable(file, "hub-error", f"the server at {endpoint} did not answer like the Hugging Face "
                                "Hub", "check HF_ENDPOINT, your proxy and firewall settings, then retry")
    if http_errors:
        code = _status(http_errors[0])
        return ModelUnavailable(file, "hub-error", f"the Hub answered HTTP {code} for this file",
                                "retry later (the Hub may be down or rate-limiting)", otherwise=True)
    disk = next((e for e in chain if isinstance(e, OSError) and not isinstance(e, hf_errors.HfHubHTTPError)
                 and e.errno in _DISK_ERRNOS), None)
    if disk is not None:
        where = f" ({disk.filename})" if getattr(disk, "filename", None) else ""
        return ModelUnavailable(file, "disk", f"the file could not be written to the cache folder {cache_dir}: "
                                f"{disk.strerror or disk}{where}", "free disk space or fix the folder's permissions, "
                                "or point HF_HUB_CACHE (or HF_HOME) at a writable folder with enough space")
    if first(hf_errors.LocalEntryNotFoundError):
        return ModelUnavailable(file, "offline", f"the Hub could not be reached at {endpoint} and the file is not "
                                f"in the cache {cache_dir}", "connect to the internet and retry", otherwise=True)
    return None
