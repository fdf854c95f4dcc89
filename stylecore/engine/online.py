"""Can a download server be reached now? Asked before a Hub download, so that a Hub that cannot be
reached fails the download at once: huggingface_hub alone retries with back-off for about 23 s
before giving up.

A recent answer (`stylecore.engine.remote.last_answer`: the start-up probe's, a failed download's, or
an earlier check's) is used as it is. Otherwise a quick check decides, and its answer is kept: a TCP
connection to the server (or to the proxy the environment names for it), bounded by PROBE_TIMEOUT even
when name resolution hangs. It sends no HTTP request, so the server sees no extra traffic. An
"unreachable" is trusted for RECHECK_AFTER seconds, a "reached" for TRUST_UP_FOR, so a network that
comes back (or goes) is noticed without a restart.
"""
from __future__ import annotations

import os
import socket
import threading
import time
import urllib.parse
import urllib.request
from typing import Optional

from stylecore.engine.remote import known_unreachable, last_answer, record_answer

__all__ = ["PROBE_TIMEOUT", "TRUST_UP_FOR", "unreachable"]

PROBE_TIMEOUT = float(os.environ.get("STYLECORE_PROBE_TIMEOUT", 3.0))
TRUST_UP_FOR = 300.0


def unreachable(url: str, timeout: float = PROBE_TIMEOUT) -> Optional[str]:
    """Why the server of `url` cannot be reached now, or None when it can: a recent answer is used as it
    is, otherwise a quick connection attempt (at most `timeout` seconds) decides and is remembered."""
    answer = last_answer(url)
    if answer is not None and answer.up and time.monotonic() - answer.at < TRUST_UP_FOR:
        return None
    known = known_unreachable(url)
    if known is not None:
        return known
    reason = _connect_problem(url, timeout)
    record_answer(url, reason)
    return reason


def _address(url: str) -> tuple[str, int]:
    """Where a connection for `url` goes: the proxy the environment sets for it, else the server itself."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _connect_problem(url: str, timeout: float) -> Optional[str]:
    """None when a TCP connection to the server (or its proxy) opens within `timeout`, else why not.
    The attempt runs on a daemon thread so that a hanging name lookup cannot hold the caller longer."""
    answer: list[Optional[str]] = []

    def attempt() -> None:
        try:
            with socket.create_connection(_address(url), timeout=timeout):
                answer.append(None)
        except OSError as exc:
            answer.append(str(exc) or type(exc).__name__)

    thread = threading.Thread(target=attempt, name="stylecore-reach", daemon=True)
    thread.start()
    thread.join(timeout)
    return answer[0] if answer else f"no answer within {timeout:g} s"
