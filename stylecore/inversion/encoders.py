"""GAN inversion with pSp, e4e and ReStyle: load their released `.pt` files, encode images, refine.

`load_encoder(path)` reads a checkpoint as data only (`torch.load(weights_only=True)`), tells the
four kinds apart from `opts['encoder_type']` (with a key-based fallback), builds the encoder with
the released names, and loads the embedded rosinality decoder through `load_generator`, i.e.
converted into this project's official StyleGAN2 network (and cached like any generator).

Images go in as [N, 3, H, W] floats in [-1, 1] or uint8; they are resized to the encoder's input
size (256x256; 192x256 for cars) as the original transforms do. Codes come out as W+ with
`latent_avg` already added, ready for `decode` or any editing on the generator.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from stylecore.formats.errors import CheckpointError

__all__ = ["EncoderModel", "RestyleStep", "load_encoder", "encode", "decode", "restyle", "average_image",
           "preprocess", "prepare_images", "KINDS", "SUPPORTED_ENCODER_TYPES"]

PathLike = Union[str, "os.PathLike[str]"]
StepProgress = Callable[[int, int, str], None]

# encoder_type (as stored in opts) -> kind
SUPPORTED_ENCODER_TYPES = {
    "GradualStyleEncoder": "psp",
    "Encoder4Editing": "e4e",
    "BackboneEncoder": "restyle_psp",
    "ResNetBackboneEncoder": "restyle_psp",
    "ProgressiveBackboneEncoder": "restyle_e4e",
    "ResNetProgressiveBackboneEncoder": "restyle_e4e",
}
KINDS = ("psp", "e4e", "restyle_psp", "restyle_e4e")
DEFAULT_RESTYLE_ITERATIONS = 5
_OPTS_SUMMARY = ("encoder_type", "dataset_type", "input_nc", "label_nc", "output_size", "stylegan_size",
                 "start_from_latent_avg", "learn_in_w", "n_iters_per_batch")
_IRSE50_STAGE_STARTS = (0, 3, 7, 21)
_RESNET34_STAGE_STARTS = (0, 3, 7, 13)


@dataclass
class EncoderModel:
    """A loaded inversion model: encoder + decoder (official StyleGAN2) + what the technique needs."""

    kind: str
    encoder_type: str
    encoder: torch.nn.Module
    decoder: torch.nn.Module
    latent_avg: Optional[torch.Tensor]  # [n_styles, w_dim], added to the first encoder output
    n_styles: int
    input_nc: int
    input_size: tuple[int, int]  # (H, W) the encoder sees
    output_rows: Optional[tuple[int, int]]  # rows kept of the full-resolution image (cars), else None
    opts: dict = field(default_factory=dict)
    path: str = ""
    notes: list[str] = field(default_factory=list)
    _avg_pooled: Optional[torch.Tensor] = field(default=None, init=False, repr=False)

    @property
    def iterative(self) -> bool:
        """ReStyle models refine over iterations; pSp / e4e encode in one pass."""
        return self.kind.startswith("restyle")

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    @property
    def resolution(self) -> int:
        return int(self.decoder.img_resolution)

    @property
    def default_iterations(self) -> int:
        """The model's own `n_iters_per_batch` (5 upstream) for ReStyle, 1 for single-pass models."""
        if not self.iterative:
            return 1
        n = self.opts.get("n_iters_per_batch")
        return int(n) if isinstance(n, int) and not isinstance(n, bool) and n > 0 else DEFAULT_RESTYLE_ITERATIONS


class RestyleStep(NamedTuple):
    """One ReStyle iteration: W+ codes [N, n_styles, w_dim] and the decoded image [N, 3, H, W]."""

    codes: torch.Tensor
    image: torch.Tensor


# -------------------------------------------------------------------------------------------------
# loading


def _opts_dict(opts: Any, path: str) -> dict:
    if opts is None:
        return {}
    if isinstance(opts, argparse.Namespace):
        return dict(vars(opts))
    if isinstance(opts, Mapping):
        return dict(opts)
    raise CheckpointError(path, f"'opts' is a {type(opts).__name__}; expected a dict of training options")


def _sub_state(state: Mapping, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if isinstance(k, str) and k.startswith(prefix)}


def _encoder_type(opts: dict, enc: Mapping[str, torch.Tensor], path: str) -> str:
    """opts['encoder_type'], or the only reading the keys allow (pSp and e4e share key names)."""
    name = opts.get("encoder_type")
    if name is None:
        if "latlayer1.weight" in enc:
            return "Encoder4Editing" if "stylegan_size" in opts else "GradualStyleEncoder"
        raise CheckpointError(path, "the checkpoint's opts have no 'encoder_type' and its encoder keys do not "
                                    "identify one (ReStyle pSp and e4e flavours share key names)")
    if not isinstance(name, str) or name not in SUPPORTED_ENCODER_TYPES:
        raise CheckpointError(path, f"encoder_type {name!r} is not supported; supported: "
                                    f"{', '.join(SUPPORTED_ENCODER_TYPES)}")
    return str(name)


def _shape(enc: Mapping[str, torch.Tensor], key: str, path: str) -> tuple[int, ...]:
    if key not in enc or not isinstance(enc[key], torch.Tensor):
        raise CheckpointError(path, f"encoder key 'encoder.{key}' is missing")
    return tuple(enc[key].shape)


def _architecture(encoder_type: str, enc: Mapping[str, torch.Tensor], path: str) -> dict[str, Any]:
    """Constructor arguments read from the key shapes (input channels, widths, styles)."""
    resnet = encoder_type.startswith("ResNet")
    stem = "conv1.weight" if resnet else "input_layer.0.weight"
    starts = _RESNET34_STAGE_STARTS if resnet else _IRSE50_STAGE_STARTS
    unit_conv = "conv1.weight" if resnet else "res_layer.1.weight"
    widths = tuple(_shape(enc, f"body.{i}.{unit_conv}", path)[0] for i in starts)
    n_styles = 0
    while f"styles.{n_styles}.linear.weight" in enc:
        n_styles += 1
    if n_styles == 0:
        raise CheckpointError(path, "no style blocks (encoder.styles.0.linear.weight) in the encoder")
    return {"input_nc": _shape(enc, stem, path)[1], "n_styles": n_styles, "widths": widths,
            "style_dim": _shape(enc, "styles.0.linear.weight", path)[0]}


def _build_encoder(encoder_type: str, enc: dict[str, torch.Tensor], path: str
                   ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Construct on the meta device and assign the file's tensors with a strict name/shape check."""
    from stylecore.formats.loader import describe_mismatch
    from stylecore.networks.encoders import ENCODER_CLASSES

    args = _architecture(encoder_type, enc, path)
    with torch.device("meta"):
        module = ENCODER_CLASSES[encoder_type](**args)
    expected = module.state_dict()
    problems = describe_mismatch(expected, enc)
    if problems:
        raise CheckpointError(path, f"the encoder weights do not match a {encoder_type}: {problems}")
    state = {k: v.to(expected[k].dtype) for k, v in enc.items()}
    module.load_state_dict(state, strict=True, assign=True)
    return module.eval().requires_grad_(False), args


def _latent_avg(value: Any, n_styles: int, w_dim: int, path: str) -> torch.Tensor:
    """Any released latent_avg shape ([w], [1, w], [n, w]) as [n_styles, w]."""
    if not isinstance(value, torch.Tensor) or value.shape[-1] != w_dim or value.ndim > 2:
        shape = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise CheckpointError(path, f"latent_avg has shape {shape}; expected [{w_dim}], [1, {w_dim}] or "
                                    f"[{n_styles}, {w_dim}]")
    value = value.detach().to(torch.float32).reshape(-1, w_dim)
    if value.shape[0] == 1:
        return value.expand(n_styles, w_dim).clone()
    if value.shape[0] < n_styles:
        raise CheckpointError(path, f"latent_avg has {value.shape[0]} rows for {n_styles} encoder styles")
    return value[:n_styles].clone()


def _is_cars(opts: dict) -> bool:
    return "cars" in str(opts.get("dataset_type", ""))


def read_checkpoint(path: PathLike, kind: str, expected: str) -> tuple[str, Mapping]:
    """(path, checkpoint) of a pSp-style .pt (a dict holding a 'state_dict'), read as data only; the
    errors name the file, the `kind` it should have been and the layout `expected`."""
    from stylecore.formats.rosinality import load_torch_checkpoint

    path = os.fspath(os.path.expanduser(os.fspath(path)))
    if not os.path.isfile(path):
        raise CheckpointError(path, "no such file" if not os.path.exists(path) else "not a regular file")
    ckpt = load_torch_checkpoint(path)
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("state_dict"), Mapping):
        top = ", ".join(repr(k) for k in list(ckpt)[:8]) if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise CheckpointError(path, f"not a {kind} checkpoint (top level: {top}); expected {expected}")
    return path, ckpt


def load_encoder(path: PathLike, device: Union[str, torch.device] = "cpu") -> EncoderModel:
    """Load a pSp, e4e, ReStyle-pSp or ReStyle-e4e checkpoint; nothing stored in the file is executed.

    Raises `CheckpointError` (naming the file) for unreadable files and unknown layouts, and
    `UnsafeCheckpointError` for pickles that ask for code.
    """
    from stylecore.formats.loader import load_generator

    path, ckpt = read_checkpoint(path, "pSp / e4e / ReStyle", "{'state_dict': {encoder.*, decoder.*}, 'opts', "
                                                             "'latent_avg'}")
    state = ckpt["state_dict"]
    enc, dec = _sub_state(state, "encoder."), _sub_state(state, "decoder.")
    if not enc:
        other = "HyperStyle checkpoints (hypernet.*) are not supported; " if _sub_state(state, "hypernet.") else ""
        raise CheckpointError(path, f"{other}no encoder.* weights in the checkpoint's state_dict")
    if not dec:
        raise CheckpointError(path, "no decoder.* weights in the checkpoint's state_dict")
    if any(key.startswith("synthesis.input.") for key in dec):
        raise CheckpointError(path, "this encoder's decoder is a StyleGAN3 network (an encoder of stylegan3-editing, "
                                    "such as trysem/restyle-e4e-ffhq's restyle_e4e_ffhq.pt); only encoders over a "
                                    "StyleGAN2 decoder are supported: use the StyleGAN2 release, e.g. "
                                    "restyle_e4e_ffhq_encode.pt of yuval-alaluf/restyle-encoder")
    opts = _opts_dict(ckpt.get("opts"), path)
    encoder_type = _encoder_type(opts, enc, path)
    kind = SUPPORTED_ENCODER_TYPES[encoder_type]
    encoder, args = _build_encoder(encoder_type, enc, path)
    expected_nc = 6 if kind.startswith("restyle") else 3
    if args["input_nc"] != expected_nc and not (kind == "psp" and args["input_nc"] in (1, 19)):
        raise CheckpointError(path, f"a {encoder_type} with {args['input_nc']} input channels is not a known "
                                    f"{kind} layout (expected {expected_nc})")
    stored_avg = ckpt.get("latent_avg")
    has_avg_key = "latent_avg" in ckpt
    del ckpt, state, enc, dec  # the decoder is read again (and cached) by load_generator

    decoder = load_generator(path, device)
    n_styles, w_dim = args["n_styles"], int(decoder.w_dim)
    notes = [f"{kind} ({encoder_type}), decoder {decoder.checkpoint_info['source']}"]
    if args["style_dim"] != w_dim:
        raise CheckpointError(path, f"the encoder writes {args['style_dim']}-wide styles; the decoder's w is {w_dim}")
    if n_styles < decoder.num_ws:
        raise CheckpointError(path, f"the encoder has {n_styles} styles; the {decoder.img_resolution}px decoder "
                                    f"needs {decoder.num_ws}")
    if n_styles > decoder.num_ws:
        notes.append(f"only the first {decoder.num_ws} of {n_styles} codes drive the decoder")

    start_from_avg = kind.startswith("restyle") or bool(opts.get("start_from_latent_avg", has_avg_key))
    latent_avg = None
    if stored_avg is not None:
        latent_avg = _latent_avg(stored_avg, n_styles, w_dim, path)
    elif start_from_avg:  # e4e / ReStyle recompute it from the generator when the file lacks it
        latent_avg = decoder.mapping.w_avg.detach().float().cpu().expand(n_styles, w_dim).clone()
        notes.append("no latent_avg stored: the decoder's w_avg is used")
    if not start_from_avg:
        latent_avg = None

    cars = _is_cars(opts)
    model = EncoderModel(
        kind=kind, encoder_type=encoder_type, encoder=encoder.to(device), decoder=decoder,
        latent_avg=None if latent_avg is None else latent_avg.to(device), n_styles=n_styles,
        input_nc=args["input_nc"], input_size=(192, 256) if cars else (256, 256),
        output_rows=(64, 448) if cars and decoder.img_resolution == 512 else None,
        opts={k: opts[k] for k in _OPTS_SUMMARY if k in opts}, path=path, notes=notes)
    return model


# -------------------------------------------------------------------------------------------------
# technique


def preprocess(model: EncoderModel, images: Any) -> torch.Tensor:
    """Images -> the encoder's input: RGB in [-1, 1] at `model.input_size`, on the model's device.

    Accepts [N, 3, H, W] (or [N, H, W, 3], or one image without N) as a tensor or array, uint8
    (0..255, as ToTensor + Normalize(0.5, 0.5) would see them) or float already in [-1, 1].
    """
    channels = 3 if model.iterative else model.input_nc
    return prepare_images(images, channels, model.input_size, model.device)


def prepare_images(images: Any, channels: int, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """`preprocess` for any encoder (HyperStyle's too): `channels`-channel images at `size` on `device`."""
    x = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4:
        raise ValueError(f"images must be [N, 3, H, W]; got shape {list(x.shape)}")
    if x.shape[1] != channels and x.shape[-1] == channels:
        x = x.permute(0, 3, 1, 2)
    if x.shape[1] != channels:
        raise ValueError(f"images must have {channels} channels; got shape {list(x.shape)}")
    is_uint8 = x.dtype == torch.uint8
    x = x.to(device, torch.float32)
    if tuple(x.shape[-2:]) != tuple(size):
        scale = 255.0 if is_uint8 else 1.0
        x = F.interpolate(x / scale, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
        x = (x * 255.0).round().clamp(0, 255) if is_uint8 else x  # PIL resizes the uint8 image itself
    return (x / 255.0 - 0.5) / 0.5 if is_uint8 else x


def decode(model: EncoderModel, codes: torch.Tensor) -> torch.Tensor:
    """W+ codes -> full-resolution image (stored noise, as the encoders decode); cars keep rows 64:448."""
    G = model.decoder
    with torch.no_grad():
        img = G.synthesis(codes[:, :G.num_ws].to(model.device), noise_mode="const", force_fp32=True)
    if model.output_rows is not None:
        img = img[:, :, model.output_rows[0]:model.output_rows[1]]
    return img


def _pool(model: EncoderModel, image: torch.Tensor) -> torch.Tensor:
    """The encoders' face_pool: the image averaged down to the encoder's input size."""
    return F.adaptive_avg_pool2d(image, model.input_size)


def average_image(model: EncoderModel) -> torch.Tensor:
    """ReStyle's starting point: latent_avg decoded at full resolution, pooled to the input size [3, H, W]."""
    if model._avg_pooled is None:
        if model.latent_avg is None:
            raise ValueError("this model has no latent_avg to start ReStyle from")
        model._avg_pooled = _pool(model, decode(model, model.latent_avg.unsqueeze(0)))[0]
    return model._avg_pooled


def _encode_once(model: EncoderModel, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        codes = model.encoder(x)
    if model.latent_avg is not None:
        codes = codes + model.latent_avg.unsqueeze(0)
    return codes


def restyle(model: EncoderModel, images: Any, iterations: Optional[int] = None,
            progress: Optional[StepProgress] = None) -> list[RestyleStep]:
    """ReStyle's iterative refinement: one (codes, image) per iteration, the last being the result.

    Iteration 0 encodes [image, average image] on top of latent_avg; each later one encodes
    [image, previous reconstruction pooled to 256] as a residual on the previous codes.
    `progress(done, total, message)` is called after each iteration.
    """
    if not model.iterative:
        raise ValueError(f"{model.kind} encodes in a single pass; use encode() (restyle needs a ReStyle model)")
    iterations = model.default_iterations if iterations is None else int(iterations)
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, not {iterations}")
    x = preprocess(model, images)
    previous = average_image(model).unsqueeze(0).expand(x.shape[0], -1, -1, -1)
    codes: Optional[torch.Tensor] = None
    steps: list[RestyleStep] = []
    for i in range(iterations):
        with torch.no_grad():
            delta = model.encoder(torch.cat([x, previous], dim=1))
        codes = delta + (model.latent_avg.unsqueeze(0) if codes is None else codes)
        image = decode(model, codes)
        previous = _pool(model, image)
        steps.append(RestyleStep(codes, image))
        if progress is not None:
            progress(i + 1, iterations, f"ReStyle iteration {i + 1}/{iterations}")
    return steps


def encode(model: EncoderModel, images: Any) -> torch.Tensor:
    """Images -> W+ codes [N, n_styles, w_dim] (latent_avg included).

    pSp / e4e: one encoder pass. ReStyle: the codes of its last iteration, with the model's
    default number of iterations (use `restyle` to choose it or to see the intermediate steps).
    """
    if model.iterative:
        return restyle(model, images)[-1].codes
    return _encode_once(model, preprocess(model, images))
