"""Is the network there? One quick, bounded probe per download source, run once at start-up.

The answer decides what a first visit sees (real models, or the demo networks and a banner saying
why), so it must come fast and never hang: every probe has a short timeout, they run side by side,
and offline mode (HF_HUB_OFFLINE) answers without any request. A probe only asks a server for its
headers; nothing is downloaded. The app runs it on a thread (`BackgroundProbe`) so that start-up never
waits for it, and what it finds is remembered (`stylecore.engine.remote.record_answer`): downloads from
a server it could not reach then fail at once instead of retrying.
"""
from __future__ import annotations

import concurrent.futures
import os
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Optional

from stylecore.engine.downloads import mirrored_url
from stylecore.engine.hub import hub_endpoint
from stylecore.engine.online import PROBE_TIMEOUT
from stylecore.engine.remote import offline_mode, record_answer, truthy

__all__ = ["Reachability", "BackgroundProbe", "probe", "NGC_PROBE_URL", "ENV_DEMO_DEFAULTS", "NOT_PROBED",
           "UNPROBED", "PROBING"]

NGC_PROBE_URL = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/"
ENV_DEMO_DEFAULTS = "STYLECORE_DEMO_DEFAULTS"  # "1": open every tab on the demo networks, probe nothing


@dataclass(frozen=True)
class Reachability:
    """What the start-up probe found: each source reachable or not; `reason` in plain words for the page,
    `detail` (the addresses and errors) for the console."""

    hub: bool
    ngc: bool
    reason: str = ""
    detail: str = ""

    @property
    def online(self) -> bool:
        return self.hub or self.ngc


NOT_PROBED = "nothing was probed"
UNPROBED = Reachability(False, False, NOT_PROBED)  # a manager outside the app: demo defaults, no banner
PROBING = Reachability(False, False, "the network is still being probed")  # like UNPROBED until the answer


def _answers(url: str, timeout: float) -> Optional[str]:
    """None when the server answers at all (any HTTP status), else the reason it did not."""
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "stylecore-probe"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # an HTTP error is still an answer: the host is reachable
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc))


def probe(timeout: float = PROBE_TIMEOUT) -> Reachability:
    """Probe the Hub endpoint (HF_ENDPOINT) and NVIDIA's NGC (through STYLECORE_URL_MIRRORS) side by side."""
    if truthy(os.environ.get(ENV_DEMO_DEFAULTS)):
        return Reachability(False, False, f"{ENV_DEMO_DEFAULTS} is set")
    if offline_mode():
        return Reachability(False, False, "offline mode is on (HF_HUB_OFFLINE)")
    targets = {"hub": hub_endpoint() + "/api/whoami-v2", "ngc": mirrored_url(NGC_PROBE_URL)}
    with concurrent.futures.ThreadPoolExecutor(len(targets)) as pool:
        found = dict(zip(targets, pool.map(lambda url: _answers(url, timeout), targets.values())))
    for name, why in found.items():
        record_answer(targets[name], why)
    names = {"hub": "the Hugging Face Hub", "ngc": "NVIDIA's model server (NGC)"}
    down = [names[name] for name, why in found.items() if why]
    detail = "; ".join(f"{name} ({targets[name]}): {why}" for name, why in found.items() if why)
    reason = f"{' and '.join(down)} could not be reached" if down else ""
    return Reachability(found["hub"] is None, found["ngc"] is None, reason, detail)


class BackgroundProbe:
    """`probe` on a daemon thread, so that start-up goes on while it runs (it takes up to its timeout when
    a server does not answer). `result()` is PROBING until it ends; `when_done` runs a function with the
    answer once it is there (at once when it already is)."""

    def __init__(self, timeout: float = PROBE_TIMEOUT):
        self.timeout = timeout
        self._result = PROBING
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._waiting: list[Callable[[Reachability], None]] = []
        self._thread = threading.Thread(target=self._run, name="stylecore-probe", daemon=True)

    def start(self) -> "BackgroundProbe":
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            result = probe(self.timeout)
        except Exception as exc:  # a background thread must never take the app down
            result = Reachability(False, False, f"the network probe failed ({type(exc).__name__}: {exc})")
        with self._lock:
            self._result = result
            self._done.set()
            waiting, self._waiting = self._waiting, []
        for fn in waiting:
            fn(result)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def result(self, wait: Optional[float] = 0.0) -> Reachability:
        """The answer, or PROBING while the probe runs; waits up to `wait` seconds for it first (None: as
        long as the probe may take, its timeout and a second more)."""
        if wait is None or wait > 0:
            self._done.wait(self.timeout + 1.0 if wait is None else wait)
        return self._result

    def when_done(self, fn: Callable[[Reachability], None]) -> None:
        """Call `fn(answer)` when the probe ends: on its thread, or now when it already has."""
        with self._lock:
            if not self._done.is_set():
                self._waiting.append(fn)
                return
        fn(self._result)
