"""Is the network there? One quick, bounded probe per download source, run once at start-up.

The answer decides what a first visit sees (real models, or the demo networks and a banner saying
why), so it must come fast and never hang: every probe has a short timeout, they run side by side,
and offline mode (HF_HUB_OFFLINE) answers without any request. A probe only asks a server for its
headers; nothing is downloaded.
"""
from __future__ import annotations

import concurrent.futures
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Optional

from stylecore.engine.downloads import mirrored_url
from stylecore.engine.hub import hub_endpoint
from stylecore.engine.remote import offline_mode, truthy

__all__ = ["Reachability", "probe", "NGC_PROBE_URL", "ENV_DEMO_DEFAULTS", "NOT_PROBED", "UNPROBED"]

NGC_PROBE_URL = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/"
ENV_DEMO_DEFAULTS = "STYLECORE_DEMO_DEFAULTS"  # "1": open every tab on the demo networks, probe nothing
PROBE_TIMEOUT = float(os.environ.get("STYLECORE_PROBE_TIMEOUT", 3.0))


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
    names = {"hub": "the Hugging Face Hub", "ngc": "NVIDIA's model server (NGC)"}
    down = [names[name] for name, why in found.items() if why]
    detail = "; ".join(f"{name} ({targets[name]}): {why}" for name, why in found.items() if why)
    reason = f"{' and '.join(down)} could not be reached" if down else ""
    return Reachability(found["hub"] is None, found["ngc"] is None, reason, detail)
