"""The CPU's cache sizes, read once from Linux's sysfs, to size the slices the fast ops work on."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

CPU0_CACHE = Path("/sys/devices/system/cpu/cpu0/cache")


@functools.lru_cache(maxsize=None)
def cache_bytes(level: int) -> Optional[int]:
    """Size of cpu0's data (or unified) cache of `level` in bytes, None where it cannot be read."""
    try:
        for index in sorted(CPU0_CACHE.glob("index*")):
            if int((index / "level").read_text()) != level:
                continue
            if (index / "type").read_text().strip() not in ("Data", "Unified"):
                continue
            text = (index / "size").read_text().strip().upper()
            units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
            return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)
    except (OSError, ValueError):
        return None
    return None
