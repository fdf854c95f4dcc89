"""How the engine uses CPU threads when requests run side by side or the machine is shared.

Two settings, both chosen here and nowhere else:

* the OpenMP wait policy, fixed when torch loads its OpenMP runtime: `configure_environment()`,
  called before torch is first imported (top of app.py and of `python -m stylecore`), sets
  OMP_WAIT_POLICY=PASSIVE unless the user set it. By default libgomp lets a thread that finished its
  share of a parallel region spin for a while; the fast CPU paths run thousands of small parallel
  ops, and when another process holds one of the cores the spinning thread burns the time slice
  the working one needs (StyleGAN3-T 256 px: 2.4 s quiet, 48 s beside one busy process). Passive
  threads sleep instead: a few percent slower on an idle machine, no collapse on a shared one
  (`python -m stylecore bench --contend 1` measures both);
* intra-op threads per request: `request_threads()` gives the calling thread `cores // running`
  threads for the duration of a request, where `running` counts the requests inside it, so two
  requests on two cores each get one thread instead of fighting over four.

This module does not import torch at import time, so importing it cannot defeat its own purpose.
"""
from __future__ import annotations

import contextlib
import math
import os
import threading
from pathlib import Path
from typing import Iterator, Optional

_lock = threading.Lock()
_running = 0


def configure_environment() -> None:
    """Set the OpenMP wait policy for this process; only effective before torch is imported.

    An explicit OMP_WAIT_POLICY (even empty: libgomp's own default) is left as it is.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def usable_cores() -> int:
    """The CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (containers)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cores, quota)) if quota else cores


def _cgroup_quota() -> Optional[int]:
    """Whole CPUs allowed by the cgroup (v2 cpu.max or v1 cfs quota), rounded up; None if unlimited."""
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text[0] != "max":
            return math.ceil(int(text[0]) / int(text[1]))
        return None
    except (OSError, IndexError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return math.ceil(quota / period) if quota > 0 and period > 0 else None


@contextlib.contextmanager
def request_threads(cores: Optional[int] = None) -> Iterator[int]:
    """Run one request's torch work in this thread with its share of the cores; yields the count.

    torch's intra-op thread count (OpenMP, MKL, oneDNN) belongs to the calling thread, so each
    request thread gets `cores // running` (at least 1), `cores` defaulting to usable_cores(), and
    the previous count back on exit. A request keeps the count it started with.
    """
    import torch

    global _running
    with _lock:
        _running += 1
        threads = max(1, (cores or usable_cores()) // _running)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(previous)
        with _lock:
            _running -= 1
