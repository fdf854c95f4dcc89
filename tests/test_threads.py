"""The engine's CPU thread policy (stylecore.engine.threads): the OpenMP wait policy set before torch
loads, and each request's share of the cores."""
from __future__ import annotations

import subprocess
import sys
import threading

import torch

from stylecore.engine import threads


def test_configure_environment_sets_passive_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    threads.configure_environment()
    assert threads.os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    threads.configure_environment()
    assert threads.os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_the_command_line_sets_the_policy_before_torch_is_imported():
    code = ("import os, sys; os.environ.pop('OMP_WAIT_POLICY', None); import stylecore.__main__; "
            "print('torch' in sys.modules, os.environ['OMP_WAIT_POLICY'])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "PASSIVE"], result.stderr


def test_usable_cores_is_positive_and_within_the_machine():
    assert 1 <= threads.usable_cores() <= (threads.os.cpu_count() or 1)


def test_requests_share_the_cores_and_restore_the_thread_count():
    before = torch.get_num_threads()
    first_inside, second_done = threading.Event(), threading.Event()
    seen = {}

    def first() -> None:
        with threads.request_threads(cores=4) as n:
            seen["first"] = (n, torch.get_num_threads())
            first_inside.set()
            second_done.wait(30)

    def second() -> None:
        first_inside.wait(30)
        with threads.request_threads(cores=4) as n:
            seen["second"] = (n, torch.get_num_threads())
        second_done.set()

    workers = [threading.Thread(target=first), threading.Thread(target=second)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert seen["first"] == (4, 4)  # alone: every core
    assert seen["second"] == (2, 2)  # beside another request: half
    with threads.request_threads(cores=3) as n:
        assert n == 3  # both finished: alone again
    assert torch.get_num_threads() == before
