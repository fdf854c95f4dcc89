"""Image distances for inversion: LPIPS (VGG16), PSNR and MSE.

LPIPS comes from the `lpips` package, which ships its linear heads but would fetch the VGG16
backbone from torchvision's download site. We build it with the backbone untrained and load
torchvision's ImageNet VGG16 weights from the Hub copy `timm/vgg16.tv_in1k` through
`stylecore.engine.hub`, so a Space needs no download site besides the Hub. `build_lpips(False)` keeps
the random backbone (tests, offline demos); STYLECORE_LPIPS_BACKBONE may name a local
.safetensors file, or "random". The network is kept by the model manager (`shared_lpips`), never here.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

import torch
import torch.nn.functional as F

from stylecore.engine.zoo import builtin_file
from stylecore.progress import ByteProgress

if TYPE_CHECKING:
    from stylecore.engine.manager import ModelManager

__all__ = ["VGG16_CARD", "ENV_BACKBONE", "build_lpips", "lpips_from_env", "shared_lpips", "load_vgg16_backbone",
           "LpipsTarget", "lpips_distance", "mse", "psnr", "image_metrics", "perceptual_input"]

ENV_BACKBONE = "STYLECORE_LPIPS_BACKBONE"
VGG16_CARD = builtin_file("lpips-vgg16-backbone")
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

    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")  # torchvision's notices about its deprecated `pretrained` flag
        torch.manual_seed(seed)
        model = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
    if pretrained:
        if backbone is None:
            from stylecore.engine import hub

            backbone = hub.fetch(VGG16_CARD, progress=progress)
        load_vgg16_backbone(model, backbone)
    model.random_backbone = not pretrained
    return model.eval().requires_grad_(False)


def lpips_from_env(device: Union[str, torch.device] = "cpu", progress: ByteProgress = None) -> torch.nn.Module:
    """An LPIPS module on `device` with the backbone STYLECORE_LPIPS_BACKBONE picks ("random", a
    .safetensors path, or unset for the Hub copy); built anew on each call."""
    choice = os.environ.get(ENV_BACKBONE, "").strip()
    if choice.lower() == "random":
        return build_lpips(pretrained=False).to(device)
    return build_lpips(pretrained=True, backbone=choice or None, progress=progress).to(device)


def shared_lpips(manager: ModelManager, progress: ByteProgress = None) -> torch.nn.Module:
    """The LPIPS module on the manager's device, built once and kept under its memory budget."""
    return manager.resource(("lpips", "vgg", str(manager.device)), lambda: lpips_from_env(manager.device, progress))


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
