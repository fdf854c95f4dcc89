"""Image distances for inversion: LPIPS (VGG16), PSNR and MSE.

LPIPS comes from the `lpips` package, which ships its linear heads but would fetch the VGG16
backbone from torchvision's download site. We build it with the backbone untrained and load
torchvision's ImageNet VGG16 weights from the Hub copy `timm/vgg16.tv_in1k` through
`stylecore.engine.hub`, so a Space needs no download site besides the Hub. `build_lpips(False)` keeps
the random backbone (tests, benchmarks); STYLECORE_LPIPS_BACKBONE may name a local .safetensors file,
or "random". When the Hub copy cannot be had (offline, Hub unreachable), the random backbone stands in,
so inversion still runs offline: the module then has `random_backbone` True and `backbone_note` says
why, for the results to state that their LPIPS is not the published one. The network is kept by the
model manager (`shared_lpips`), never here.
"""
from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

import torch
import torch.nn.functional as F

from stylecore.engine.remote import FileRole, ModelUnavailable
from stylecore.engine.zoo import builtin_file
from stylecore.progress import ByteProgress

if TYPE_CHECKING:
    from stylecore.engine.manager import ModelManager

__all__ = ["VGG16_CARD", "ENV_BACKBONE", "LPIPS_ROLE", "build_lpips", "lpips_from_env", "shared_lpips",
           "load_vgg16_backbone", "LpipsTarget", "lpips_distance", "mse", "psnr", "image_metrics", "perceptual_input"]

ENV_BACKBONE = "STYLECORE_LPIPS_BACKBONE"
VGG16_CARD = builtin_file("lpips-vgg16-backbone")
LPIPS_ROLE = FileRole("LPIPS backbone", f"download {VGG16_CARD.filename} of {VGG16_CARD.repo_id} yourself and set "
                      f"{ENV_BACKBONE} to its path, or set {ENV_BACKBONE}=random for an untrained backbone (what "
                      "inversion uses by itself when the download fails; its LPIPS values are then not comparable "
                      "with published ones)")
RANDOM_BY_CHOICE = (f"LPIPS uses an untrained (random) VGG16 backbone, as {ENV_BACKBONE}=random asks: its values "
                    "are not comparable with published ones")
_log = logging.getLogger(__name__)
# lpips' VGG16 keeps torchvision's layer indices inside five slices: features.N -> net.slice{k}.N
_SLICES = ((1, range(0, 4)), (2, range(4, 9)), (3, range(9, 16)), (4, range(16, 23)), (5, range(23, 30)))
_FEATURE_KEY = re.compile(r"^(?:model\.|module\.)?features\.(\d+)\.(weight|bias)$")


def _slice_of(index: int) -> int:
    for number, indices in _SLICES:
        if index in indices:
            return number
    raise KeyError(index)


def load_vgg16_backbone(model: torch.nn.Module, path: Union[str, Path]) -> None:
    """Copy a torchvision/timm VGG16 state dict (safetensors) into an lpips VGG model's backbone.

    Only the convolutional `features.N.*` tensors are used (the classifier is ignored); every one
    of the 13 convolutions must be present with the right shape, or a ValueError says what is off.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .safetensors file ({exc})") from exc
    target = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        m = _FEATURE_KEY.match(key)
        if not m or int(m.group(1)) >= 30:
            continue
        name = f"net.slice{_slice_of(int(m.group(1)))}.{m.group(1)}.{m.group(2)}"
        if name not in target:
            raise ValueError(f"{path}: {key} is not a convolution of VGG16 (is this a VGG16 checkpoint?)")
        if tuple(tensor.shape) != tuple(target[name].shape):
            raise ValueError(f"{path}: {key} has shape {list(tensor.shape)}, VGG16 needs {list(target[name].shape)}")
        mapped[name] = tensor.to(target[name].dtype)
    missing = sorted(k for k in target if k.startswith("net.") and k not in mapped)
    if missing:
        raise ValueError(f"{path}: no VGG16 weights for {', '.join(missing[:4])}"
                         f"{' ...' if len(missing) > 4 else ''} (expected keys features.N.weight/bias)")
    model.load_state_dict(mapped, strict=False)


def build_lpips(pretrained: bool = True, backbone: Optional[Union[str, Path]] = None,
                progress: ByteProgress = None, seed: int = 0) -> torch.nn.Module:
    """An LPIPS(VGG16) module on the CPU, frozen, in eval mode.

    `pretrained=True` loads the backbone from `backbone` (a local safetensors file) or the Hub
    card VGG16_CARD; `pretrained=False` keeps a deterministic random backbone. The linear heads
    always come from the files inside the lpips package.
    """
    import lpips

    if pretrained and backbone is None:  # first: a download that fails should not wait for the build
        backbone = _hub_backbone(progress)
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")  # torchvision's notices about its deprecated `pretrained` flag
        torch.manual_seed(seed)
        model = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
    if pretrained:
        load_vgg16_backbone(model, backbone)
    model.random_backbone = not pretrained
    model.backbone_note = "" if pretrained else "LPIPS uses an untrained (random) VGG16 backbone"
    return model.eval().requires_grad_(False)


def _hub_backbone(progress: ByteProgress) -> Path:
    """The Hub copy of the VGG16 weights, downloaded once into the Hub cache."""
    from stylecore.engine import hub

    return hub.fetch(VGG16_CARD, progress=progress, role=LPIPS_ROLE)


def _chosen_backbone(progress: ByteProgress) -> tuple[Optional[Path], str]:
    """The backbone file STYLECORE_LPIPS_BACKBONE picks (a path; unset: the Hub copy, downloaded once), or
    None for the random one, with the note that says why it is random."""
    choice = os.environ.get(ENV_BACKBONE, "").strip()
    if choice.lower() == "random":
        return None, RANDOM_BY_CHOICE
    if choice:
        return Path(choice), ""
    try:
        return _hub_backbone(progress), ""
    except ModelUnavailable as exc:
        return None, ("LPIPS uses an untrained (random) VGG16 backbone, so its values are not comparable with "
                      f"published ones: the pretrained one could not be downloaded ({exc.reason})")


def _built(backbone: Optional[Path], note: str) -> torch.nn.Module:
    if backbone is not None:
        return build_lpips(pretrained=True, backbone=backbone)
    if note != RANDOM_BY_CHOICE:
        _log.warning(note)
    model = build_lpips(pretrained=False)
    model.backbone_note = note
    return model


def lpips_from_env(device: Union[str, torch.device] = "cpu", progress: ByteProgress = None) -> torch.nn.Module:
    """An LPIPS module on `device` with the backbone STYLECORE_LPIPS_BACKBONE picks ("random", a
    .safetensors path, or unset for the Hub copy, or the random one when that cannot be downloaded);
    built anew on each call."""
    return _built(*_chosen_backbone(progress)).to(device)


def shared_lpips(manager: ModelManager, progress: ByteProgress = None) -> torch.nn.Module:
    """`lpips_from_env`'s module on the manager's device, built once and kept under its memory budget. The
    backbone is looked up on every call (a cached file costs no request; an unreachable Hub none either, see
    stylecore.engine.online) and a stand-in for a failed download is kept under a key of its own, so a run
    after the network comes back gets the pretrained one."""
    backbone, note = _chosen_backbone(progress)
    stand_in = backbone is None and note != RANDOM_BY_CHOICE
    key = ("lpips", "vgg", str(manager.device)) + (("stand-in",) if stand_in else ())
    return manager.resource(key, lambda: _built(backbone, note).to(manager.device))


def perceptual_input(img: torch.Tensor, size: int = 256) -> torch.Tensor:
    """Images larger than `size` are area-downsampled to it, as the official projector does."""
    if img.shape[-1] > size or img.shape[-2] > size:
        img = F.interpolate(img, size=(size, size), mode="area")
    return img


class LpipsTarget:
    """LPIPS distance to one fixed target, with the target's features computed once (the
    optimisation loops call `distance` every step)."""

    def __init__(self, net: torch.nn.Module, target: torch.Tensor):
        self.net = net
        self.target_features = [f.detach() for f in self._features(target)]

    def _features(self, img: torch.Tensor) -> list[torch.Tensor]:
        import lpips

        outs = self.net.net(self.net.scaling_layer(perceptual_input(img).float()))
        return [lpips.normalize_tensor(o) for o in outs]

    def distance(self, img: torch.Tensor) -> torch.Tensor:
        """LPIPS of each image in `img` ([N, 3, H, W] in [-1, 1]) against the target, shape [N]."""
        total: torch.Tensor = torch.zeros((), device=img.device)
        for lin, f0, f1 in zip(self.net.lins, self.target_features, self._features(img)):
            total = total + lin((f0 - f1) ** 2).mean([2, 3])
        return total.flatten()


def lpips_distance(net: torch.nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LPIPS between image batches in [-1, 1] (larger than 256 px: area-downsampled first), shape [N]."""
    with torch.no_grad():
        return net(perceptual_input(a.float()), perceptual_input(b.float())).flatten()


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image, with pixel values in [0, 1] (images given in [-1, 1])."""
    diff = (a.float().clamp(-1, 1) - b.float().clamp(-1, 1)) / 2
    return diff.pow(2).flatten(1).mean(1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (peak 1 on the [0, 1] scale)."""
    return 10 * torch.log10(1.0 / mse(a, b).clamp_min(1e-10))


def image_metrics(net: torch.nn.Module, pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """LPIPS, PSNR and MSE of one reconstruction against its target ([1, 3, H, W] in [-1, 1])."""
    with torch.no_grad():
        return {"lpips": float(lpips_distance(net, pred, target)[0]), "psnr": float(psnr(pred, target)[0]),
                "mse": float(mse(pred, target)[0])}
