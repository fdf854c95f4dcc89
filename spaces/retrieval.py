"""Retrieve tab: part-aware retrieval (Retrieve in Style, Chong et al. 2021). For a face (a seed, a
code file or the Inversion tab's result) and one or more of its parts, the closest images of a
seeded gallery of the same model are found by comparing only the style channels that paint those
parts; one of them can then give the face its version of the part (the Editing tab's local edit).
Endpoints: /retrieve (the ranking) and /retrieve_transfer (the transfer).

The simple view asks for the face, what to compare (parts, or a region painted on the query: the editor
shows only when that is chosen) and how many results; the closed Advanced section holds the gallery's
size, variety, the part model's settings and a box to give a region without painting (the API's way).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import gradio as gr
import numpy as np
import torch

from spaces.common import (
    code_from,
    code_source,
    default_model,
    edit_status,
    listen,
    offline_banner,
    on_gpu,
    progress_callback,
    region_mask,
    request_number,
    required_int,
    required_number,
    required_seed,
    shown,
    user_errors,
)
from stylecore.edit import resources
from stylecore.edit.edits import PartEdit
from stylecore.edit.local_edit import PALETTE, PALETTE_NAMES
from stylecore.edit.retrieval import MAX_GALLERY
from stylecore.engine.manager import LoadedModel, ModelManager
from stylecore.codes.latents import seeds_to_ws

GALLERY_SIZE, TOP, PARTS, PART_SAMPLES = "Gallery size", "Results", "Number of parts", "Images to learn parts from"
MAX_TOP, MAX_PARTS, MAX_PART_SAMPLES = 32, len(PALETTE), 256
PAINTED = "painted"
COMPARE = [("the chosen parts", "parts"), ("a region I paint", PAINTED)]


def _parts(chosen: Any, k: int) -> list[int]:
    values = [chosen] if isinstance(chosen, (int, float, str)) else list(chosen or [])
    parts = [required_int(v, "part", 0, k - 1) for v in values]
    if not parts:
        raise ValueError("choose at least one part (see the part map)")
    return parts


def _picked(seeds: list[int], evt: gr.SelectData) -> Any:
    """A click on a result picks it to borrow from."""
    return seeds[evt.index] if 0 <= evt.index < len(seeds) else gr.skip()


def _part_choices(k: int) -> list[tuple[str, int]]:
    return [(f"{i}: {PALETTE_NAMES[i]}", i) for i in range(k)]


def _region(compare: str, editor: Any, box: Any) -> Optional[np.ndarray]:
    """The region to compare by, or None for the parts. A painted region is the editor's strokes, else
    the box (spaces.common.region_mask); with parts chosen, a box still overrides them, so an API caller
    that only gives a box (and no editor) searches by it as before."""
    if compare == PAINTED:
        return region_mask({} if editor is None else editor, box)  # {}: its message then names the brush
    return region_mask(None, box) if str(box or "").strip() else None


def _compared(compare: str) -> tuple[dict, dict]:
    """Show the parts, or the region editor, whichever the search compares."""
    return gr.update(visible=compare != PAINTED), gr.update(visible=compare == PAINTED)


@dataclass(frozen=True)
class _Query:
    """What every event of the tab starts from: the checked part-model settings, the model and the face."""

    model: LoadedModel
    ws: torch.Tensor  # the face's W+ code [1, num_ws, w_dim]
    psi: float
    k: int
    samples: int


class RetrievalTab:
    """The Retrieve tab: its layout and its events /retrieve and /retrieve_transfer."""

    def __init__(self, manager: ModelManager):
        self.manager = manager
        self.default = default_model(manager, "retrieve")

    def _query(self, model_id: str, source: str, seed: Any, truncation_psi: Any, code_file: Any,
               inversion_codes: Any, k: Any, part_samples: Any, progress: gr.Progress) -> _Query:
        """Check the part model's settings and the variety, then load the model and the face's code."""
        k = required_int(k, PARTS, 2, MAX_PARTS)
        samples = required_int(part_samples, PART_SAMPLES, 8, MAX_PART_SAMPLES)
        psi = required_number(truncation_psi, "variety", -2, 2)
        model = self.manager.get(model_id or self.default, progress=progress_callback(progress))
        return _Query(model, code_from(model, source, seed, psi, 0, code_file, inversion_codes), psi, k, samples)

    def retrieve(self, model_id: str = "", source: str = "seed", seed: float = 0, truncation_psi: float = 0.7,
                 code_file: Any = None, inversion_codes: Any = None, parts: Optional[list] = None,
                 top: float = 8, gallery_size: float = 32, k: float = 8, part_samples: float = 64,
                 region: str = "", compare: str = "parts", editor: Any = None, event: gr.EventData = None,
                 progress: gr.Progress = gr.Progress()):
        """The gallery images nearest to the query in the chosen parts, or in the parts a region covers:
        with `compare` 'painted', the strokes painted in `editor` (the ImageEditor's value), else the box
        `region` ('x0, y0, x1, y1' in fractions of the image; a box given with 'parts' is used too).
        Returns (query with its parts coloured, results with their seeds and distances, the nearest seed,
        the part to borrow, status, the results' seeds)."""
        size = required_int(gallery_size, GALLERY_SIZE, 2, MAX_GALLERY)
        top = required_int(top, TOP, 1, MAX_TOP)
        mask = _region(compare, editor, region)
        q = self._query(model_id, source, seed, truncation_psi, code_file, inversion_codes, k, part_samples, progress)
        chosen = _parts(parts, q.k) if mask is None else _parts(parts or [0], q.k)
        found = resources.retrieve(self.manager, q.model, q.ws, chosen, size, q.psi, top, q.k, q.samples, mask,
                                   progress_callback(progress))
        results = [(shown(found.gallery.images[m.index], event), f"seed {m.seed}: {m.distance:.3f}")
                   for m in found.matches]
        seeds = [m.seed for m in found.matches]
        names = ", ".join(f"{p} ({PALETTE_NAMES[p]})" for p in found.parts)
        plural = len(found.parts) > 1
        what = (f"part{'s' if plural else ''} {names} look" if mask is None else
                f"{'marked region' if compare == PAINTED else f'region ({region})'} (part{'s' if plural else ''} "
                f"{names}) looks")
        status = (f"The {len(results)} images of {len(found.gallery)} (seeds {found.gallery.seeds[0]}-"
                  f"{found.gallery.seeds[-1]}) whose {what} most like the query's. Click one to borrow a part "
                  "from it.")
        if q.model.untrained:
            status += " The demo network is untrained: the parts carry no meaning."
        return (shown(found.query_overlay, event), results, seeds[0],
                gr.update(choices=_part_choices(q.k), value=found.parts[0]), status, seeds)

    def mark_query(self, model_id: str = "", source: str = "seed", seed: float = 0, truncation_psi: float = 0.7,
                   code_file: Any = None, inversion_codes: Any = None, k: float = 8, part_samples: float = 64,
                   event: gr.EventData = None, progress: gr.Progress = gr.Progress()):
        """Put the query, its parts coloured, into the region editor: the part map shows where to paint, and
        a search is not needed first. Returns (editor value, query image, status)."""
        q = self._query(model_id, source, seed, truncation_psi, code_file, inversion_codes, k, part_samples, progress)
        overlay, _ = resources.parts_of(self.manager, q.model, q.ws, "", q.k, q.samples, progress_callback(progress))
        image = shown(overlay, event)
        return ({"background": image, "layers": [], "composite": image}, image,
                "Paint over what to search for, then press Find similar faces.")

    def transfer(self, model_id: str = "", source: str = "seed", seed: float = 0, truncation_psi: float = 0.7,
                 code_file: Any = None, inversion_codes: Any = None, reference_seed: float = 0, part: float = 0,
                 k: float = 8, part_samples: float = 64, event: gr.EventData = None,
                 progress: gr.Progress = gr.Progress()):
        """Give the query a gallery image's (its seed's) version of one part, with the Editing tab's local
        edit. Returns (before, after, status)."""
        reference_seed = required_seed(reference_seed, "borrow from seed")
        q = self._query(model_id, source, seed, truncation_psi, code_file, inversion_codes, k, part_samples, progress)
        spec_part = required_int(part, "part", 0, q.k - 1)
        reference = seeds_to_ws(q.model.G, [reference_seed], q.psi, device=q.model.device)
        spec = PartEdit(part=spec_part, reference=reference, k=q.k, samples=q.samples)
        result = resources.edit(self.manager, q.model, q.ws, spec, progress_callback(progress))
        return shown(result.before, event), shown(result.after, event), edit_status(q.model, result)

    def _seconds(self, a: dict) -> float:
        return 30 + 0.5 * request_number(a, "gallery_size", 32)

    def layout(self) -> None:
        """Lay out the tab in the current gr.Blocks and wire its events."""
        manager, default = self.manager, self.default
        retrieve = on_gpu(manager, default, seconds=self._seconds)(user_errors(self.retrieve))
        mark_query = on_gpu(manager, default, seconds=lambda a: 30)(user_errors(self.mark_query))
        transfer = on_gpu(manager, default, seconds=lambda a: 60)(user_errors(self.transfer))

        with gr.Tab("Retrieve", id="retrieve"):
            offline_banner(manager)
            gr.Markdown("Find the generated faces whose eyes, nose, hair ... look like this face's (Retrieve in "
                        "Style), then borrow that part from one of them.")
            with gr.Row():
                with gr.Column(scale=1):
                    model = gr.Dropdown(resources.part_models(manager.zoo), value=default, label="Model",
                                        info="StyleGAN2 models (parts are found in their feature maps)")
                    face = code_source()
                    compare = gr.Radio(COMPARE, value="parts", label="Compare",
                                       info="parts of the part map, or any region you paint on the face")
                    parts = gr.CheckboxGroup(_part_choices(8), value=[0], label="Parts to compare",
                                             info="the colours of the part map shown after a search; several "
                                                  "parts are compared together")
                    with gr.Column(visible=False) as painting:
                        mark = gr.Button("Mark a region on the query", size="sm")
                        editor = gr.ImageEditor(label="Region (paint over it)", type="numpy", height=320,
                                                sources=(), transforms=(), layers=False, elem_id="retrieve-region")
                    top = gr.Slider(1, MAX_TOP, value=8, step=1, label=TOP, info="how many of the nearest images")
                    go = gr.Button("Find similar faces", variant="primary")
                    with gr.Accordion("Advanced", open=False):
                        gallery_size = gr.Number(value=32, precision=0, label=GALLERY_SIZE,
                                                 info=f"generated images searched, 2 to {MAX_GALLERY}; made once "
                                                      "per model and kept")
                        psi = gr.Slider(-1.0, 2.0, value=0.7, step=0.05, label="Variety",
                                        info="truncation psi of the seeds (the face and the gallery): 1 = full "
                                             "variety; lower = more typical")
                        k = gr.Number(value=8, precision=0, label=PARTS, info=f"2 to {MAX_PARTS}: the parts the "
                                                                                "model's images are divided into")
                        region = gr.Textbox(value="", label="Region instead of parts",
                                            info="x0, y0, x1, y1 in fractions of the image (e.g. 0.3, 0.6, 0.7, "
                                                 "0.9 for a mouth): compare the parts it covers, each by its share; "
                                                 "with a painted region, used when nothing is painted")
                        part_samples = gr.Number(value=64, precision=0, label=PART_SAMPLES,
                                                 info=f"8 to {MAX_PART_SAMPLES}; more: steadier parts, slower once")
                with gr.Column(scale=2):
                    query = gr.Image(label="The face and its parts", type="numpy", format="png", interactive=False,
                                     height=256)
                    results = gr.Gallery(label="Nearest in the compared parts (seed: distance)", columns=4,
                                         height="auto", format="png", object_fit="contain", elem_id="retrieve-results")
                    status = gr.Markdown(elem_id="retrieve-status")
                    with gr.Row():
                        reference = gr.Number(value=0, precision=0, label="Borrow from seed",
                                              info="a result's seed: click a result to pick it")
                        part = gr.Dropdown(_part_choices(8), value=0, label="Part to borrow")
                        borrow = gr.Button("Borrow this part", interactive=False)
                    with gr.Row():
                        before = gr.Image(label="Before", type="numpy", format="png", interactive=False, height=320,
                                          elem_id="retrieve-before")
                        after = gr.Image(label="After", type="numpy", format="png", interactive=False, height=320,
                                         elem_id="retrieve-after")
                    transfer_status = gr.Markdown(elem_id="retrieve-transfer-status")

            listed = gr.JSON([], visible=False)  # the results' seeds in gallery order (not a gr.State: no heartbeat)
            k.change(lambda n: gr.update(choices=_part_choices(int(n)) if str(n).isdigit() and 2 <= int(n) <=
                                         MAX_PARTS else gr.skip()), [k], [parts], api_visibility="private")
            compare.change(_compared, [compare], [parts, painting], api_visibility="private")
            code = [model, *face.inputs(psi)]
            listen(mark.click, mark_query, [*code, k, part_samples], [editor, query, status], status,
                   api_visibility="private")
            found = listen(go.click, retrieve, [*code, parts, top, gallery_size, k, part_samples, region, compare,
                                                editor],
                           [query, results, reference, part, status, listed], status, api_name="retrieve")
            found.then(lambda seeds: gr.update(interactive=bool(seeds)), [listed], [borrow], api_visibility="private")
            results.select(_picked, [listed], [reference], api_visibility="private")
            listen(borrow.click, transfer, [*code, reference, part, k, part_samples], [before, after, transfer_status],
                   transfer_status, api_name="retrieve_transfer")
