"""Components one tab offers to the tabs built after it (Inversion's codes to StyleCLIP, Editing's
code inputs to Inversion's "Send to Editing"), by name, in the gr.Blocks being built.

Named offers instead of searching the layout for labels: renaming a label cannot silently break a
hand-off, and a tab built alone (no provider in its Blocks) simply gets None and offers downloads.
"""
from __future__ import annotations

from typing import Any, Optional

import gradio as gr

EDITING_CODE_INPUTS = "editing code inputs"  # (Code-from radio, Code file, the app's Tabs)
INVERSION_CODES = "inversion codes"  # the File list of the inversion's .npz codes

_ATTRIBUTE = "_stylecore_offers"


def _offers() -> Optional[dict[str, Any]]:
    root = gr.context.Context.root_block
    if root is None:
        return None
    if not hasattr(root, _ATTRIBUTE):
        setattr(root, _ATTRIBUTE, {})
    return getattr(root, _ATTRIBUTE)


def offer(name: str, value: Any) -> None:
    """Make `value` (components) available under `name` to the tabs built later in this Blocks."""
    offers = _offers()
    if offers is not None:
        offers[name] = value


def offered(name: str) -> Optional[Any]:
    """What an earlier tab of this Blocks offered under `name`, or None."""
    offers = _offers()
    return None if offers is None else offers.get(name)
