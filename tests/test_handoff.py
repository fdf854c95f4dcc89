"""Named hand-offs between tabs: found in the Blocks that offered them, in no other."""
from __future__ import annotations

import pytest

gr = pytest.importorskip("gradio")

from spaces.handoff import INVERSION_CODES, offer, offered  # noqa: E402


def test_offers_belong_to_their_blocks():
    assert offered(INVERSION_CODES) is None  # outside any Blocks
    with gr.Blocks():
        with gr.Tab("Inversion"):
            codes = gr.File(label="renamed freely", file_count="multiple")
            offer(INVERSION_CODES, codes)
        with gr.Tab("StyleCLIP"):
            assert offered(INVERSION_CODES) is codes
    with gr.Blocks():
        assert offered(INVERSION_CODES) is None  # a second app (or a tab built alone) gets nothing
