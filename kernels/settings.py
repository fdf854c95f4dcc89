"""The environment switches of the kernels, read on every call so a user or a test can flip them."""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_LOCK_TIMEOUT_S = 600.0


def enabled() -> bool:
    """False when STYLECORE_KERNELS=0: nothing is built or loaded and the torch ops run silently."""
    return os.environ.get("STYLECORE_KERNELS", "1").strip() != "0"


def verbose() -> bool:
    """STYLECORE_KERNELS_VERBOSE=1 shows the full compiler output, not just the one-line reason."""
    return os.environ.get("STYLECORE_KERNELS_VERBOSE", "0").strip() not in ("", "0")


def cache_root() -> Path:
    """Where finished builds live: $STYLECORE_KERNELS_CACHE or ~/.cache/stylecore/kernels."""
    configured = os.environ.get("STYLECORE_KERNELS_CACHE", "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "stylecore" / "kernels"


def lock_timeout() -> float:
    """Seconds to wait for another process building the same extension before building privately."""
    raw = os.environ.get("STYLECORE_KERNELS_LOCK_TIMEOUT", "").strip()
    try:
        return max(float(raw), 0.0) if raw else DEFAULT_LOCK_TIMEOUT_S
    except ValueError:
        return DEFAULT_LOCK_TIMEOUT_S
