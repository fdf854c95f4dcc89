"""A fake Hugging Face Hub on 127.0.0.1, so the real `hf_hub_download` runs against it in tests.

It answers what huggingface_hub 2.x asks for a file (see file_download.py / utils/_http.py):

* ``HEAD|GET {endpoint}/[datasets/|spaces/]{repo_id}/resolve/{revision}/{filename}``: like the real
  Hub for an LFS file, a 302 to a CDN URL on a *second* port (a different origin, so the client
  stops there, keeps the metadata of the 302 and drops the Authorization header, as with the
  real CDN) with ``X-Repo-Commit``, ``X-Linked-Etag`` (the SHA-256) and ``X-Linked-Size``.
  Files added with ``lfs=False`` are served inline with ``ETag`` = git blob hash, like small
  git files. No ``X-Xet-Hash`` header is ever sent, so the client uses plain HTTP even when
  hf_xet is installed.
* errors with the real Hub's status and ``X-Error-Code``: unknown or private repo 401
  ``RepoNotFound`` (404 when a valid token lacks access), bad token 401 "Invalid credentials in
  Authorization header", gated 401/403 ``GatedRepo``, ``RevisionNotFound`` 404,
  ``EntryNotFound`` 404 (with ``X-Repo-Commit``).
* ``GET {cdn}/cdn/{sha256}`` with ``Range: bytes=N-`` support (206), so interrupted transfers resume.

Switches: `truncate` (declare the full length, send fewer bytes, close), `corrupt` (right size,
wrong bytes), `fail_status` (answer every Hub request with e.g. 503), `go_down` (stop listening:
connection refused), request log and counts. HTTP/1.0, one connection per request, so a
stopped server really refuses the next request.
"""
from __future__ import annotations

import hashlib
import http.server
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

GOOD_TOKEN = "hf_fake_good_token"


def commit_hash(repo_id: str, revision: str) -> str:
    """A stable 40-hex commit id for a (repo, revision); a revision that is already one is kept."""
    if re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    return hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()


def git_blob_hash(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeRepo:
    repo_id: str
    repo_type: str = "model"
    private: bool = False
    gated: bool = False
    allowed_tokens: set = field(default_factory=lambda: {GOOD_TOKEN})
    refs: dict = field(default_factory=dict)  # revision name -> commit
    files: dict = field(default_factory=dict)  # commit -> {filename: (bytes, lfs)}


@dataclass
class Truncation:
    at: int  # absolute byte offset where the transfer stops
    times: Optional[int] = None  # None = every time
    declare_full: bool = True  # announce the full length (then close early) or a short, honest length


@dataclass
class Request:
    method: str
    path: str
    headers: dict  # lower-case names
    server: str  # "hub" or "cdn"


class FakeHub:
    """Fake Hub + CDN; use as a context manager (or start()/stop())."""

    def __init__(self, files: Optional[Mapping[tuple, Mapping[str, bytes]]] = None):
        self.repos: dict[tuple, FakeRepo] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: list[Request] = []
        self.truncations: dict[str, Truncation] = {}  # by filename
        self.corrupt: set[str] = set()  # filenames
        self.fail_status: Optional[int] = None
        self.valid_tokens: set[str] = {GOOD_TOKEN}
        self._lock = threading.Lock()
        self._servers: dict[str, http.server.ThreadingHTTPServer] = {}
        self._ports: dict[str, int] = {}
        for (repo_id, revision), content in (files or {}).items():
            for filename, data in content.items():
                self.add_file(repo_id, filename, data, revision=revision)

    # -- content ------------------------------------------------------------------------------
    def repo(self, repo_id: str, repo_type: str = "model") -> FakeRepo:
        key = (repo_type, repo_id)
        if key not in self.repos:
            self.repos[key] = FakeRepo(repo_id=repo_id, repo_type=repo_type)
        return self.repos[key]

    def add_file(self, repo_id: str, filename: str, data: bytes, revision: str = "main", *,
                 repo_type: str = "model", lfs: bool = True, private: bool = False, gated: bool = False) -> str:
        """Host `data` at repo_id/filename@revision; returns the revision's commit hash."""
        repo = self.repo(repo_id, repo_type)
        repo.private = repo.private or private
        repo.gated = repo.gated or gated
        commit = commit_hash(repo_id, revision)
        repo.refs[revision] = commit
        repo.files.setdefault(commit, {})[filename] = (bytes(data), lfs)
        self.blobs[hashlib.sha256(data).hexdigest()] = bytes(data)
        return commit

    def truncate(self, filename: str, at: int, times: Optional[int] = None, declare_full: bool = True) -> None:
        """Stop sending `filename` at byte `at` (`times` transfers, or always)."""
        self.truncations[filename] = Truncation(at, times, declare_full)

    # -- bookkeeping --------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._ports['hub']}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._ports['cdn']}"

    def count(self, method: Optional[str] = None, server: Optional[str] = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests
                       if (method is None or r.method == method) and (server is None or r.server == server))

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    def _log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    # -- servers ------------------------------------------------------------------------------
    def start(self) -> "FakeHub":
        for name in ("hub", "cdn"):
            self._serve(name, self._ports.get(name, 0))
        return self

    def _serve(self, name: str, port: int) -> None:
        hub = self

        class Handler(_Handler):
            fake = hub
            role = name

        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        self._ports[name] = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        self._servers[name] = server

    def stop(self) -> None:
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def go_down(self) -> None:
        """Stop listening: every request now fails with 'connection refused'."""
        self.stop()

    def come_back(self) -> None:
        """Listen again on the same ports."""
        self.start()

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class _Handler(http.server.BaseHTTPRequestHandler):
    fake: FakeHub
    role: str
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_HEAD(self) -> None:
        self._handle(send_body=False)

    def do_GET(self) -> None:
        self._handle(send_body=True)

    # -- helpers ------------------------------------------------------------------------------
    def _reply(self, status: int, headers: Mapping[str, str], body: bytes = b"", send_body: bool = True) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body and body:
            self.wfile.write(body)

    def _error(self, status: int, code: Optional[str], message: str, send_body: bool,
               extra: Optional[Mapping[str, str]] = None) -> None:
        headers = {"X-Error-Message": message, "Content-Type": "application/json", **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._reply(status, headers, b'{"error": "%s"}' % message.encode(), send_body)

    def _handle(self, send_body: bool) -> None:
        fake = self.fake
        fake._log(Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, self.role))
        path = urllib.parse.urlsplit(self.path).path
        if self.role == "cdn" or path.startswith("/cdn/"):
            return self._cdn(path, send_body)
        if fake.fail_status is not None:
            return self._error(fake.fail_status, None, "Service Unavailable", send_body)
        m = re.fullmatch(r"/(?:(datasets|spaces)/)?(.+?)/resolve/([^/]+)/(.+)", path)
        if not m:
            return self._error(404, None, "Not Found", send_body)
        repo_type = {"datasets": "dataset", "spaces": "space"}.get(m.group(1) or "", "model")
        repo_id = urllib.parse.unquote(m.group(2))
        revision = urllib.parse.unquote(m.group(3))
        filename = urllib.parse.unquote(m.group(4))
        repo = fake.repos.get((repo_type, repo_id))

        auth = self.headers.get("Authorization") or ""
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        if token is not None and token not in fake.valid_tokens:
            return self._error(401, None, "Invalid credentials in Authorization header", send_body)
        if repo is None or (repo.private and token not in repo.allowed_tokens):
            return self._error(404 if token else 401, "RepoNotFound", "Repository not found", send_body)
        if repo.gated and token not in repo.allowed_tokens:
            status = 403 if token else 401
            return self._error(status, "GatedRepo", f"Access to model {repo_id} is restricted.", send_body)
        commit = repo.refs.get(revision) or (revision if revision in repo.files else None)
        if commit is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id: " + revision, send_body)
        entry = repo.files[commit].get(filename)
        if entry is None:
            return self._error(404, "EntryNotFound", f"{filename} does not exist on \"{revision}\"", send_body,
                               {"X-Repo-Commit": commit})
        data, lfs = entry
        if lfs:
            sha = hashlib.sha256(data).hexdigest()
            location = f"{fake.cdn}/cdn/{sha}?name={urllib.parse.quote(filename)}"
            return self._reply(302, {"Location": location, "X-Repo-Commit": commit, "X-Linked-Etag": f'"{sha}"',
                                     "X-Linked-Size": str(len(data)), "ETag": f'"{sha}"'}, b"", send_body)
        return self._reply(200, {"X-Repo-Commit": commit, "ETag": f'"{git_blob_hash(data)}"',
                                 "Content-Type": "application/octet-stream"}, data, send_body)

    def _cdn(self, path: str, send_body: bool) -> None:
        fake = self.fake
        sha = path.rsplit("/", 1)[-1]
        data = fake.blobs.get(sha)
        if data is None:
            return self._error(404, None, "NoSuchKey", send_body)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        filename = (query.get("name") or [""])[0]
        if filename in fake.corrupt:
            data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
        start = 0
        rng = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if rng:
            start = min(int(rng.group(1)), len(data))
        body = data[start:]
        cut: Optional[Truncation] = None
        with fake._lock:
            t = fake.truncations.get(filename)
            if send_body and t is not None and (t.times is None or t.times > 0):
                cut = t
                if t.times is not None:
                    t.times -= 1
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        status = 200
        if rng:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if cut is None:
            return self._reply(status, headers, body, send_body)
        sent = body[:max(0, cut.at - start)]
        if not cut.declare_full:  # an honest short response: the Hub's size check must catch it
            if rng:
                headers["Content-Range"] = f"bytes {start}-{start + len(sent) - 1}/{start + len(sent)}"
            return self._reply(status, headers, sent, send_body)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(sent)
        self.wfile.flush()
        self.close_connection = True
