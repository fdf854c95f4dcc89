"""A tiny random-weight CLIP served by a fake Hub on 127.0.0.1, for app launches that run StyleCLIP."""
from __future__ import annotations

import contextlib
import json
from typing import Iterator

from fakehub import FakeHub

CLIP_REPO = "someone/tiny-clip"


@contextlib.contextmanager
def tiny_clip_hub() -> Iterator[dict]:
    """Serve the tiny CLIP in open_clip's hf-hub layout; yields the app's environment for it."""
    from safetensors.torch import save

    from stylecore.perception.clip import build_clip
    from test_styleclip import TINY

    clip = build_clip("ViT-B-32-quickgelu", seed=0, **TINY)
    with FakeHub() as hub:
        hub.add_file(CLIP_REPO, "open_clip_config.json", json.dumps({"model_cfg": TINY}).encode(), lfs=False)
        hub.add_file(CLIP_REPO, "open_clip_model.safetensors",
                     save({k: v.contiguous() for k, v in clip.model.state_dict().items()}))
        yield {"HF_ENDPOINT": hub.endpoint, "STYLECORE_CLIP": f"hf-hub:{CLIP_REPO}"}
