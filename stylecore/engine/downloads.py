"""A `RemoteFile`'s https URL (NVIDIA's NGC and CDN) -> a verified local file in the download cache.

NVIDIA serves its official networks publicly over https but publishes no size or checksum, its
servers redirect, are slow, sometimes hang, and sometimes answer 200 with a JSON or HTML page instead
of the file. So here:

* the transfer is pooch's `HTTPDownloader` (requests underneath: redirects followed, timeouts on
  connect and on every read), streamed into a temporary file beside the cache entry and renamed into
  place only once complete and checked; an interrupted transfer is discarded and restarted (a few
  times), never kept as if it were whole;
* the first bytes must be a checkpoint's (a pickle, a zip): a page is a clear error naming the URL,
  and nothing is cached;
* the size and SHA-256 are recorded beside the file at the first download. Each later use checks the
  size, and the process's first use of a file checks the SHA-256 too, so a file changed on disk is
  caught before it is read. The file's own `sha256`/`size` (when known) must match, or it is refused;
* only hosts on the allow-list are contacted (NVIDIA's two by default; more through a models file's
  `allowed_hosts`), and `STYLECORE_URL_MIRRORS` rewrites URL prefixes to a mirror (tests stand a local
  server in for NGC this way); a mirror's host counts as allowed, since the user named it;
* offline mode (HF_HUB_OFFLINE) is respected like for Hub files: a cached file is used, nothing else;
  a server found unreachable moments ago (by the start-up probe or a download) is not tried again for a
  while (`stylecore.engine.remote.known_unreachable`), so the failure comes at once, not after a timeout.

Every failure is a `stylecore.engine.remote.ModelUnavailable` with the URL and a remedy.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Iterable, Optional

from stylecore.engine.remote import ModelUnavailable, RemoteFile, known_unreachable, offline_mode, record_answer
from stylecore.progress import ByteProgress

__all__ = ["DEFAULT_HOSTS", "ENV_MIRRORS", "allow_hosts", "allowed_hosts", "downloads_dir", "fetch_url",
           "file_sha256", "mirrored_url", "remove_files", "url_local_file"]

DEFAULT_HOSTS = frozenset({"api.ngc.nvidia.com", "nvlabs-fi-cdn.nvidia.com"})
ENV_MIRRORS = "STYLECORE_URL_MIRRORS"
ENV_TIMEOUT = "STYLECORE_URL_TIMEOUT"  # seconds to connect, and to wait for each piece of the body
ATTEMPTS = 3  # a transfer broken off mid-file is restarted this many times in all
_CHUNK = 1 << 20
_CHECKPOINT_MAGIC = (b"\x80", b"PK\x03\x04")  # pickle protocol >= 2, zip (torch.save)

_extra_hosts: set[str] = set()
_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256 checked in this process
_url_locks: dict[str, threading.Lock] = {}  # one transfer per URL: a second request waits and finds the cache
_lock = threading.Lock()


# ---------------------------------------------------------------------------------------------
# settings


def allow_hosts(hosts: Iterable[str]) -> None:
    """Allow downloads from more hosts (a models file's `allowed_hosts`), for this process."""
    with _lock:
        _extra_hosts.update(h.strip().lower() for h in hosts if h and h.strip())


def allowed_hosts() -> frozenset[str]:
    with _lock:
        return DEFAULT_HOSTS | frozenset(_extra_hosts)


def _mirrors() -> list[tuple[str, str]]:
    """`STYLECORE_URL_MIRRORS="https://a.host=http://mirror/path,..."` as (prefix, replacement) pairs."""
    pairs = []
    for item in (os.environ.get(ENV_MIRRORS) or "").split(","):
        source, sep, target = item.strip().partition("=")
        if sep and source and target:
            pairs.append((source.rstrip("/"), target.rstrip("/")))
    return pairs


def mirrored_url(url: str) -> str:
    """The URL actually contacted: the first matching mirror prefix replaced, else the URL itself."""
    for source, target in _mirrors():
        if url == source or url.startswith(source + "/"):
            return target + url[len(source):]
    return url


def _timeout() -> float:
    try:
        return max(0.1, float(os.environ.get(ENV_TIMEOUT) or 60))
    except ValueError:
        return 60.0


def downloads_dir() -> Path:
    """Beside the converted-checkpoint cache: $STYLECORE_CACHE/../downloads, else ~/.cache/stylecore/downloads."""
    from stylecore.formats.cache import cache_dir

    return cache_dir().parent / "downloads"


def _file_name(url: str) -> str:
    """The name of the file a URL points at (what messages call it)."""
    return Path(urllib.parse.urlsplit(url).path).name


def _entry(url: str) -> Path:
    """One cache file per URL: the file's own name, prefixed by a short hash of the whole URL."""
    name = _file_name(url) or "download"
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:120]
    return downloads_dir() / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{safe}"


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _read_record(path: Path) -> Optional[dict]:
    try:
        record = json.loads(_record_path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("sha256"), str) else None


# ---------------------------------------------------------------------------------------------
# state without network


def url_local_file(file: RemoteFile) -> Optional[Path]:
    """The file, when it is in the download cache with its record and the recorded size."""
    path = _entry(file.url or "")
    record = _read_record(path)
    try:
        size = path.stat().st_size
    except OSError:
        return None
    return path if record is not None and record.get("size") == size else None


# ---------------------------------------------------------------------------------------------
# fetch


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def remove_files(*paths: Path) -> None:
    """Remove a refused cache entry (file, link, record), whatever is left of it."""
    for leftover in paths:
        try:
            os.unlink(leftover)
        except OSError:
            pass


def _check_expected(file: RemoteFile, size: int, sha: str) -> Optional[str]:
    if file.size and size != file.size:
        return f"it has {size:,} bytes, but the card expects {file.size:,} bytes"
    if file.sha256 and sha != file.sha256:
        return f"its SHA-256 is {sha[:12]}... but the card expects {file.sha256[:12]}..."
    return None


def _verify_cached(file: RemoteFile, path: Path, progress: ByteProgress) -> Path:
    """A cached file: its size every time, its SHA-256 on this process's first use (or after a change)."""
    record = _read_record(path) or {}
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _lock:
        known = _verified.get(key)
    if known is None:
        if progress is not None:
            progress(stat.st_size, stat.st_size, f"checking {_file_name(file.url or '')}")
        known = file_sha256(path) if stat.st_size == record.get("size") else ""
    problem = None
    if stat.st_size != record.get("size") or known != record.get("sha256"):
        problem = (f"the cached file {path} no longer matches what was downloaded "
                   f"({stat.st_size:,} bytes, recorded {record.get('size', 0):,}; the SHA-256 differs)")
    else:
        mismatch = _check_expected(file, stat.st_size, known)
        problem = f"the cached file {path} is not the file this card was made for: {mismatch}" if mismatch else None
    if problem:
        remove_files(path, _record_path(path))
        raise ModelUnavailable(file, "corrupt", problem + "; it was removed", "use the model again to download it anew")
    with _lock:
        _verified[key] = known
    if progress is not None:
        progress(stat.st_size, stat.st_size, f"{_file_name(file.url or '')} is in the cache")
    return path


class _Bar:
    """The progress object pooch drives (`total`, `update`, `reset`, `close`), forwarding to `progress`."""

    def __init__(self, progress: ByteProgress, label: str):
        self.progress, self.label, self.total, self.done = progress, label, None, 0

    def update(self, n: int) -> None:
        self.done += int(n)
        total = self.total or None
        if self.progress is not None:
            self.progress(min(self.done, total) if total else self.done, total, f"downloading {self.label}")

    def reset(self) -> None:
        self.done = 0

    def close(self) -> None:
        pass


def _stalled(exc: BaseException) -> bool:
    """A transfer that broke off or went silent mid-body (requests reports a read timeout inside the body
    as a ConnectionError): worth a restart, and a timeout rather than 'unreachable' when it persists."""
    import requests
    from urllib3.exceptions import ReadTimeoutError

    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ReadTimeout)):
        return True
    return isinstance(exc, requests.ConnectionError) and any(isinstance(a, ReadTimeoutError) for a in exc.args)


def _explain(file: RemoteFile, url: str, exc: BaseException) -> ModelUnavailable:
    import requests

    retry = "retry later; NVIDIA's servers are sometimes slow or busy"
    if isinstance(exc, requests.HTTPError):
        code = getattr(exc.response, "status_code", None)
        if code == 404:
            return ModelUnavailable(file, "file-not-found", f"the server answered 404: there is no file at {url}",
                                    "check the URL in the card or the spec")
        if code in (401, 403):
            return ModelUnavailable(file, "auth", f"the server refused access to {url} (HTTP {code})",
                                    retry, otherwise=True)
        return ModelUnavailable(file, "hub-error", f"the server answered HTTP {code} for {url}", retry,
                                otherwise=True)
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return ModelUnavailable(file, "incomplete",
                                f"the download of {url} broke off {ATTEMPTS} times; nothing was kept",
                                retry, otherwise=True)
    if isinstance(exc, requests.Timeout) or _stalled(exc):
        return ModelUnavailable(file, "timeout", f"{url} did not answer within {_timeout():g} s ({ENV_TIMEOUT})",
                                f"{retry} (or raise {ENV_TIMEOUT})", otherwise=True)
    if isinstance(exc, requests.ConnectionError):
        return ModelUnavailable(file, "offline", f"{urllib.parse.urlsplit(url).netloc} could not be reached ({exc})",
                                "connect to the internet and retry", otherwise=True)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EPERM):
        return ModelUnavailable(file, "disk", f"the file could not be written to {downloads_dir()}: {exc.strerror}",
                                "free disk space or set STYLECORE_CACHE to a writable folder with room")
    return ModelUnavailable(file, "hub-error", f"downloading {url} failed ({type(exc).__name__}: {exc})",
                            retry, otherwise=True)


def _transfer(file: RemoteFile, url: str, part: Path, progress: ByteProgress) -> None:
    """Stream `url` into `part`, restarting a transfer that breaks off mid-file (pooch does the HTTP)."""
    import pooch
    import requests

    timeout = _timeout()
    label = _file_name(file.url or url)
    for attempt in range(1, ATTEMPTS + 1):
        bar = _Bar(progress, label)
        # identity: a compressed body would be decoded to another size than the announced one
        downloader = pooch.HTTPDownloader(progressbar=bar, chunk_size=_CHUNK, timeout=(timeout, timeout),
                                          headers={"User-Agent": "stylecore (StyleGAN demo hub)",
                                                   "Accept-Encoding": "identity"})
        try:
            downloader(url, str(part), None)
        except requests.RequestException as exc:
            if not _stalled(exc) or attempt == ATTEMPTS:
                raise
            time.sleep(0.5 * attempt)
            continue
        size = part.stat().st_size
        if bar.total and size != bar.total:  # the server announced one size and sent another
            if attempt == ATTEMPTS:
                raise requests.exceptions.ChunkedEncodingError(f"received {size} of {bar.total} bytes")
            continue
        return


def fetch_url(file: RemoteFile, progress: ByteProgress = None, refresh: bool = False) -> Path:
    """The file, downloaded on first use into the download cache and verified; see the module doc.
    Concurrent calls for one URL download it once (the others wait, then use the cached file)."""
    with _lock:
        url_lock = _url_locks.setdefault(file.url or "", threading.Lock())
    with url_lock:
        return _fetch_url(file, progress, refresh)


def _fetch_url(file: RemoteFile, progress: ByteProgress, refresh: bool) -> Path:
    url = file.url or ""
    actual = mirrored_url(url)
    parts = urllib.parse.urlsplit(actual)
    host = (parts.hostname or "").lower()
    if actual == url and (parts.scheme != "https" or host not in allowed_hosts()):
        what = "is not https" if parts.scheme != "https" else f"is on {host}, which is not an allowed host"
        raise ModelUnavailable(file, "not-allowed", f"the address {url} {what}",
                               "models files may allow more hosts with allowed_hosts = [\"host\"] (https only); "
                               f"allowed now: {', '.join(sorted(allowed_hosts()))}")
    path = _entry(url)
    if not refresh and url_local_file(file) is not None:
        return _verify_cached(file, path, progress)
    if offline_mode():
        raise ModelUnavailable(file, "offline",
                               f"offline mode is on (HF_HUB_OFFLINE) and {url} is not in the cache {downloads_dir()}",
                               "unset HF_HUB_OFFLINE and retry", otherwise=True)
    down = known_unreachable(actual)
    if down is not None:
        raise ModelUnavailable(file, "offline", f"{parts.netloc} could not be reached ({down})",
                               "connect to the internet and retry", otherwise=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise _explain(file, url, exc) from exc
    part = Path(name)
    try:
        if progress is not None:
            progress(0, None, f"connecting to {host}")
        _transfer(file, actual, part, progress)
        with open(part, "rb") as f:
            head = f.read(64)
        if not head.startswith(_CHECKPOINT_MAGIC):
            kind = "a JSON document" if head.lstrip().startswith((b"{", b"[")) else \
                "an HTML page" if head.lstrip()[:1] == b"<" else "not a checkpoint"
            raise ModelUnavailable(file, "not-a-checkpoint", f"the server sent {kind} instead of the file for {url} "
                                   f"(it begins {head[:40]!r}); nothing was cached",
                                   "retry later (NGC sometimes answers with a status page), or download the file "
                                   "in a browser and point the card's local_path at it")
        size, sha = part.stat().st_size, file_sha256(part)
        mismatch = _check_expected(file, size, sha)
        if mismatch:
            raise ModelUnavailable(file, "corrupt", f"the file downloaded from {url} is not the one this card was "
                                   f"made for: {mismatch}; it was discarded", "the file upstream changed: check the "
                                   "card, or remove its sha256/size if the new file is wanted")
        record = {"url": url, "size": size, "sha256": sha, "downloaded": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                      time.gmtime())}
        _record_path(path).write_text(json.dumps(record, indent=1))  # first: a file without its record is no entry
        os.replace(part, path)
        stat = path.stat()
        with _lock:
            _verified[(str(path), stat.st_size, stat.st_mtime_ns)] = sha
    except BaseException as exc:  # an interrupt too: never leave a half file behind
        part.unlink(missing_ok=True)
        if isinstance(exc, ModelUnavailable) or not isinstance(exc, Exception):
            raise
        error = _explain(file, url, exc)
        if error.kind == "offline":
            record_answer(actual, str(exc))  # the next file from this server fails at once
        raise error from exc
    if progress is not None:
        progress(size, size, f"{_file_name(url)} is ready")
    return path
