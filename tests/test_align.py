"""Face alignment and image reading (stylecore.perception.align).

A real photograph that ships with scikit-image (the astronaut, NASA, public domain) goes through
dlib's detector and 68-landmark model (from the face-recognition-models wheel, offline): the
aligned crop has the right size, the eyes are level and sit where the FFHQ recipe puts them
(checked by finding the landmarks again in the crop). Bad files give clear ValueErrors.
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from stylecore.perception import align

dlib = pytest.importorskip("dlib", reason="dlib (pip install dlib-bin) is needed for face alignment")
skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the test photograph")


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(skdata.astronaut())


@pytest.fixture(scope="module")
def faces(astronaut):
    return align.detect_faces(astronaut)


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return landmarks[36:42].mean(0), landmarks[42:48].mean(0)


def quad_coords(point: np.ndarray, quad: np.ndarray, size: int) -> np.ndarray:
    """Where a point of the source image lands in the aligned crop (the quad's corners go to the
    crop's corners: top-left, bottom-left, bottom-right, top-right)."""
    axes = np.stack([quad[3] - quad[0], quad[1] - quad[0]], axis=1)
    return np.linalg.solve(axes, point - quad[0]) * size


def test_landmark_model_is_found_offline():
    path = align.landmark_model_path()
    assert path.name == "shape_predictor_68_face_landmarks.dat" and path.stat().st_size > 50_000_000


def test_landmark_model_override(monkeypatch, tmp_path):
    monkeypatch.setenv(align.ENV_LANDMARKS, str(tmp_path / "missing.dat"))
    with pytest.raises(ValueError, match="no such file"):
        align.landmark_model_path()


def test_astronaut_landmarks(faces, astronaut):
    assert faces, "dlib found no face in the astronaut photograph"
    face = faces[0]
    assert face.landmarks.shape == (68, 2)
    left, top, right, bottom = face.box
    assert 150 < left < right < 300 and 50 < top < bottom < 200  # her face, not the badge on the suit
    inside = (face.landmarks[:, 0] >= left - 20) & (face.landmarks[:, 0] <= right + 20)
    assert inside.all()
    assert [f.area for f in faces] == sorted((f.area for f in faces), reverse=True)


@pytest.mark.parametrize("size", [256, 64])
def test_aligned_eyes_level_at_ffhq_positions(faces, astronaut, size):
    face = faces[0]
    out = align.align_face(astronaut, face.landmarks, size)
    assert out.size == (size, size) and out.mode == "RGB"
    quad, _ = align.ffhq_quad(face.landmarks)
    expected = [quad_coords(p, quad, size) for p in eye_centres(face.landmarks)]
    # FFHQ geometry: the eyes straddle the vertical centre line, above the centre
    mid = (expected[0] + expected[1]) / 2
    assert abs(mid[0] - size / 2) < 0.03 * size and mid[1] < size / 2
    if size >= 256:  # find the landmarks again in the crop
        again = align.detect_faces(out)
        assert again, "no face found in the aligned crop"
        got = eye_centres(again[0].landmarks)
        assert abs(got[0][1] - got[1][1]) <= 2.0, f"eyes not level: {got}"
        for g, e in zip(got, expected):
            assert np.abs(g - e).max() <= 3.0, f"eye at {g}, FFHQ recipe puts it at {e}"


def test_prepare_image_lists_other_faces(astronaut):
    prepared = align.prepare_image(astronaut, 128, "align")
    assert prepared.image.shape == (128, 128, 3) and prepared.method == "aligned"
    if len(prepared.faces) > 1:
        assert "used the largest" in prepared.message and "others" in prepared.message


def test_ffhq_quad_upright_face():
    lm = np.zeros((68, 2))
    lm[36:42] = [40, 50]
    lm[42:48] = [60, 50]
    lm[48] = [42, 80]
    lm[54] = [58, 80]
    quad, qsize = align.ffhq_quad(lm)
    # x half-side = max(2 * 20, 1.8 * 30) = 54; centre = eye midpoint + 0.1 * (0, 30)
    np.testing.assert_allclose(quad, [[-4, -1], [-4, 107], [104, 107], [104, -1]], atol=1e-9)
    assert qsize == pytest.approx(108)


def test_no_face(tmp_path):
    flat = Image.new("RGB", (200, 160), (128, 128, 128))
    with pytest.raises(align.NoFaceError, match="centre crop"):
        align.prepare_image(flat, 64, "align")
    prepared = align.prepare_image(flat, 64, "align", fallback_to_crop=True)
    assert prepared.method == "centre crop" and prepared.image.shape == (64, 64, 3)
    assert "no face" in prepared.message


def test_non_face_domains_skip_alignment(astronaut, monkeypatch):
    monkeypatch.setattr(align, "detect_faces", lambda *a, **k: pytest.fail("no detection for cars"))
    prepared = align.prepare_image(astronaut, 64, "auto", domain="cars")
    assert prepared.method == "centre crop" and prepared.image.shape == (64, 64, 3)
    assert align.is_face_domain("faces") and not align.is_face_domain("churches")


# ---------------------------------------------------------------------------------------------
# reading


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_exif_orientation_applied():
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = align.read_image(encode(img, "JPEG", exif=exif.tobytes()))
    assert out.size == (20, 40)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "P", "I;16", "CMYK", "1"])
def test_modes_become_rgb(mode):
    if mode == "I;16":
        arr = np.full((8, 8), 65535, dtype=np.uint16)
        arr[0, 0] = 0
        img = Image.fromarray(arr)
    elif mode == "P":
        img = Image.new("RGB", (8, 8), (10, 200, 30)).convert("P")
    else:
        img = Image.new(mode, (8, 8))
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    out = align.read_image(encode(img, fmt))
    assert out.mode == "RGB" and out.size == (8, 8)
    if mode == "I;16":  # scaled from 16 bits, not clipped
        assert np.asarray(out)[1, 1, 0] == 255 and np.asarray(out)[0, 0, 0] == 0
    if mode in ("RGBA", "LA"):  # transparent pixels composited on white
        assert np.asarray(out).min() == 255


def test_transparent_palette():
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0)).convert("P")
    img.info["transparency"] = 0
    assert align.read_image(encode(img, "PNG", transparency=0)).mode == "RGB"


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a size but holds almost no data (what a hostile upload looks like)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_bad_files(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        align.read_image(empty)
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    with pytest.raises(ValueError, match="not an image"):
        align.read_image(text)
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header_only(20000, 20000))
    with pytest.raises(ValueError, match="20000x20000|too large"):
        align.read_image(huge)
    big = tmp_path / "big.png"
    big.write_bytes(png_header_only(9000, 9000))  # 81 MP: under Pillow's bomb limit, over ours
    with pytest.raises(ValueError, match="9000x9000 pixels .* downscale"):
        align.read_image(big)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(encode(Image.new("RGB", (64, 64), (1, 2, 3)), "PNG")[:60])
    with pytest.raises(ValueError, match="damaged|not an image"):
        align.read_image(truncated)
    with pytest.raises(ValueError, match="no image file"):
        align.read_image(tmp_path / "missing.png")


def test_large_jpeg_decoded_at_reduced_scale():
    data = encode(Image.new("RGB", (400, 300), (9, 9, 9)), "JPEG")
    out = align.read_image(data, max_pixels=40_000)
    assert out.size == (200, 150)
    with pytest.raises(ValueError, match="downscale"):
        align.read_image(encode(Image.new("RGB", (400, 300)), "PNG"), max_pixels=40_000)
