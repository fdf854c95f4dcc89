"""Face-identity embedding for identity-preserving losses: the InsightFace ArcFace IR-SE50 network
(TreB1eN's PyTorch port, released as `model_ir_se50.pth` and used by pSp / e4e / StyleCLIP's ID loss).

Layout (state-dict names as in the released file, so it loads strictly):
  input_layer  = Conv3x3(3->64, no bias), BatchNorm2d, PReLU           (shared with the pSp encoders)
  body         = 24 IR-SE units, stages (64,3) (128,4) (256,14) (512,3) (shared with the pSp encoders)
  output_layer = BatchNorm2d(512), Dropout(0.6), Flatten, Linear(512*7*7, 512), BatchNorm1d(512)
Input 112x112 RGB in [-1, 1]; output an L2-normalised 512-d embedding.

`identity_embedding` applies pSp's ID-loss preprocessing: average-pool to 256x256 when the image is
another size, crop rows 35:223 and columns 32:220, adaptive-average-pool to 112x112.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from stylecore.formats.errors import CheckpointError
from stylecore.engine.zoo import builtin_file
from stylecore.networks.encoders_backbone import (
    DEFAULT_WIDTHS,
    irse50_body,
    irse50_input_layer,
)

__all__ = ["ARCFACE_CARD", "ENV_ID_WEIGHTS", "IdentityNet", "IdentityWeightsError", "identity_weights_path",
           "load_identity", "identity_embedding", "identity_loss"]

ENV_ID_WEIGHTS = "STYLECORE_ID_WEIGHTS"
# The released IR-SE50 weights on the Hub (reference/real_files.md section 4: 175 MB, PT3 globals).
ARCFACE_CARD = builtin_file("arcface-ir-se50")
INPUT_SIZE = 112
OUTPUT_SPATIAL = 7  # 112 halved by the four stages
EMBED_DIM = 512
CROP_ROWS = (35, 223)
CROP_COLS = (32, 220)
POOL_SIZE = 256
# Index in `body` of each stage's first unit (IR-SE50 units per stage: 3, 4, 14, 3).
STAGE_STARTS = (0, 3, 7, 21)

PathLike = Union[str, "os.PathLike[str]"]


def identity_weights_path(explicit: Optional[str] = None,
                          progress: Optional[Callable[[int, Optional[int], str], None]] = None) -> Path:
    """The face-recognition weights to use: a file the user gave, else $STYLECORE_ID_WEIGHTS, else the
    built-in Hub card (downloaded once into the Hub cache; errors say how to supply the file instead)."""
    from stylecore.engine import hub
    from stylecore.engine.remote import ModelUnavailable

    chosen = (explicit or "").strip() or os.environ.get(ENV_ID_WEIGHTS, "").strip()
    if chosen:
        return Path(chosen).expanduser()
    try:
        return hub.fetch(ARCFACE_CARD, progress=progress)
    except ModelUnavailable as exc:
        raise ValueError(f"the identity loss needs face-recognition weights, and {ARCFACE_CARD.repo_id}/"
                         f"{ARCFACE_CARD.filename} could not be had ({exc.reason}): upload model_ir_se50.pth "
                         f"(ArcFace IR-SE50), set ${ENV_ID_WEIGHTS} to its path, or use identity lambda 0 to turn "
                         "the identity loss off") from exc


class IdentityWeightsError(CheckpointError, ValueError):
    """The face-recognition weights file is unreadable or is not an IR-SE50 ArcFace state dict."""


class IdentityNet(nn.Module):
    """ArcFace IR-SE50 (InsightFace `Backbone(112, 50, 'ir_se')`): 112x112 faces -> unit embeddings.

    Widths and `embed_dim` are parameters only so tests can build small copies; the released file
    uses the defaults."""

    def __init__(self, widths: Sequence[int] = DEFAULT_WIDTHS, embed_dim: int = EMBED_DIM, drop: float = 0.6):
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        self.embed_dim = int(embed_dim)
        self.input_layer = irse50_input_layer(3, self.widths[0])
        self.body = irse50_body(self.widths)
        last = self.widths[-1]
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(last),
            nn.Dropout(drop),
            nn.Flatten(),
            nn.Linear(last * OUTPUT_SPATIAL * OUTPUT_SPATIAL, self.embed_dim),
            nn.BatchNorm1d(self.embed_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, 112, 112] in [-1, 1] -> [N, embed_dim], unit length."""
        x = self.output_layer(self.body(self.input_layer(x)))
        return F.normalize(x, dim=1)


def _state_dict_of(obj: object, path: str) -> dict[str, torch.Tensor]:
    """The tensor dict inside a loaded file (a plain state dict, or one under 'state_dict')."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise IdentityWeightsError(path, "not a state dict of tensors; expected the ArcFace IR-SE50 weights "
                                         "(model_ir_se50.pth)")
    state = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _widths_from(state: Mapping[str, torch.Tensor], path: str) -> tuple[tuple[int, ...], int]:
    """Stage widths and embedding size read from the tensor shapes (the release: 64..512, 512)."""
    required = ["input_layer.0.weight", "output_layer.3.weight"]
    required += [f"body.{i}.res_layer.1.weight" for i in STAGE_STARTS]
    missing = [k for k in required if k not in state]
    if missing:
        sample = ", ".join(sorted(state)[:5])
        raise IdentityWeightsError(path, f"not the ArcFace IR-SE50 face-recognition weights (model_ir_se50.pth): "
                                         f"missing {', '.join(missing[:4])}; the file has keys like {sample}")
    try:
        widths = tuple(int(state[f"body.{i}.res_layer.1.weight"].shape[0]) for i in STAGE_STARTS)
        embed_dim = int(state["output_layer.3.weight"].shape[0])
    except (IndexError, TypeError) as exc:
        raise IdentityWeightsError(path, f"unexpected tensor shapes for IR-SE50 ({exc})") from None
    return widths, embed_dim


def load_identity(path: PathLike, device: Union[str, torch.device] = "cpu") -> IdentityNet:
    """Load `model_ir_se50.pth` (strictly, weights only) as an eval-mode, frozen IdentityNet."""
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise IdentityWeightsError(name, "no such file (face-recognition weights, model_ir_se50.pth)")
    try:
        obj = torch.load(name, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle / zip / unsafe-global errors all mean "not a weights file"
        raise IdentityWeightsError(name, f"cannot read the face-recognition weights "
                                         f"({type(exc).__name__}: {str(exc)[:200]})") from None
    state = _state_dict_of(obj, name)
    widths, embed_dim = _widths_from(state, name)
    try:
        net = IdentityNet(widths, embed_dim)
    except (ValueError, RuntimeError) as exc:
        raise IdentityWeightsError(name, f"cannot build IR-SE50 with widths {widths} ({exc})") from None
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise IdentityWeightsError(name, f"does not match the ArcFace IR-SE50 network: "
                                         f"{str(exc).splitlines()[-1].strip()[:300] if str(exc) else exc}") from None
    return net.float().eval().requires_grad_(False).to(device)


def _face_crop(images: torch.Tensor) -> torch.Tensor:
    """pSp's ID-loss input: pool to 256 if needed, crop [35:223, 32:220], pool to 112."""
    if images.ndim != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    elif images.shape[1] != 3:
        raise ValueError(f"the identity loss needs RGB (or grey) images, got {images.shape[1]} channels")
    if images.shape[-2:] != (POOL_SIZE, POOL_SIZE):
        images = F.adaptive_avg_pool2d(images, (POOL_SIZE, POOL_SIZE))
    images = images[:, :, CROP_ROWS[0]:CROP_ROWS[1], CROP_COLS[0]:CROP_COLS[1]]
    return F.adaptive_avg_pool2d(images, (INPUT_SIZE, INPUT_SIZE))


def identity_embedding(net: IdentityNet, images: torch.Tensor) -> torch.Tensor:
    """Unit face embeddings [N, embed_dim] of images [N, C, H, W] in [-1, 1] (differentiable)."""
    param = next(net.parameters())
    x = _face_crop(images.to(device=param.device, dtype=param.dtype))
    return net(x).to(images.dtype if images.is_floating_point() else torch.float32)


def identity_loss(net: IdentityNet, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean 1 − cos between the face embeddings of `a` and `b` (0 for the same face)."""
    return (1 - (identity_embedding(net, a) * identity_embedding(net, b)).sum(-1)).mean()
