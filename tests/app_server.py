"""Launch `python app.py` as a real server for end-to-end tests (gradio_client, raw HTTP, a browser).

    with launch_app(["--model", "x=hf://o/r/f.pkl"], env={...}, workdir=tmp) as app:
        Client(app.url) ...

The app runs in its own process group (cwd = the repository root) with a clean environment:
no Hub token, no offline switch, no Space variables and no models file of the developer's
leak in, unless `env` sets them; Gradio and huggingface_hub telemetry are off, 127.0.0.1 never
goes through a proxy, and Gradio's upload/output files land in `workdir`. `launch_app` waits
until the URL answers (the process output is in the failure message when it does not) and ends
the whole process group afterwards. Test modules wrap it in a module-scoped fixture: one launch
per module.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = float(os.environ.get("STYLECORE_TEST_APP_TIMEOUT", 60))

# Variables of the developer's shell that would change what the app does; a test sets them itself.
_SCRUB = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT",
          "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "STYLECORE_MODELS", "STYLECORE_URL_MIRRORS", "STYLECORE_MEMORY_BUDGET",
          "STYLECORE_CONCURRENCY", "STYLECORE_QUEUE_SIZE", "SYSTEM", "SPACE_ID", "SPACES_ZERO_GPU",
          "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "GRADIO_ROOT_PATH", "GRADIO_SHARE", "GRADIO_WATCH_DIRS",
          "GRADIO_HOT_RELOAD")
_LOCAL = "127.0.0.1,localhost"
# Without a proxy for 127.0.0.1, also in this process (gradio_client and urllib read these variables).
for _name in ("NO_PROXY", "no_proxy"):
    _current = os.environ.get(_name, "")
    if "127.0.0.1" not in _current:
        os.environ[_name] = f"{_current},{_LOCAL}" if _current else _LOCAL


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(overrides: Optional[Mapping[str, Optional[str]]] = None, workdir: Optional[Path] = None) -> dict:
    """The environment the app (or a helper process beside it) runs with; a None value removes a variable."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env.update({
        "PYTHONUNBUFFERED": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "DO_NOT_TRACK": "1",
        # Tabs open on the demo networks: the launches test controls, not first-visit downloads (which
        # tests/test_defaults.py covers by removing this with env={"STYLECORE_DEMO_DEFAULTS": None}).
        "STYLECORE_DEMO_DEFAULTS": "1",
        "NO_PROXY": os.environ["NO_PROXY"],
        "no_proxy": os.environ["no_proxy"],
    })
    if workdir is not None:
        workdir = Path(workdir)
        for name, sub in (("GRADIO_TEMP_DIR", "gradio"), ("TMPDIR", "tmp"), ("HF_HOME", "hf-home"),
                          ("HF_HUB_CACHE", "hf-cache"), ("STYLECORE_CACHE", "stylecore-cache")):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
            env[name] = str(workdir / sub)
    for key, value in (overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


@dataclass
class AppServer:
    """A running app: its base URL (with a trailing slash), process and log file."""

    url: str
    port: int
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        """Everything the app printed so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process.poll() is None


def _answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the app's process group, then SIGKILL whatever is left."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:  # children (e.g. a reload server thread's process) may outlive the leader
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process ignoring SIGKILL
        pass


def _tail(text: str, limit: int = 6000) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


@contextlib.contextmanager
def launch_app(args: Sequence[str] = (), env: Optional[Mapping[str, Optional[str]]] = None,
               workdir: Optional[Path] = None, timeout: float = START_TIMEOUT,
               attempts: int = 3) -> Iterator[AppServer]:
    """Run `python app.py --port <free port> *args`, yield it once its URL answers, stop it afterwards.

    `env` overrides `app_env()` (None removes a variable). A port taken between choosing and
    binding it (the app exits early) is retried with another port, `attempts` times in all.
    """
    own_dir = None
    if workdir is None:
        own_dir = tempfile.TemporaryDirectory(prefix="stylecore-app-")
        workdir = Path(own_dir.name)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    full_env = app_env(env, workdir)
    server: Optional[AppServer] = None
    failures: list[str] = []
    try:
        for attempt in range(1, attempts + 1):
            port = free_port()
            log_path = workdir / f"app-{port}.log"
            command = [sys.executable, str(REPO_ROOT / "app.py"), "--port", str(port), *args]
            with open(log_path, "wb") as log:
                process = subprocess.Popen(command, cwd=str(REPO_ROOT), env=full_env, stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True)
            candidate = AppServer(f"http://127.0.0.1:{port}/", port, process, log_path)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and candidate.alive():
                if _answers(candidate.url):
                    server = candidate
                    break
                time.sleep(0.25)
            if server is not None:
                break
            exited = not candidate.alive()
            _stop(process)
            output = candidate.log()
            port_taken = exited and ("port" in output.lower() and ("empty port" in output.lower()
                                                                   or "address already in use" in output.lower()))
            why = (f"exited with code {process.returncode}" if exited
                   else f"did not answer at {candidate.url} within {timeout:.0f} s")
            failures.append(f"attempt {attempt}: `{' '.join(command)}` {why}; its output:\n{_tail(output)}")
            if not port_taken:
                break
        if server is None:
            raise RuntimeError("the app did not start.\n" + "\n\n".join(failures))
        yield server
    finally:
        if server is not None:
            _stop(server.process)
        if own_dir is not None:
            own_dir.cleanup()


@contextlib.contextmanager
def api_client(server: AppServer, download_dir: Path) -> Iterator["object"]:
    """A gradio_client Client for the app: no telemetry, results downloaded into `download_dir`."""
    from gradio_client import Client

    client = Client(server.url, verbose=False, download_files=str(download_dir), analytics_enabled=False)
    try:
        yield client
    finally:
        client.close()
