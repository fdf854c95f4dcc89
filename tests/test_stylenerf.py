"""StyleNeRF: parity with the original on both fixture configurations (every pose, the style-mixing
case, the default sampling), camera conventions for known angles, yaw mirror symmetry of the
renderer, the view technique, and the reader on real-layout pickles (embedded source, OmegaConf
configuration objects), hostile ones included."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import PARITY_DIR, parity_case
from stylecore.formats.errors import CheckpointError, UnsafeCheckpointError
from stylecore.codes.generate import to_uint8
from stylecore.codes.latents import z_from_seeds
from stylecore.formats.loader import load_generator, read_checkpoint
from stylecore.video.nerf_views import ViewSettings, mix_ws, render_orbit, render_view
from stylecore.networks import build_generator
from stylecore.networks.stylenerf.camera import camera_K_inv, lookat_RT, ray_pixels, rays_world, slider_to_uv
from stylecore.engine.demo import name_seeded_init
from writers.stylenerf_pickle import write_stylenerf_pickle

FIXTURES = ("stylenerf_64", "stylenerf_128_ps")
CASES = ("pose0", "pose1", "pose2", "mix", "default_opt")
MEAN_TOL, MAX_TOL, CAMERA_TOL = 1e-4, 1e-2, 1e-5  # README-stylenerf.md, "Determinism and tolerance"

_NETS: dict = {}


def fixture_net(name: str):
    """(meta, G loaded strictly with the fixture's state, arrays), built once per session."""
    if name not in _NETS:
        meta, state, arrays = parity_case(name)
        G = build_generator("stylenerf", meta["init_kwargs"]).eval().requires_grad_(False)
        G.load_state_dict(state, strict=True)
        _NETS[name] = (meta, G, arrays)
    return _NETS[name]


def _close(ours: torch.Tensor, ref: np.ndarray, what: str) -> tuple[float, float]:
    diff = np.abs(ours.detach().cpu().numpy().astype(np.float64) - ref)
    mean, peak = float(diff.mean()), float(diff.max())
    assert mean < MEAN_TOL and peak < MAX_TOL, f"{what}: mean |diff| {mean:.2e}, max |diff| {peak:.2e}"
    return mean, peak


# -- parity --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case_name", CASES)
@pytest.mark.parametrize("name", FIXTURES)
def test_parity(name, case_name):
    """The documented call: mapping, get_camera, torch.manual_seed, G(styles=..., ...) for each case."""
    meta, G, a = fixture_net(name)
    case = next(c for c in meta["cases"] if c["name"] == case_name)
    B = case["batch"]
    p = f"{case_name}/"

    # Latents: seeds as the demo draws them, then the mapping (and the demo's mixing).
    if case_name == "mix":
        ws_g = G.mapping(torch.from_numpy(a["z_seed1"]), None, truncation_psi=0.7)
        ws_a = G.mapping(torch.from_numpy(a["z_seed9"]), None, truncation_psi=0.7)
        ws = mix_ws(ws_g, ws_a, case["mix1"], case["mix2"])
    else:
        z = torch.from_numpy(a["z_" + case["z"]])
        seeds = [3, 4] if B == 2 else [1]
        if B == 1:
            assert torch.equal(z_from_seeds(seeds, G.z_dim), z)
        ws = G.mapping(z, None, truncation_psi=case["psi"])
    assert np.abs(ws.numpy() - a[p + "ws"]).max() < CAMERA_TOL

    # Camera: demo sliders -> normalised angles -> matrices.
    C = G.synthesis.C
    u, v = slider_to_uv(case["yaw"], case["pitch"], C.range_u, C.range_v)
    assert abs(u - case["u"]) < 1e-6 and abs(v - case["v"]) < 1e-6
    cam = G.synthesis.get_camera(batch_size=B, mode=[u, v, 0.5], device="cpu", fov=case["fov"])
    assert np.abs(cam[0].numpy() - a[p + "camera_K_inv"]).max() < CAMERA_TOL
    assert np.abs(cam[1].numpy() - a[p + "camera_RT"]).max() < CAMERA_TOL
    if p + "bg_camera_RT" in a:
        K_bg, RT_bg = G.synthesis.frozen_bg_camera(B, "cpu")[:2]
        assert np.abs(K_bg.numpy() - a[p + "bg_camera_K_inv"]).max() < CAMERA_TOL
        assert np.abs(RT_bg.numpy() - a[p + "bg_camera_RT"]).max() < CAMERA_TOL
    if p + "vol_pixels" in a:
        pixels = ray_pixels(32, G.img_resolution, C.ray_align_corner, case["theta"])
        origin, world = rays_world(cam[0], cam[1], pixels)
        assert np.abs(pixels.numpy() - a[p + "vol_pixels"][0]).max() < CAMERA_TOL
        assert np.abs(world.numpy() - a[p + "ray_pixels_world"]).max() < CAMERA_TOL
        assert np.abs(origin.numpy() - a[p + "ray_origin_world"]).max() < CAMERA_TOL

    # Background latents from the global RNG, exactly as the original draws them.
    torch.manual_seed(case["torch_manual_seed"])
    codes = G.synthesis.get_latent_codes(B, "cpu")
    assert torch.equal(codes[2], torch.from_numpy(a[p + "z_bg"]))
    assert torch.equal(codes[3], torch.from_numpy(a[p + "z_bg_app"]))

    torch.manual_seed(case["torch_manual_seed"])
    with torch.no_grad():
        out = G(styles=ws, camera_matrices=cam, theta=case["roll"] * math.pi, render_option=case["render_option"],
                force_fp32=True, full_output=True)
    for key in ("img_nerf", "x_nerf", "img"):
        _close(out[key], a[p + key], f"{name}/{case_name}/{key}")


def test_state_dict_keys_and_init_rule():
    """Official key list and shapes; our name-seeded demo init is the fixtures' rule."""
    for name in FIXTURES:
        meta, G, _ = fixture_net(name)
        keys = json.loads((PARITY_DIR / f"{name}_keys.json").read_text())
        ours = G.state_dict()
        assert [k["key"] for k in keys] == list(ours), name
        assert all(list(ours[k["key"]].shape) == k["shape"] for k in keys)
        assert G.num_ws == meta["num_ws"]
    meta, state, _ = parity_case("stylenerf_64")
    fresh = name_seeded_init(build_generator("stylenerf", meta["init_kwargs"]), seed=0)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_render_view_reproduces_the_reference_image():
    """The tab's technique function (sliders, seeds, background seed) gives the reference image."""
    meta, G, a = fixture_net("stylenerf_128_ps")
    case = next(c for c in meta["cases"] if c["name"] == "pose2")
    settings = ViewSettings(yaw=case["yaw"], pitch=case["pitch"], roll=case["roll"], fov=case["fov"], steps=40,
                            truncation_psi=0.7, bg_temperature=1.0)
    image = render_view(G, 1, None, settings, bg_seed=case["torch_manual_seed"])
    ref = to_uint8(torch.from_numpy(a["pose2/img"]))[0]
    assert np.abs(image.astype(int) - ref).max() <= 1
    mixed = render_view(G, 1, 9, replace_fields(settings, yaw=0.0, pitch=0.0, roll=0.0, fov=12.0))
    assert mixed.shape == (128, 128, 3)


def replace_fields(settings: ViewSettings, **changes) -> ViewSettings:
    from dataclasses import replace

    return replace(settings, **changes)


# -- camera --------------------------------------------------------------------------------------


def test_camera_matrices_for_known_angles():
    # Front view (u = v = 0.5): on +x, looking at the origin, camera x = world +y, camera y = world +z.
    _, G, _ = fixture_net("stylenerf_64")
    K_inv, RT = G.synthesis.get_camera(1, [0.5, 0.5, 0.5])[:2]
    expected = torch.tensor([[0.0, 0, 1, 1], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
    assert torch.allclose(RT[0], expected, atol=1e-6)
    assert torch.allclose(K_inv[0].diagonal(), torch.tensor([math.tan(math.radians(6))] * 2 + [1.0, 1.0]))
    # Yaw 90 degrees, radius 2.
    RT = lookat_RT(np.array([math.pi / 2]), np.array([math.pi / 2]), np.array([2.0]))[0]
    expected = torch.tensor([[-1.0, 0, 0, 0], [0, 0, 1, 2], [0, 1, 0, 0], [0, 0, 0, 1]])
    assert torch.allclose(RT, expected, atol=1e-6)
    # Pitch up (polar angle below 90 degrees): the camera rises and keeps +z up.
    RT = lookat_RT(np.array([0.0]), np.array([math.pi / 2 - 0.3]), np.array([1.0]))[0]
    assert torch.allclose(RT[:3, 3], torch.tensor([math.cos(0.3), 0.0, math.sin(0.3)]), atol=1e-6)
    assert RT[2, 1] > 0.9
    # Any pose: a rotation (orthonormal, det +1); the centre ray of a unit-radius camera hits the origin.
    yaw, polar = np.random.RandomState(0).uniform(-1, 1, 8), np.random.RandomState(1).uniform(1.2, 1.9, 8)
    RT = lookat_RT(yaw, polar, np.ones(8))
    R = RT[:, :3, :3]
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(8, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(8), atol=1e-5)
    origin, world = rays_world(camera_K_inv(90, 8), RT, torch.zeros(1, 2))
    assert torch.allclose(world[:, 0], torch.zeros(8, 3), atol=1e-6)
    assert torch.allclose(camera_K_inv(90, 1)[0], torch.eye(4), atol=1e-6)
    # The demo's sliders.
    assert slider_to_uv(0, 0, (-0.3, 0.3), (math.pi / 2 - 0.155, math.pi / 2 + 0.155)) == pytest.approx((0.5, 0.5))
    assert slider_to_uv(0.6, 0, (-0.3, 0.3), (0, 1))[0] == pytest.approx(1.0)


def test_ray_pixel_grids():
    centred = ray_pixels(32, 64, align_corner=False)
    assert centred.shape == (1024, 2)
    assert centred[0].tolist() == pytest.approx([-31 / 32, 31 / 32]) and centred[-1].tolist() == pytest.approx(
        [31 / 32, -31 / 32])
    corner = ray_pixels(32, 128, align_corner=True)
    axis = torch.linspace(-1, 1, 128)
    assert corner[0].tolist() == [-1.0, 1.0]
    assert corner[31, 0] == axis[124] and corner[-1, 1] == -axis[124]
    rolled = ray_pixels(32, 64, False, theta=math.pi / 2)
    assert torch.allclose(rolled[:, 0], -centred[:, 1], atol=1e-6)


def test_yaw_mirror_symmetry_of_the_renderer():
    """A scene symmetric under y -> -y seen from yaw +a and -a gives mirrored images (columns
    reversed), foreground and NeRF++ background alike: the camera, rays, sampling and background
    mapping are consistent with each other."""
    _, G, _ = fixture_net("stylenerf_64")
    V, C = G.synthesis.V, G.synthesis.C

    def fg_field(p):  # a soft ball with features even in y
        r2 = (p * p).sum(-1)
        feat = torch.stack([p[..., 0], p[..., 1] ** 2, p[..., 2], torch.cos(7 * p[..., 1])], -1)
        return feat, 40.0 * torch.exp(-r2 / 0.02) - 5

    def bg_field(p):
        return torch.stack([p[..., 0], p[..., 1].abs(), p[..., 2], p[..., 3]], -1), 3 * p[..., 2] + p[..., 3]

    images = []
    for u in (0.5 + 0.35, 0.5 - 0.35):
        K_inv, RT = G.synthesis.get_camera(1, [u, 0.6, 0.5])[:2]
        origin, world = rays_world(K_inv, RT, ray_pixels(32, 64, False))
        feat, remaining = V.foreground(fg_field, origin, world - origin, C.depth_range, 24)
        bg = V.background(bg_field, origin, world - origin, C.bg_start)
        images.append((feat + remaining.unsqueeze(-1) * bg).reshape(32, 32, -1))
    assert images[0].std() > 0.05
    assert torch.allclose(images[0], images[1].flip(1), atol=2e-4)


# -- reader --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURES)
def test_reader_on_real_layout_pickle(tmp_path, monkeypatch, name):
    """G_ema with embedded source, OmegaConf kwargs and C/V/U records -> the same network."""
    monkeypatch.setenv("STYLECORE_CACHE", str(tmp_path / "cache"))  # 'first load' never depends on test order
    meta, G, a = fixture_net(name)
    path = tmp_path / "ffhq_snapshot.pkl"
    write_stylenerf_pickle(path, G, meta["init_kwargs"])
    parsed = read_checkpoint(path)
    assert parsed.architecture == "stylenerf"
    assert parsed.init_kwargs == meta["init_kwargs"]
    G2 = load_generator(path)
    assert G2.checkpoint_info["architecture"] == "stylenerf" and not G2.checkpoint_info["cached"]
    ref = G.state_dict()
    assert all(torch.equal(t, ref[k]) for k, t in G2.state_dict().items())
    ws = torch.from_numpy(a["pose1/ws"])
    codes = (None, None, torch.from_numpy(a["pose1/z_bg"]), None)
    with torch.no_grad():
        ours = G2(styles=ws, latent_codes=codes, render_option="freeze_bg,steps:8")
        theirs = G(styles=ws, latent_codes=codes, render_option="freeze_bg,steps:8")
    assert torch.equal(ours, theirs)
    again = load_generator(path)
    assert again.checkpoint_info["cached"]
    assert all(torch.equal(t, ref[k]) for k, t in again.state_dict().items())


def test_reader_fills_settings_a_file_leaves_out(tmp_path):
    """upsample_mode, rgb_out_dim and the ray grid come from the weights and the camera record
    when the stored kwargs lack them, never from a default."""
    meta, G, _ = fixture_net("stylenerf_128_ps")
    kwargs = json.loads(json.dumps(meta["init_kwargs"]))
    syn = kwargs["synthesis_kwargs"]
    for key in ("upsample_mode", "rgb_out_dim"):
        syn.pop(key)
    path = tmp_path / "sparse.pkl"
    write_stylenerf_pickle(path, G, kwargs)
    got = read_checkpoint(path).init_kwargs["synthesis_kwargs"]
    assert got["upsample_mode"] == "pixelshuffle" and got["rgb_out_dim"] == 32
    syn["camera_kwargs"].pop("ray_align_corner")  # the camera record (synthesis.C) still holds it
    write_stylenerf_pickle(path, G, kwargs, camera_attrs=meta["init_kwargs"]["synthesis_kwargs"]["camera_kwargs"])
    got = read_checkpoint(path).init_kwargs["synthesis_kwargs"]
    assert got["camera_kwargs"]["ray_align_corner"] is True  # from synthesis.C


class _Gadget:
    """Would create `marker` if a loader ever ran it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (eval, (f"open({self.marker!r}, 'w').write('ran')",))


def test_hostile_config_objects_are_refused(tmp_path):
    meta, G, _ = fixture_net("stylenerf_64")
    marker = tmp_path / "ran"
    path = tmp_path / "hostile.pkl"
    write_stylenerf_pickle(path, G, meta["init_kwargs"], inject={"evil": _Gadget(marker)})
    with pytest.raises(UnsafeCheckpointError) as err:
        load_generator(path)
    assert "builtins.eval" in str(err.value) and str(path) in str(err.value)
    assert not marker.exists()

    # An allowed configuration class called with arguments, or patched through BUILD, is refused too
    # (hand-written protocol-2 streams: GLOBAL DictConfig, then REDUCE with ('x',) / BUILD with a dict).
    call = b"\x80\x02comegaconf.dictconfig\nDictConfig\nX\x01\x00\x00\x00x\x85R."
    (tmp_path / "call.pkl").write_bytes(call)
    with pytest.raises(CheckpointError):
        load_generator(tmp_path / "call.pkl")
    patch = b"\x80\x02comegaconf.dictconfig\nDictConfig\n}X\x03\x00\x00\x00bad\x88sb."
    (tmp_path / "patch.pkl").write_bytes(patch)
    with pytest.raises(CheckpointError):
        load_generator(tmp_path / "patch.pkl")


def test_embedded_source_is_never_executed(tmp_path):
    """The placeholder source of the synthesis module raises SystemExit if run; loading works."""
    from stylecore.formats.safe_pickle import PersistentRecord, safe_load_pickle
    from writers.stylenerf_pickle import SOURCES

    meta, G, _ = fixture_net("stylenerf_64")
    path = tmp_path / "snapshot.pkl"
    write_stylenerf_pickle(path, G, meta["init_kwargs"])
    obj = safe_load_pickle(path)
    synth = obj["G_ema"].modules["synthesis"]
    assert isinstance(synth, PersistentRecord) and synth.class_name == "NeRFSynthesisNetwork"
    assert "SystemExit" in SOURCES["stylenerf"]
    assert isinstance(synth.state["C"], PersistentRecord) and synth.state["C"].class_name == "CameraRay"
    assert b"omegaconf.dictconfig" in path.read_bytes() and b"typing" in path.read_bytes()
    load_generator(path)


def test_orbit_video(tmp_path):
    """An orbit renders to a playable H.264 MP4 with progress, and a cancel leaves no file."""
    from stylecore.engine.demo import build_demo_generator
    from stylecore.progress import Cancelled

    G = build_demo_generator("stylenerf").eval().requires_grad_(False)
    seen = []
    path = render_orbit(G, tmp_path / "orbit.mp4", 3, frames=6, fps=12,
                        settings=ViewSettings(steps=6), progress=lambda f, m: seen.append(f))
    assert path.exists() and path.stat().st_size > 1000 and seen[-1] == 1.0 and len(seen) == 6
    with open(path, "rb") as f:
        head = f.read(64)
    assert b"ftyp" in head
    with pytest.raises(Cancelled):
        render_orbit(G, tmp_path / "cancelled.mp4", 3, frames=6, settings=ViewSettings(steps=6),
                     cancel=lambda: True)
    assert not (tmp_path / "cancelled.mp4").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["orbit.mp4"]


def test_views_follow_the_camera_and_refuse_bad_input():
    from stylecore.engine.demo import build_demo_generator

    G = build_demo_generator("stylenerf").eval().requires_grad_(False)
    front = render_view(G, 1, settings=ViewSettings(steps=8))
    assert front.shape == (64, 64, 3) and front.dtype == np.uint8
    assert np.array_equal(front, render_view(G, 1, settings=ViewSettings(steps=8)))  # deterministic
    turned = render_view(G, 1, settings=ViewSettings(yaw=0.8, steps=8))
    assert np.abs(front.astype(int) - turned).mean() > 1
    for bad in (dict(yaw=float("nan")), dict(fov=0.0), dict(steps=1000), dict(truncation_psi=5.0)):
        with pytest.raises(ValueError):
            render_view(G, 1, settings=ViewSettings(**bad))
    sg2 = build_demo_generator("stylegan2")
    with pytest.raises(ValueError, match="StyleNeRF"):
        render_view(sg2, 1)
    with pytest.raises(ValueError, match="render option"):
        G.synthesis(G.mapping(torch.zeros(1, G.z_dim), None), render_option="rot_cam")


# -- GPU ------------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_parity_fp16_and_graph_capture():
    """Every case on the GPU in true float32; the fp16 upsampler blocks stay close; a whole view
    (camera, NeRF, upsampler) is captured in a CUDA graph and replayed."""
    from conftest import true_float32

    for name in FIXTURES:
        meta, G_cpu, a = fixture_net(name)
        G = build_generator("stylenerf", meta["init_kwargs"]).eval().requires_grad_(False)
        G.load_state_dict(G_cpu.state_dict(), strict=True)
        G = G.cuda()
        for case in meta["cases"]:
            p = case["name"] + "/"
            ws = torch.from_numpy(a[p + "ws"]).cuda()
            B = ws.shape[0]
            cam = G.synthesis.get_camera(B, [case["u"], case["v"], 0.5], device="cuda", fov=case["fov"])
            codes = (None, None, torch.from_numpy(a[p + "z_bg"]).cuda(), None)
            kwargs = dict(camera_matrices=cam, theta=case["roll"] * math.pi, latent_codes=codes,
                          render_option=case["render_option"], full_output=True)
            with torch.no_grad(), true_float32():
                out = G(styles=ws, force_fp32=True, **kwargs)
            figures = [_close(out[k], a[p + k], f"cuda {name}/{p}{k}") for k in ("img_nerf", "x_nerf", "img")]
            with torch.no_grad():
                img16 = G(styles=ws, **kwargs)["img"].float()
            err16 = float((img16.cpu() - torch.from_numpy(a[p + "img"])).abs().mean())
            print(f"\n[cuda] {name}/{case['name']} float32 mean/max |diff| img {figures[2][0]:.2e}/{figures[2][1]:.2e};"
                  f" fp16 upsampler mean |diff| {err16:.2e}")
            assert err16 < 2e-2

    meta, G_cpu, a = fixture_net("stylenerf_128_ps")
    G = build_generator("stylenerf", meta["init_kwargs"]).eval().requires_grad_(False)
    G.load_state_dict(G_cpu.state_dict(), strict=True)
    G = G.cuda()
    ws = torch.from_numpy(a["pose2/ws"]).cuda()
    codes = (None, None, torch.from_numpy(a["pose2/z_bg"]).cuda(), None)
    u, v = torch.full([1], 0.25, device="cuda"), torch.full([1], 0.6, device="cuda")

    def view():
        cam = G.synthesis.get_camera(1, [u, v, 0.5], device="cuda", fov=14)
        return G.synthesis(ws, camera_matrices=cam, theta=0.3, latent_codes=codes,
                           render_option="freeze_bg,steps:40", force_fp32=True)

    with torch.no_grad():
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                view()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = view()
        expected = view().clone()
        u.fill_(0.75)  # a new camera: the captured graph reads it from device memory
        turned = view().clone()
        graph.replay()
        torch.cuda.synchronize()
        assert torch.allclose(out, turned, atol=1e-3) and not torch.allclose(out, expected, atol=1e-2)
