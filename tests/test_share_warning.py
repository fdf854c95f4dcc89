"""`--share` prints SHARE_WARNING before the app goes public.

A real share link needs the internet (a tunnel to gradio.live), so `gr.Blocks.launch` is the one
stub here: it records its arguments instead of serving. Everything before it (flags, model
manager, building every tab, the queue) runs for real.
"""
from __future__ import annotations

import gradio as gr
import pytest

import app


@pytest.fixture
def launches(monkeypatch) -> list:
    calls: list = []

    def fake_launch(self, *args, **kwargs):
        calls.append((self, kwargs))

    monkeypatch.setattr(gr.Blocks, "launch", fake_launch)
    return calls


def test_warning_says_what_is_exposed():
    text = app.SHARE_WARNING
    for fragment in ("--share", "public", "Anyone with the link", "upload", "download", "Stop the app"):
        assert fragment in text, fragment


def test_share_prints_the_warning_before_launching(launches, capsys):
    app.main(["--share", "--device", "cpu", "--port", "7999"])
    err = capsys.readouterr().err
    assert app.SHARE_WARNING in err
    (blocks, kwargs), = launches
    assert kwargs["share"] is True and kwargs["server_name"] == "127.0.0.1"


def test_no_warning_without_share(launches, capsys):
    app.main(["--device", "cpu", "--port", "7999"])
    assert app.SHARE_WARNING not in capsys.readouterr().err
    (blocks, kwargs), = launches
    assert kwargs["share"] is False
