"""StyleGAN demo hub: assemble the tabs and launch. Run `python app.py --help` for the flags."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from stylecore.engine.threads import configure_environment

configure_environment()  # the OpenMP wait policy: before anything (spaces, gradio, the tabs) imports torch

from stylecore.engine.reachability import BackgroundProbe, Reachability  # noqa: E402  (no torch, no gradio)

# Run as the app, the network probe starts here and runs while gradio, torch and the tabs import (seconds),
# so its answer is usually in by the time the tabs choose their default models; nothing waits for it.
STARTUP_PROBE: Optional[BackgroundProbe] = BackgroundProbe().start() if __name__ == "__main__" else None

import spaces  # first: Hugging Face's `spaces` package (when installed) refuses to load while gradio is half-imported
import gradio as gr

import spaces.domains
import spaces.editing
import spaces.generate
import spaces.inversion
import spaces.retrieval
import spaces.styleclip
import spaces.stylenerf
import spaces.video
from stylecore.engine.defaults import default_cards
from stylecore.engine.manager import ModelManager, parse_bytes
from stylecore.engine.prefetch import Prefetch
from stylecore.engine.zoo import Zoo

# Build order matters: Inversion hands codes to Editing; StyleCLIP, Domains and Retrieve read its codes.
TABS = (spaces.generate.GenerateTab, spaces.editing.EditingTab, spaces.inversion.InversionTab,
        spaces.styleclip.StyleClipTab, spaces.domains.DomainsTab, spaces.retrieval.RetrievalTab, spaces.video.VideoTab,
        spaces.stylenerf.StyleNerfTab)
SHARE_WARNING = ("WARNING: --share publishes this hub at a public gradio.live address. Anyone with the link can "
                 "run models on this machine, upload images and download every result; models named in "
                 "--models are listed to them. Stop the app to close the link.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="StyleGAN demo hub")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="also publish a temporary public link")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--models", default=None, help="TOML/JSON file of extra or overriding model cards")
    parser.add_argument("--model", action="append", default=[], metavar="SPEC",
                        help="add one model: hf://owner/repo/file.pkl[@revision] or a local path (repeatable)")
    parser.add_argument("--memory-budget", default=None, help="memory for loaded models, e.g. 8GB")
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("STYLECORE_CONCURRENCY", 2)),
                        help="requests processed at once per event")
    parser.add_argument("--queue-size", type=int, default=int(os.environ.get("STYLECORE_QUEUE_SIZE", 64)),
                        help="requests allowed to wait in the queue")
    return parser


def build_app(manager: ModelManager, prefetch: Optional[Prefetch] = None) -> gr.Blocks:
    """The hub's Blocks: one tab per class in TABS, under the default models' download status when
    a Space fetches them (once the start-up probe found the network up)."""
    with gr.Blocks(title="StyleGAN demo hub") as demo:
        gr.Markdown("# StyleGAN demo hub\nStyleGAN2, StyleGAN3 and StyleNeRF with the released checkpoints, "
                    "loaded safely from the Hugging Face Hub and NVIDIA: generation, inversion, editing, text "
                    "edits, 3D views and videos.")
        if prefetch is not None:
            gr.Markdown(lambda: prefetch.status() if prefetch.started else "", every=2.0)
        with gr.Tabs():
            for tab in TABS:
                tab(manager).layout()
    return demo


def after_probe(reach: Reachability, prefetch: Optional[Prefetch]) -> None:
    """Once the start-up probe has answered: say on the console why the tabs open on the demo networks,
    or, on a Space (whose cache starts empty), fetch the tabs' default models now rather than in the
    first visitor's request."""
    if not reach.online:
        detail = f" ({reach.detail})" if reach.detail else ""
        print(f"Opening on the demo networks: {reach.reason}{detail}", file=sys.stderr, flush=True)
    elif prefetch is not None:
        prefetch.start()


def make_manager(args: argparse.Namespace) -> ModelManager:
    """The model manager the flags describe; bad flags raise ValueError with a clear message."""
    zoo = Zoo.from_sources(args.models)
    for spec in args.model:
        zoo.add_spec(spec)
    budget = parse_bytes(args.memory_budget) if args.memory_budget else None
    return ModelManager(zoo, device=args.device, memory_budget=budget)


STYLESHEET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spaces", "style.css")
demo: Optional[gr.Blocks] = None  # module level, where Gradio's reloader on Spaces looks for it


def main(argv: Optional[Sequence[str]] = None) -> None:
    global demo
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        manager = make_manager(args)
    except (ValueError, KeyError) as exc:
        parser.error(str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc))
    probe = STARTUP_PROBE or BackgroundProbe().start()
    manager.reachability = probe  # PROBING until it answers: tabs built before then open on the demo networks
    prefetch = Prefetch(default_cards(manager.zoo)) if os.environ.get("SPACE_ID") else None
    probe.when_done(lambda reach: after_probe(reach, prefetch))
    demo = build_app(manager, prefetch)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=args.queue_size)
    if args.share:
        print(SHARE_WARNING, file=sys.stderr, flush=True)
    # show_error: Gradio's own input checks (types, ranges, upload paths) then reach the user as messages.
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, show_error=True,
                css_paths=[STYLESHEET])


if __name__ == "__main__":
    main()
