"""A local HTTP server standing in for NVIDIA's NGC / CDN, on 127.0.0.1, with switchable behaviours.

    with FakeNGC() as ngc:
        ngc.add("/v2/models/.../stylegan3-t-ffhqu-256x256.pkl", data)
        monkeypatch.setenv("STYLECORE_URL_MIRRORS", ngc.mirrors)   # https://api.ngc.nvidia.com -> here

Per path, a behaviour: "ok" (honours Range requests, like NGC's storage), "drop" (sends half the body
under the full Content-Length, then closes: `drops` times, then serves normally), "stall" (sends half,
then goes silent for `delay` seconds before closing: `drops` times, then serves normally), "json" / "html" (a
200 with a status page instead of the file, as NGC sometimes answers), "slow" (waits `delay` seconds
before answering), "redirect" (302 to `target`). Unknown paths are 404. Every request is logged.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

NGC_PREFIX = "https://api.ngc.nvidia.com"
NGC_FILES = "/v2/models/nvidia/research/{family}/versions/1/files/{name}"


@dataclass
class Route:
    data: bytes = b""
    behaviour: str = "ok"
    drops: int = 1
    delay: float = 0.0
    target: str = ""


@dataclass
class FakeNGC:
    routes: dict = field(default_factory=dict)
    log: list = field(default_factory=list)  # (method, path, Range header or None)
    _server: Optional[ThreadingHTTPServer] = None

    def add(self, path: str, data: bytes = b"", behaviour: str = "ok", **kw) -> Route:
        self.routes[path] = Route(data, behaviour, **kw)
        return self.routes[path]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def mirrors(self) -> str:
        """The STYLECORE_URL_MIRRORS value that sends NVIDIA's URLs here."""
        return f"{NGC_PREFIX}={self.url},https://nvlabs-fi-cdn.nvidia.com={self.url}/nvlabs"

    def __enter__(self) -> "FakeNGC":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                self.answer(body=False)

            def do_GET(self) -> None:
                self.answer(body=True)

            def answer(self, body: bool) -> None:
                path = self.path.split("?", 1)[0]
                owner.log.append((self.command, path, self.headers.get("Range")))
                route = owner.routes.get(path)
                if route is None:
                    return self.send_bytes(404, b'{"detail": "not found"}', "application/json", body)
                if route.behaviour == "slow":
                    time.sleep(route.delay)
                if route.behaviour == "redirect":
                    self.send_response(302)
                    self.send_header("Location", route.target)
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                if route.behaviour == "json":
                    return self.send_bytes(200, b'{"requestStatus":{"statusCode":"SUCCESS","requestId":"x"}}',
                                           "application/json", body)
                if route.behaviour == "html":
                    return self.send_bytes(200, b"<!DOCTYPE html><html><body>Sign in</body></html>", "text/html", body)
                if route.behaviour in ("drop", "stall") and route.drops > 0 and body:
                    route.drops -= 1
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(route.data)))
                    self.send_header("Content-Type", "application/octet-stream")
                    self.end_headers()
                    self.wfile.write(route.data[: len(route.data) // 2])
                    self.wfile.flush()
                    if route.behaviour == "stall":
                        time.sleep(route.delay)
                    self.close_connection = True
                    return
                data, status, extra = route.data, 200, {}
                ranged = self.headers.get("Range", "")
                if ranged.startswith("bytes=") and ranged.endswith("-"):
                    start = int(ranged[len("bytes="):-1])
                    data, status = data[start:], 206
                    extra["Content-Range"] = f"bytes {start}-{len(route.data) - 1}/{len(route.data)}"
                self.send_bytes(status, data, "application/octet-stream", body, {"Accept-Ranges": "bytes", **extra})

            def send_bytes(self, status: int, data: bytes, kind: str, body: bool,
                           headers: Optional[dict] = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if body:
                    self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
