"""Input images for inversion: safe reading, and FFHQ-style face alignment from dlib's 68 landmarks.

Face generators (FFHQ and its relatives) only reconstruct faces framed the way their training
set was: eyes and mouth at fixed places, the face upright. `align_face` reproduces the FFHQ
recipe (reference/encoders_clip_nerf.md A.3: oriented quad from eyes and mouth, shrink, crop,
reflect-pad with blur, quad warp) at the generator's resolution. Non-face domains are centre
cropped instead. Reading is defensive: EXIF orientation, every Pillow mode, size limits checked
from the header before decoding, and clear messages for files that are not images.
"""
from __future__ import annotations

import io
import math
import os
import threading
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from stylecore.engine.remote import FileRole
from stylecore.engine.zoo import builtin_file
from stylecore.progress import ByteProgress

__all__ = ["MAX_PIXELS", "DETECT_MAX_SIDE", "FACE_DOMAINS", "LANDMARKS_CARD", "LANDMARKS_ROLE", "ENV_LANDMARKS",
           "Face", "NoFaceError", "Prepared", "FaceFinder", "read_image", "to_rgb", "landmark_model_path",
           "load_face_finder", "detect_faces", "ffhq_quad",
           "align_face", "centre_crop", "prepare_image", "is_face_domain", "describe_faces"]

MAX_PIXELS = 80_000_000  # larger images are refused (JPEGs are decoded at a reduced scale instead)
DETECT_MAX_SIDE = 1024  # faces are detected on a copy no larger than this; landmarks on the full image
FACE_DOMAINS = ("faces", "face", "ffhq", "celebahq", "metfaces", "portraits", "toonify")
ENV_LANDMARKS = "STYLECORE_DLIB_LANDMARKS"
LANDMARKS_FILE = "shape_predictor_68_face_landmarks.dat"
LANDMARKS_CARD = builtin_file("dlib-68-landmarks")
LANDMARKS_ROLE = FileRole("Face landmark model", f"choose 'centre crop' or 'resize whole image' alignment (--align "
                          "crop on the command line) for an image that is already a cropped face, or download "
                          f"{LANDMARKS_FILE} yourself and set {ENV_LANDMARKS} to its path (or pip install "
                          "face-recognition-models, which ships it)")
ImageSource = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]


class NoFaceError(ValueError):
    """No face was found; the caller may offer a centre crop instead."""


@dataclass
class Face:
    """One detected face: its box (left, top, right, bottom) and 68 landmarks [68, 2] (x, y), in the
    coordinates of the full-resolution image."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray

    @property
    def area(self) -> int:
        return max(0, self.box[2] - self.box[0]) * max(0, self.box[3] - self.box[1])


@dataclass
class Prepared:
    """An image ready for inversion at the generator's resolution, and how it was made."""

    image: np.ndarray  # [R, R, 3] uint8
    method: str  # "aligned", "centre crop" or "as given"
    message: str
    faces: list[Face] = field(default_factory=list)
    chosen: Optional[int] = None


# ---------------------------------------------------------------------------------------------
# reading


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB: alpha composited on white, palettes expanded, 16-bit and float
    greyscale scaled down (not clipped), CMYK/LAB/HSV converted."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = arr.max() if arr.size else 0
        if img.mode == "F" and top <= 1.0:
            arr = arr * 255.0
        elif top > 255:
            arr = arr / 257.0  # 16-bit range
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB") if img.mode != "RGB" else img


def _open(source: ImageSource) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        arr = source
        if arr.dtype != np.uint8:
            if arr.dtype.kind == "f":
                arr = np.clip(np.rint(arr * (255.0 if arr.max(initial=0) <= 1.0 else 1.0)), 0, 255)
            arr = arr.astype(np.uint8)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
            raise ValueError(f"an image array must be H x W, H x W x 3 or H x W x 4, not {list(source.shape)}")
        return Image.fromarray(arr)
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ValueError("the image is empty (0 bytes)")
        return Image.open(io.BytesIO(source))
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"no image file at {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path.name} is empty (0 bytes): upload the image again")
    return Image.open(path)


def read_image(source: ImageSource, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """An uploaded file, bytes, array or PIL image as an RGB PIL image, oriented by its EXIF tag.

    The size is checked from the header before decoding: JPEGs larger than `max_pixels` are
    decoded at 1/2, 1/4 or 1/8 scale; other formats that large are refused with a message.
    """
    name = Path(source).name if isinstance(source, (str, os.PathLike)) else "the image"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = _open(source)
            w, h = img.size
            if w * h > max_pixels and getattr(img, "format", None) == "JPEG":
                scale = next((s for s in (2, 4, 8) if (w // s) * (h // s) <= max_pixels), 8)
                img.draft("RGB", (w // scale, h // scale))
            if img.size[0] * img.size[1] > max_pixels:
                raise ValueError(f"{name} is {w}x{h} pixels ({w * h / 1e6:.0f} MP); this app reads images up to "
                                 f"{max_pixels / 1e6:.0f} MP: downscale it first")
            if min(img.size) < 1:
                raise ValueError(f"{name} has no pixels ({w}x{h})")
            img.load()
            img = ImageOps.exif_transpose(img) or img
    except Image.DecompressionBombError as exc:
        raise ValueError(f"{name} is too large to read safely ({exc.args[0].split('(')[0].strip()}); "
                         f"this app reads images up to {max_pixels / 1e6:.0f} MP: downscale it first") from None
    except UnidentifiedImageError:
        raise ValueError(f"{name} is not an image this app can read: upload a PNG, JPEG, WebP, BMP, GIF or TIFF "
                         "file") from None
    except (OSError, SyntaxError) as exc:  # truncated or damaged files
        raise ValueError(f"{name} could not be decoded ({exc}): the file is damaged or incomplete") from None
    return to_rgb(img)


# ---------------------------------------------------------------------------------------------
# landmarks


def _packaged_landmarks() -> Optional[Path]:
    """The .dat inside the face-recognition-models wheel, found without importing that package
    (its __init__ imports pkg_resources, which recent setuptools no longer provides)."""
    try:
        dist = metadata.distribution("face-recognition-models")
    except metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if entry.name == LANDMARKS_FILE:
            path = Path(dist.locate_file(entry))
            if path.is_file():
                return path
    return None


def landmark_model_path(progress: ByteProgress = None) -> Path:
    """dlib's 68-landmark model: STYLECORE_DLIB_LANDMARKS, else the face-recognition-models wheel
    (offline), else the Hub copy (LANDMARKS_CARD)."""
    override = os.environ.get(ENV_LANDMARKS, "").strip()
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ValueError(f"{ENV_LANDMARKS}={override}: no such file")
        return path
    packaged = _packaged_landmarks()
    if packaged is not None:
        return packaged
    from stylecore.engine import hub

    return hub.fetch(LANDMARKS_CARD, progress=progress, role=LANDMARKS_ROLE)


@dataclass
class FaceFinder:
    """dlib's frontal face detector and 68-landmark predictor, used under one lock (dlib's objects are
    not documented as thread-safe). Loading one reads a 100 MB file: callers keep it (the model manager)."""

    detector: object
    predictor: object
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def load_face_finder(progress: ByteProgress = None) -> FaceFinder:
    """The detector and the landmark model of `landmark_model_path`, loaded now."""
    try:
        import dlib
    except ImportError as exc:
        raise ValueError("face alignment needs dlib: pip install dlib-bin (or use a centre crop)") from exc
    path = landmark_model_path(progress)
    try:
        predictor = dlib.shape_predictor(str(path))
    except RuntimeError as exc:
        raise ValueError(f"{path}: not a dlib landmark model ({exc})") from exc
    return FaceFinder(dlib.get_frontal_face_detector(), predictor)


def detect_faces(img: Image.Image, progress: ByteProgress = None, finder: Optional[FaceFinder] = None) -> list[Face]:
    """Every frontal face dlib finds (HOG detector, upsample 1) with its 68 landmarks, largest first.

    Detection runs on a copy at most DETECT_MAX_SIDE pixels wide; the landmarks are then placed on
    the full-resolution image. Without `finder`, one is loaded for this call.
    """
    import dlib

    finder = finder or load_face_finder(progress)
    img = to_rgb(img)
    scale = min(1.0, DETECT_MAX_SIDE / max(img.size))
    small = img if scale == 1.0 else img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                                                 Image.Resampling.LANCZOS)
    full = np.asarray(img)
    with finder.lock:
        rects = list(finder.detector(np.asarray(small), 1))
        faces = []
        for r in rects:
            box = (int(round(r.left() / scale)), int(round(r.top() / scale)),
                   int(round(r.right() / scale)), int(round(r.bottom() / scale)))
            shape = finder.predictor(full, dlib.rectangle(*box))
            points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
            faces.append(Face(box=box, landmarks=points))
    faces.sort(key=lambda f: f.area, reverse=True)
    return faces


# ---------------------------------------------------------------------------------------------
# FFHQ alignment (reference/encoders_clip_nerf.md A.3, steps 3-9)


def _perp(v: np.ndarray) -> np.ndarray:
    """v rotated by +90 degrees in image coordinates: flipud(v) * [-1, 1]."""
    return np.array([-v[1], v[0]])


def ffhq_quad(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """The oriented crop quad [4, 2] (corners: top-left, bottom-left, bottom-right, top-right)
    and its side length, from the eye centres and mouth corners."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks as [68, 2], got {list(lm.shape)}")
    eye_left, eye_right = lm[36:42].mean(0), lm[42:48].mean(0)
    eye_avg, eye_to_eye = (eye_left + eye_right) / 2, eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) / 2
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - _perp(eye_to_mouth)
    x = x / np.hypot(*x) * max(2.0 * np.hypot(*eye_to_eye), 1.8 * np.hypot(*eye_to_mouth))
    y = _perp(x)
    c = eye_avg + 0.1 * eye_to_mouth
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return quad, float(2 * np.hypot(*x))


def _pad_and_blur(img: Image.Image, quad: np.ndarray, qsize: float, border: int) -> tuple[Image.Image, np.ndarray]:
    """Step 7: reflect-pad where the quad leaves the image, blur and fade the padding to the median."""
    from scipy.ndimage import gaussian_filter

    w, h = img.size
    pad = np.array([max(border - math.floor(quad[:, 0].min()), 0), max(border - math.floor(quad[:, 1].min()), 0),
                    max(math.ceil(quad[:, 0].max()) - w + border, 0), max(math.ceil(quad[:, 1].max()) - h + border, 0)])
    if pad.max() <= border - 4:
        return img, quad
    pad = np.maximum(pad, int(np.rint(0.3 * qsize)))
    arr = np.pad(np.asarray(img, dtype=np.float32), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), mode="reflect")
    ph, pw = arr.shape[:2]
    yy, xx = np.ogrid[:ph, :pw]
    mask = np.maximum(1.0 - np.minimum(xx / pad[0], (pw - 1 - xx) / pad[2]),
                      1.0 - np.minimum(yy / pad[1], (ph - 1 - yy) / pad[3]))[..., None].astype(np.float32)
    sigma = 0.02 * qsize
    arr += (gaussian_filter(arr, [sigma, sigma, 0]) - arr) * np.clip(3.0 * mask + 1.0, 0.0, 1.0)
    arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
    out = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")
    return out, quad + pad[:2]


def align_face(img: Image.Image, landmarks: np.ndarray, output_size: int = 1024,
               transform_size: Optional[int] = None, enable_padding: bool = True) -> Image.Image:
    """The FFHQ crop of the face with these landmarks, `output_size` pixels square.

    The quad is warped to `transform_size` (default 4x the output, at most 4096: FFHQ's 4096 for
    1024) and LANCZOS-downsampled to the output when larger.
    """
    img = to_rgb(img)
    if transform_size is None:
        transform_size = max(output_size, min(4 * output_size, 4096))
    quad, qsize = ffhq_quad(landmarks)
    shrink = int(math.floor(qsize / output_size * 0.5))
    if shrink > 1:  # step 5
        img = img.resize((int(round(img.width / shrink)), int(round(img.height / shrink))), Image.Resampling.LANCZOS)
        quad, qsize = quad / shrink, qsize / shrink
    border = max(int(np.rint(qsize * 0.1)), 3)
    crop = (max(math.floor(quad[:, 0].min()) - border, 0), max(math.floor(quad[:, 1].min()) - border, 0),
            min(math.ceil(quad[:, 0].max()) + border, img.width), min(math.ceil(quad[:, 1].max()) + border, img.height))
    if crop[2] - crop[0] < img.width or crop[3] - crop[1] < img.height:  # step 6
        img = img.crop(crop)
        quad = quad - np.array(crop[:2])
    if enable_padding:
        img, quad = _pad_and_blur(img, quad, qsize, border)
    out = img.transform((transform_size, transform_size), Image.Transform.QUAD, tuple((quad + 0.5).flatten()),
                        Image.Resampling.BILINEAR)
    if output_size < transform_size:
        out = out.resize((output_size, output_size), Image.Resampling.LANCZOS)
    return out


def centre_crop(img: Image.Image, output_size: int) -> Image.Image:
    """The largest centred square, LANCZOS-resized (the official projector's input recipe)."""
    img = to_rgb(img)
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return img.crop((left, top, left + side, top + side)).resize((output_size, output_size), Image.Resampling.LANCZOS)


def is_face_domain(domain: str) -> bool:
    """Models of these domains are aligned like FFHQ; cars, churches, animals and the demo are not."""
    return (domain or "").strip().lower() in FACE_DOMAINS


def prepare_image(img: Image.Image, resolution: int, mode: str = "auto", domain: str = "",
                  fallback_to_crop: bool = False, progress: ByteProgress = None,
                  finder: Optional[Callable[[], FaceFinder]] = None) -> Prepared:
    """The image to invert, `resolution` square.

    mode "auto" aligns faces for face-domain models and centre crops otherwise; "align" always
    aligns; "crop" centre crops; "resize" squashes the whole image. With no face found, "align"
    raises NoFaceError unless `fallback_to_crop`. `finder` gives the face finder when alignment needs
    one (e.g. the one the model manager keeps); without it, one is loaded for this call.
    """
    if mode not in ("auto", "align", "crop", "resize"):
        raise ValueError(f"alignment must be 'auto', 'align', 'crop' or 'resize', not {mode!r}")
    if not isinstance(resolution, int) or not 8 <= resolution <= 4096:
        raise ValueError(f"resolution must be a whole number from 8 to 4096, got {resolution!r}")
    img = to_rgb(img)
    if mode == "resize":
        out = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
        return Prepared(np.asarray(out), "as given", f"resized to {resolution}x{resolution} without cropping")
    if mode == "crop" or (mode == "auto" and not is_face_domain(domain)):
        why = "" if mode == "crop" else f" (the model's domain '{domain or 'unknown'}' is not faces: no alignment)"
        return Prepared(np.asarray(centre_crop(img, resolution)), "centre crop", f"centre crop{why}")
    faces = detect_faces(img, progress, finder() if finder is not None else None)
    if not faces:
        if fallback_to_crop:
            return Prepared(np.asarray(centre_crop(img, resolution)), "centre crop",
                            "no face found: used a centre crop instead")
        raise NoFaceError("no face found in the image: use a clearer frontal photo, or choose 'centre crop' "
                          "to invert the image without alignment")
    aligned = align_face(img, faces[0].landmarks, resolution)
    message = f"face aligned FFHQ-style at {resolution}x{resolution}"
    if len(faces) > 1:
        others = "; ".join(f"{f.box[2] - f.box[0]}x{f.box[3] - f.box[1]} px at ({f.box[0]}, {f.box[1]})"
                           for f in faces[1:])
        message += f"; {len(faces)} faces found, used the largest; others: {others}"
    return Prepared(np.asarray(aligned), "aligned", message, faces, 0)


def describe_faces(faces: Sequence[Face]) -> str:
    """A short list of the faces found, for status lines."""
    return ", ".join(f"{f.box[2] - f.box[0]}x{f.box[3] - f.box[1]} at ({f.box[0]}, {f.box[1]})" for f in faces)
