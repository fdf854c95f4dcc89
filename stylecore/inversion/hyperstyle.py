"""HyperStyle inversion (Alaluf et al. 2022): a W code from an encoder, then a hypernetwork that
predicts, over a few passes, per-image offsets of the generator's weights so that the code renders
the image.

The released model is two files (trysem/DualStyleGANplus `models/hyperstyle/`): `hyperstyle_ffhq.pt`
(`state_dict` = `hypernet.*` + the rosinality `decoder.*`, `opts`, `latent_avg`) and the W encoder
`faces_w_encoder.pt` (pSp layout: `encoder.*` = `WEncoder`, `decoder.*`, `opts`). Both are read as data
only (the project's restricted `torch.load`); the decoder becomes this project's official StyleGAN2
through `load_generator` (cached like any generator). As in the original, the W encoder's own decoder
and latent_avg are not used: its code is added to HyperStyle's latent_avg and drawn by HyperStyle's
decoder.

Inference, as the original's `run_inversion`: codes = W encoder(x) + latent_avg stay fixed;
ŷ0 = decoder(codes); then for each pass Δ ← Δ + hypernet([x, ŷ pooled to 256]) and ŷ is drawn with
each tuned layer's weight W·(1 + Δ). The shared generator is never modified: each image is drawn in a
private view of the synthesis network holding its own tuned weights (stylecore.networks.private), so
concurrent requests cannot see each other's offsets.
"""
from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F

from stylecore.codes.generate import to_uint8
from stylecore.formats.errors import CheckpointError
from stylecore.inversion.encoders import (_IRSE50_STAGE_STARTS, _RESNET34_STAGE_STARTS, _latent_avg, _opts_dict,
                                          _sub_state, prepare_images, read_checkpoint)
from stylecore.inversion.optimize import InversionResult, synthesize
from stylecore.networks.hyperstyle import (SHARED_LAYERS, LayerShape, SharedWeightsHyperNetResNet, WEncoder,
                                           layer_names, layer_shapes)
from stylecore.networks.private import with_tensors
from stylecore.progress import Progress, ShouldStop, report, stop_requested

__all__ = ["HyperStyleModel", "HyperStyleStep", "HyperStyleRun", "DEFAULT_ITERATIONS", "INPUT_SIZE",
           "load_hyperstyle", "load_w_encoder", "build_hyperstyle", "on_decoder", "tuned_weights", "run", "invert"]

PathLike = Union[str, "os.PathLike[str]"]
DEFAULT_ITERATIONS = 5  # the inference script's n_iters_per_batch (the stored opts hold the training value)
INPUT_SIZE = (256, 256)
HYPERNET_TYPE = "SharedWeightsHyperNetResNet"
_OPTS_SUMMARY = ("encoder_type", "dataset_type", "input_nc", "output_size", "layers_to_tune", "n_iters_per_batch",
                 "w_encoder_checkpoint_path", "w_encoder_type")
_BLOCK_KEY = re.compile(r"^refinement_blocks\.(\d+)\.")
_ALIAS_KEY = re.compile(r"^refinement_blocks\.\d+\.hypernet\.(w1|b1|w2|b2)$")


@dataclass
class HyperStyleModel:
    """A loaded HyperStyle: hypernetwork, W encoder, decoder (official StyleGAN2) and latent_avg."""

    hypernet: SharedWeightsHyperNetResNet
    w_encoder: WEncoder
    decoder: torch.nn.Module
    latent_avg: torch.Tensor  # [num_ws, w_dim], added to the W encoder's code
    opts: dict = field(default_factory=dict)
    path: str = ""
    w_encoder_path: str = ""
    notes: list[str] = field(default_factory=list)
    input_size: tuple[int, int] = INPUT_SIZE  # what the W encoder and the hypernetwork see (smaller in tests)

    @property
    def device(self) -> torch.device:
        return self.latent_avg.device

    @property
    def resolution(self) -> int:
        return int(self.decoder.img_resolution)

    @property
    def tuned_layers(self) -> list[int]:
        """Offset indices the hypernetwork predicts (rosinality order; see `layer_names`)."""
        return self.hypernet.tuned_layers

    @property
    def tuned_names(self) -> list[str]:
        """The synthesis parameters HyperStyle changes, e.g. 'b8.conv0.weight'."""
        names = layer_names(self.resolution)
        return [names[i] for i in self.tuned_layers]


@dataclass
class HyperStyleStep:
    """One pass: the offsets accumulated so far (layer index -> [N, out, in, k, k]) and the image."""

    offsets: dict[int, torch.Tensor]
    image: torch.Tensor  # [N, 3, R, R] in about [-1, 1]


@dataclass
class HyperStyleRun:
    """A batch through HyperStyle: the fixed codes, the W encoder's image, and one step per pass."""

    codes: torch.Tensor  # [N, num_ws, w_dim], latent_avg included
    start_image: torch.Tensor  # [N, 3, R, R]: the codes drawn with the unchanged decoder
    steps: list[HyperStyleStep]
    start_seconds: float = 0.0
    cancelled: bool = False


# -------------------------------------------------------------------------------------------------
# loading


def _read(path: PathLike) -> tuple[str, Mapping, dict]:
    """(path, checkpoint, opts) of a pSp-style checkpoint, read as data only."""
    path, ckpt = read_checkpoint(path, "HyperStyle", "{'state_dict', 'opts', 'latent_avg'}")
    return path, ckpt, _opts_dict(ckpt.get("opts"), path)


def _shape(state: Mapping[str, torch.Tensor], key: str, prefix: str, path: str) -> tuple[int, ...]:
    if not isinstance(state.get(key), torch.Tensor):
        raise CheckpointError(path, f"key '{prefix}{key}' is missing")
    return tuple(state[key].shape)


def _load_strict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str, path: str) -> None:
    """Assign the file's tensors to a meta-built module after an exact name and shape check."""
    from stylecore.formats.loader import describe_mismatch

    expected = module.state_dict()
    problems = describe_mismatch(expected, dict(state))
    if problems:
        raise CheckpointError(path, f"the weights do not match {what}: {problems}")
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True, assign=True)


def load_w_encoder(path: PathLike, n_styles: int, device: Union[str, torch.device] = "cpu") -> WEncoder:
    """HyperStyle's W encoder (`faces_w_encoder.pt`): only its `encoder.*` tensors are used."""
    path, ckpt, opts = _read(path)
    state = ckpt["state_dict"]
    enc = _sub_state(state, "encoder.")
    if not enc:
        hint = (" (this is the HyperStyle model itself; its W encoder is the other file, e.g. faces_w_encoder.pt)"
                if _sub_state(state, "hypernet.") else "")
        raise CheckpointError(path, f"no encoder.* weights in the checkpoint's state_dict{hint}")
    encoder_type = opts.get("encoder_type", "WEncoder")
    if encoder_type != "WEncoder" or "styles.0.linear.weight" in enc:
        raise CheckpointError(path, f"this is a {encoder_type if encoder_type != 'WEncoder' else 'W+'} encoder; "
                                    "HyperStyle starts from its WEncoder checkpoint (e.g. faces_w_encoder.pt)")
    input_nc = _shape(enc, "input_layer.0.weight", "encoder.", path)[1]
    widths = tuple(_shape(enc, f"body.{i}.res_layer.1.weight", "encoder.", path)[0] for i in _IRSE50_STAGE_STARTS)
    style_dim = _shape(enc, "linear.weight", "encoder.", path)[0]
    with torch.device("meta"):
        module = WEncoder(n_styles, input_nc, widths, style_dim)
    _load_strict(module, enc, "a HyperStyle WEncoder", path)
    return module.eval().requires_grad_(False).to(device)


def _parse_layers(value: Any) -> Optional[list[int]]:
    """opts['layers_to_tune'] ('0,2,3,...'; '' = every layer) as indices; None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return sorted(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        return None


def _hypernet_kwargs(hyper: Mapping[str, torch.Tensor], shapes: list[LayerShape], path: str) -> dict[str, Any]:
    """Constructor arguments read from the `hypernet.*` key shapes and the decoder's layer shapes."""
    w1 = _shape(hyper, "shared_weight_hypernet.w1", "hypernet.", path)
    code_dim, shared = w1[0], w1[1] // 9
    tuned = sorted({int(m.group(1)) for k in hyper if (m := _BLOCK_KEY.match(k))})
    beyond = [i for i in tuned if i >= len(shapes)]
    if beyond:
        raise CheckpointError(path, f"the hypernetwork tunes layer {beyond[0]}, but the decoder has {len(shapes)} "
                                    "tunable layers: the file's hypernet and decoder do not belong together")
    hyper_blocks = [i for i in tuned if i in SHARED_LAYERS]
    refine_blocks = [i for i in tuned if i not in SHARED_LAYERS]
    kwargs: dict[str, Any] = {
        "layers": [shapes[i] if i in tuned else None for i in range(len(shapes))],
        "input_nc": _shape(hyper, "conv1.weight", "hypernet.", path)[1],
        "widths": tuple(_shape(hyper, f"body.{i}.conv1.weight", "hypernet.", path)[0] for i in _RESNET34_STAGE_STARTS),
        "code_dim": code_dim, "shared_channels": shared}
    if hyper_blocks:
        kwargs["hyper_inner"] = _shape(hyper, f"refinement_blocks.{hyper_blocks[0]}.convs.0.weight", "hypernet.",
                                       path)[0]
    if refine_blocks:
        kwargs["refine_inner"] = _shape(hyper, f"refinement_blocks.{refine_blocks[0]}.convs.0.weight", "hypernet.",
                                        path)[0]
    return kwargs


def _unalias(hyper: Mapping[str, torch.Tensor], path: str) -> dict[str, torch.Tensor]:
    """The shared hypernetwork is saved under each hyper block's name too; every copy must be the
    same tensor, and one object is then loaded under all names (the module is shared)."""
    out = dict(hyper)
    for key, value in hyper.items():
        m = _ALIAS_KEY.match(key)
        if not m:
            continue
        canonical = f"shared_weight_hypernet.{m.group(1)}"
        source = hyper.get(canonical)
        same = isinstance(source, torch.Tensor) and isinstance(value, torch.Tensor) and (
            value is source or (value.shape == source.shape and (value.data_ptr() == source.data_ptr()
                                                                 or torch.equal(value, source))))
        if not same:
            raise CheckpointError(path, f"hypernet.{key} differs from hypernet.{canonical}: the shared "
                                        "hypernetwork's copies must be identical")
        out[key] = source
    return out


def _check_opts(opts: dict, hyper: Mapping[str, torch.Tensor], path: str) -> None:
    """Refusals the options and key names allow before anything is built (the decoder included)."""
    encoder_type = opts.get("encoder_type", HYPERNET_TYPE)
    if encoder_type != HYPERNET_TYPE:
        variant = " (the separable-kernel variant)" if "Separable" in str(encoder_type) else ""
        raise CheckpointError(path, f"hypernetwork type {encoder_type!r}{variant} is not supported; supported: "
                                    f"{HYPERNET_TYPE}")
    if "cars" in str(opts.get("dataset_type", "")):
        raise CheckpointError(path, "the cars HyperStyle model (192x256 inputs, cropped outputs) is not supported")
    stated = _parse_layers(opts.get("layers_to_tune"))
    found = sorted({int(m.group(1)) for k in hyper if (m := _BLOCK_KEY.match(k))})
    if stated and stated != found:
        raise CheckpointError(path, f"opts layers_to_tune {opts['layers_to_tune']!r} disagree with the stored "
                                    f"refinement blocks (layers {','.join(map(str, found))})")


def build_hyperstyle(hypernet_state: Mapping[str, torch.Tensor], decoder: torch.nn.Module, w_encoder: WEncoder,
                     latent_avg: Optional[torch.Tensor], opts: Optional[dict] = None, path: str = "",
                     w_encoder_path: str = "") -> HyperStyleModel:
    """A HyperStyleModel from the `hypernet.*` tensors (prefix stripped), an official StyleGAN2 decoder
    and a W encoder; the hypernetwork's shape is read from the tensors and checked against the decoder."""
    opts = dict(opts or {})
    device = next(decoder.parameters()).device
    _check_opts(opts, hypernet_state, path)
    output_size = opts.get("output_size")
    if isinstance(output_size, int) and output_size != decoder.img_resolution:
        raise CheckpointError(path, f"opts say output_size {output_size}, but the decoder is "
                                    f"{decoder.img_resolution} px")
    kwargs = _hypernet_kwargs(hypernet_state, layer_shapes(decoder.synthesis), path)
    if kwargs["input_nc"] != 6:
        raise CheckpointError(path, f"the hypernetwork takes {kwargs['input_nc']} input channels; HyperStyle's "
                                    "takes 6 (image and current reconstruction)")
    found = [i for i, shape in enumerate(kwargs["layers"]) if shape is not None]
    if opts.get("layers_to_tune") == "" and len(found) != len(kwargs["layers"]):
        raise CheckpointError(path, f"opts layers_to_tune '' (every layer) disagree with the stored refinement "
                                    f"blocks (layers {','.join(map(str, found))})")
    try:
        with torch.device("meta"):
            hypernet = SharedWeightsHyperNetResNet(**kwargs)
    except ValueError as exc:  # a shared layer whose decoder shape the shared hypernetwork cannot predict
        raise CheckpointError(path, str(exc)) from None
    _load_strict(hypernet, _unalias(hypernet_state, path), "a HyperStyle SharedWeightsHyperNetResNet", path)
    num_ws, w_dim = int(decoder.num_ws), int(decoder.w_dim)
    if w_encoder.linear.out_features != w_dim:
        raise CheckpointError(w_encoder_path or path, f"the W encoder writes {w_encoder.linear.out_features}-wide "
                                                      f"codes; the decoder's w is {w_dim}")
    w_encoder.n_styles = num_ws
    notes = [f"HyperStyle tuning {len(found)} of {len(kwargs['layers'])} generator layers, "
             f"decoder {getattr(decoder, 'checkpoint_info', {}).get('source', 'given')}"]
    if latent_avg is None:
        avg = decoder.mapping.w_avg.detach().float().expand(num_ws, w_dim).clone()
        notes.append("no latent_avg stored: the decoder's w_avg is used")
    else:
        avg = _latent_avg(latent_avg, num_ws, w_dim, path)
    return HyperStyleModel(hypernet.eval().requires_grad_(False).to(device), w_encoder.to(device), decoder,
                           avg.to(device), {k: opts[k] for k in _OPTS_SUMMARY if k in opts}, path, w_encoder_path,
                           notes)


def _sibling_w_encoder(path: str, opts: dict) -> Optional[str]:
    """The W encoder file the opts name, looked for beside the HyperStyle file (as the Hub stores them)."""
    named = opts.get("w_encoder_checkpoint_path")
    names = [os.path.basename(named)] if isinstance(named, str) and named else []
    for name in names + ["faces_w_encoder.pt"]:
        candidate = os.path.join(os.path.dirname(path), name)
        if os.path.isfile(candidate):
            return candidate
    return None


def load_hyperstyle(path: PathLike, w_encoder_path: Optional[PathLike] = None,
                    device: Union[str, torch.device] = "cpu") -> HyperStyleModel:
    """Load `hyperstyle_ffhq.pt` and its W encoder (by default the file its opts name, beside it).

    Raises `CheckpointError` naming the file for unreadable files and unknown layouts, and
    `UnsafeCheckpointError` for pickles that ask for code; nothing stored in the files is executed.
    """
    from stylecore.formats.loader import load_generator

    path, ckpt, opts = _read(path)
    state = ckpt["state_dict"]
    hyper = _sub_state(state, "hypernet.")
    if not hyper:
        hint = (" (this is an encoder checkpoint: pSp / e4e / ReStyle load with load_encoder, and a WEncoder is "
                "HyperStyle's w_encoder_path)") if _sub_state(state, "encoder.") else ""
        raise CheckpointError(path, f"no hypernet.* weights in the checkpoint's state_dict{hint}")
    if not _sub_state(state, "decoder."):
        raise CheckpointError(path, "no decoder.* weights in the checkpoint's state_dict")
    _check_opts(opts, hyper, path)
    stored_avg = ckpt.get("latent_avg")
    del ckpt, state  # the decoder is read again (and cached) by load_generator
    if w_encoder_path is None:
        w_encoder_path = _sibling_w_encoder(path, opts)
        if w_encoder_path is None:
            raise CheckpointError(path, "HyperStyle starts from its W encoder: give its file (w_encoder_path, e.g. "
                                        "faces_w_encoder.pt); none was found beside this file")
    decoder = load_generator(path, device)
    w_encoder = load_w_encoder(w_encoder_path, int(decoder.num_ws), device)
    return build_hyperstyle(hyper, decoder, w_encoder, stored_avg, opts, path, os.fspath(w_encoder_path))


# -------------------------------------------------------------------------------------------------
# technique


def on_decoder(model: HyperStyleModel, G: torch.nn.Module) -> HyperStyleModel:
    """`model` tuning the generator G instead of its own decoder (the app's loaded network, so the tuned
    weights are offsets of the very generator that draws the code and its edits); the layers' shapes must agree."""
    if G is model.decoder:
        return model
    if int(G.img_resolution) != model.resolution or int(G.num_ws) != model.latent_avg.shape[0] or \
            layer_shapes(G.synthesis) != layer_shapes(model.decoder.synthesis):
        raise ValueError(f"this HyperStyle was made for a {model.resolution} px StyleGAN2 of its own layer shapes; "
                         f"the chosen generator ({int(G.img_resolution)} px) is another network")
    return replace(model, decoder=G)


def tuned_weights(model: HyperStyleModel, offsets: Mapping[int, torch.Tensor], index: int = 0
                  ) -> dict[str, torch.Tensor]:
    """Image `index`'s tuned synthesis parameters, W·(1 + Δ) per tuned layer, by parameter name
    (as `with_tensors` / `pti.render_tuned` take them)."""
    names = layer_names(model.resolution)
    params = dict(model.decoder.synthesis.named_parameters())
    return {names[i]: params[names[i]].detach().float() * (1 + delta[index]) for i, delta in offsets.items()}


def _draw(model: HyperStyleModel, codes: torch.Tensor, offsets: Mapping[int, torch.Tensor]) -> torch.Tensor:
    """Each image with its own offsets, in its own private view of the shared synthesis network."""
    synthesis = model.decoder.synthesis
    return torch.cat([synthesize(with_tensors(synthesis, tuned_weights(model, offsets, n)), codes[n:n + 1], True)
                      for n in range(codes.shape[0])])


@torch.no_grad()
def run(model: HyperStyleModel, images: Any, iterations: Optional[int] = None, progress: Progress = None,
        should_stop: ShouldStop = None) -> HyperStyleRun:
    """HyperStyle on a batch ([N, 3, H, W] uint8 or floats in [-1, 1], resized to `model.input_size`).

    `progress(fraction, message)` is told after the W encoder and after each pass; `should_stop` is
    checked after each pass, and a stop keeps the passes done (`cancelled`).
    """
    iterations = DEFAULT_ITERATIONS if iterations is None else int(iterations)
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, not {iterations}")
    begin = time.perf_counter()
    x = prepare_images(images, 3, model.input_size, model.device)
    G = model.decoder
    codes = model.w_encoder(x)[:, :G.num_ws] + model.latent_avg.unsqueeze(0)
    start_image = synthesize(G.synthesis, codes, True)
    result = HyperStyleRun(codes, start_image, [], time.perf_counter() - begin)
    report(progress, 1 / (iterations + 1), "HyperStyle: W encoder")
    previous = F.adaptive_avg_pool2d(start_image, model.input_size)
    offsets: dict[int, torch.Tensor] = {}
    for t in range(iterations):
        predicted = model.hypernet(torch.cat([x, previous], dim=1))
        offsets = {i: delta if i not in offsets else offsets[i] + delta
                   for i, delta in enumerate(predicted) if delta is not None}
        image = _draw(model, codes, offsets)
        result.steps.append(HyperStyleStep(offsets, image))
        previous = F.adaptive_avg_pool2d(image, model.input_size)
        report(progress, (t + 2) / (iterations + 1), f"HyperStyle: pass {t + 1} of {iterations}")
        if t + 1 < iterations and stop_requested(should_stop):
            result.cancelled = True
            break
    return result


def invert(model: HyperStyleModel, image: Any, iterations: Optional[int] = None, progress: Progress = None,
           should_stop: ShouldStop = None) -> InversionResult:
    """One image ([H, W, 3] or [1, 3, H, W] uint8, or [1, 3, H, W] in [-1, 1]) as an InversionResult:
    `ws` the fixed W code, `weights` the tuned synthesis parameters to draw it (and its edits) with,
    `iterations` the image after each pass, `start` the W encoder's own result."""
    begin = time.perf_counter()
    out = run(model, image, iterations, progress, should_stop)
    if out.codes.shape[0] != 1:
        raise ValueError(f"invert takes one image; got {out.codes.shape[0]} (use run for a batch)")
    final = out.steps[-1]
    start = InversionResult("HyperStyle W encoder", "W", out.codes.cpu(), to_uint8(out.start_image)[0],
                            seconds=out.start_seconds, steps=1)
    note = (f"HyperStyle: {len(out.steps)} passes; the code is drawn with per-image offsets of "
            f"{len(final.offsets)} generator layers")
    return InversionResult("HyperStyle", "W + weight offsets", out.codes.cpu(), to_uint8(final.image)[0],
                           seconds=time.perf_counter() - begin, steps=len(out.steps),
                           iterations=[to_uint8(s.image)[0] for s in out.steps], cancelled=out.cancelled,
                           start=start, note=note,
                           weights={k: v.cpu() for k, v in tuned_weights(model, final.offsets).items()})
