"""Competing load for `python -m stylecore bench --contend N`: busy processes or concurrent requests.

A free Space shares its cores: with a neighbour process (another replica, a batch job, a busy host)
or with the other requests of its own queue. The bench times a synthesis call under either kind of
load, so the thread policy of stylecore.engine.threads can be judged by its numbers.
"""
from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable, Iterator

BUSY_LOOP = "while True: pass"


@contextlib.contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """`count` single-threaded busy-loop processes for the duration of the block (ended after it)."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]
    try:
        time.sleep(0.2)  # let them start spinning before the timing begins
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def one_after_another(run: Callable[[], None], count: int, repeat: int) -> float:
    """Median wall seconds of `count` runs back to back (after one warm-up run)."""
    run()
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(count):
            run()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def at_once(run: Callable[[], None], count: int, repeat: int) -> float:
    """Median wall seconds until `count` runs started together in their own threads have all finished."""
    run()
    seconds = []
    for _ in range(repeat):
        errors: list[BaseException] = []

        def guarded() -> None:
            try:
                run()
            except BaseException as exc:  # re-raised in the caller's thread below
                errors.append(exc)

        threads = [threading.Thread(target=guarded) for _ in range(count)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds.append(time.perf_counter() - start)
        if errors:
            raise errors[0]
    return statistics.median(seconds)
