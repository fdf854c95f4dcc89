"""Each test writer carries exactly the pickle globals of the published files, and the real readers
load what it writes back into the network that was written.

The expected sets are the Hub's "Detected Pickle imports" of the real checkpoints, copied from
reference/real_files.md §1. The `old` set (LPIPS-era legacy `.pth` heads) has no writer: nothing in
stylecore reads those files (the LPIPS heads come from the lpips package's own copies).
"""
from __future__ import annotations

import io
import math
import pickle
import pickletools
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import parity_case, relative_error
from stylecore.inversion.encoders import decode, load_encoder
from stylecore.formats.safe_pickle import ConfigStandIn, TorchContainerRecord, safe_load_pickle
from stylecore.formats.loader import load_generator
from stylecore.networks import build_generator
from writers.encoders import write_tiny_encoder_pt
from writers.official_pickle import nest_ada_kwargs, write_official_pickle
from writers.rosinality import write_rosinality_pt
from writers.stylenerf_pickle import write_stylenerf_pickle
from writers.tf_pickle import write_tf_pickle

ADA8 = {"torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
        "torch_utils.persistence._reconstruct_persistent_obj", "torch.storage._load_from_bytes", "dnnlib.util.EasyDict",
        "numpy.dtype", "collections.OrderedDict", "numpy.core.multiarray.scalar"}
ADA9 = {"torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
        "torch_utils.persistence._reconstruct_persistent_obj", "torch.storage._load_from_bytes", "dnnlib.util.EasyDict",
        "numpy.dtype", "collections.OrderedDict", "numpy.core.multiarray.scalar", "builtins.set"}
SG3_10 = {"torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
          "torch_utils.persistence._reconstruct_persistent_obj", "torch.storage._load_from_bytes",
          "dnnlib.util.EasyDict", "numpy.dtype", "collections.OrderedDict", "numpy.core.multiarray.scalar",
          "numpy.ndarray", "numpy.core.multiarray._reconstruct"}
TF5 = {"dnnlib.tflib.network.Network", "numpy.core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype",
       "numpy.core.multiarray.scalar"}
NERF19 = {"torch.nn.modules.container.Sequential", "torch.nn.modules.container.ModuleList", "collections.defaultdict",
          "builtins.list", "builtins.dict", "builtins.int", "typing.Any", "omegaconf.nodes.AnyNode",
          "omegaconf.base.ContainerMetadata", "omegaconf.base.Metadata", "omegaconf.dictconfig.DictConfig",
          "omegaconf.listconfig.ListConfig", "torch_utils.persistence._reconstruct_persistent_obj",
          "torch._utils._rebuild_parameter", "torch._utils._rebuild_tensor_v2", "torch.storage._load_from_bytes",
          "numpy.core.multiarray.scalar", "numpy.dtype", "collections.OrderedDict"}
PT3 = {"collections.OrderedDict", "torch.FloatStorage", "torch._utils._rebuild_tensor_v2"}
PT4 = {"collections.OrderedDict", "torch.FloatStorage", "torch._utils._rebuild_tensor_v2", "torch.LongStorage"}

NERF_MEAN_TOL, NERF_MAX_TOL = 1e-4, 1e-2  # README-stylenerf.md, "Determinism and tolerance"
ROUND_TRIP_TOL = 1e-5  # relative: TF and rosinality layouts store some tensors transformed (TF's mod_bias - 1)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLECORE_CACHE", str(tmp_path / "own-cache"))


# -- listing the globals of a file ---------------------------------------------------------------


def pickle_globals(data: bytes) -> set[str]:
    """`module.name` of every global one pickle stream imports (GLOBAL, INST and STACK_GLOBAL).

    STACK_GLOBAL takes its module and name from the two values pushed before it, which are
    string pushes or memo fetches of earlier strings; the memo is followed to resolve those.
    """
    found: set[str] = set()
    pushed: list = []
    memo: dict = {}
    for op, arg, _ in pickletools.genops(io.BytesIO(data)):
        if op.name in ("GLOBAL", "INST"):
            found.add(arg.replace(" ", "."))
        elif op.name == "STACK_GLOBAL":
            module, name = pushed[-2:]
            assert isinstance(module, str) and isinstance(name, str), "STACK_GLOBAL without two string operands"
            found.add(f"{module}.{name}")
        if op.name == "MEMOIZE":
            memo[len(memo)] = pushed[-1]
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = pushed[-1]
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            pushed.append(memo[arg])
        else:
            pushed.append(arg if "UNICODE" in op.name else None)
    return found


def file_globals(path: Path) -> set[str]:
    """Globals of a network pickle, or of the `*/data.pkl` record of a torch.save zip."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            (name,) = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            return pickle_globals(archive.read(name))
    return pickle_globals(path.read_bytes())


def test_the_lister_follows_memoized_strings():
    """A second global from the same module fetches the module string from the memo."""
    data = pickle.dumps([torch.nn.Sequential, torch.nn.ModuleList, np.dtype], protocol=4)
    assert pickle_globals(data) == {"torch.nn.modules.container.Sequential",
                                    "torch.nn.modules.container.ModuleList", "numpy.dtype"}
    assert pickle_globals(pickle.dumps(np.dtype, protocol=2)) == {"numpy.dtype"}


# -- the families ---------------------------------------------------------------------------------


def _net(name: str) -> tuple[torch.nn.Module, dict, dict]:
    meta, state, arrays = parity_case(name)
    G = build_generator(meta["architecture"], meta["init_kwargs"])
    G.load_state_dict(state, strict=True)
    return G.eval().requires_grad_(False), meta, arrays


def _image(G: torch.nn.Module) -> torch.Tensor:
    z = torch.randn([2, G.z_dim], generator=torch.Generator().manual_seed(0))
    return G(z, None, truncation_psi=0.7, noise_mode="const", force_fp32=True)


@pytest.mark.parametrize("family,case,flavour,protocol,expected", [
    ("ADA8", "sg2_64", "ada", 4, ADA8),
    ("ADA9", "sg2_64", "ada", 3, ADA9),
    ("SG3-10", "sg3t_64", "sg3", None, SG3_10),
], ids=["ADA8", "ADA9", "SG3-10"])
def test_official_pickles(tmp_path, family, case, flavour, protocol, expected):
    G, meta, _ = _net(case)
    kwargs = nest_ada_kwargs(meta["init_kwargs"]) if flavour == "ada" else meta["init_kwargs"]
    path = tmp_path / f"{family}.pkl"
    write_official_pickle(path, G, kwargs, flavour, protocol=protocol)
    assert file_globals(path) == expected

    loaded = load_generator(path)
    assert loaded.checkpoint_info["architecture"] == meta["architecture"]
    assert ("ADA" in loaded.checkpoint_info["source"]) == (flavour == "ada")
    ref = G.state_dict()
    assert list(loaded.state_dict()) == list(ref)
    assert all(torch.equal(t, ref[k]) for k, t in loaded.state_dict().items())
    assert torch.equal(_image(loaded), _image(G))


def test_tf_pickle(tmp_path):
    G, meta, _ = _net("sg2_64")
    path = tmp_path / "stylegan2-ffhq-config-f.pkl"
    write_tf_pickle(path, G, meta["init_kwargs"])
    assert file_globals(path) == TF5
    loaded = load_generator(path)
    assert loaded.checkpoint_info["architecture"] == "stylegan2"
    assert relative_error(_image(loaded), _image(G)) < ROUND_TRIP_TOL


def test_rosinality_pt(tmp_path):
    G, _, _ = _net("sg2_64")
    path = tmp_path / "stylegan2-ffhq-config-f.pt"
    write_rosinality_pt(path, G)
    assert file_globals(path) == PT3
    loaded = load_generator(path)
    ws = torch.randn([2, G.num_ws, G.w_dim], generator=torch.Generator().manual_seed(1))
    ours = loaded.synthesis(ws, noise_mode="const", force_fp32=True)
    assert relative_error(ours, G.synthesis(ws, noise_mode="const", force_fp32=True)) < ROUND_TRIP_TOL


@pytest.mark.parametrize("kind", ["psp", "e4e", "restyle_psp"])
def test_encoder_pt(tmp_path, kind):
    G, _, _ = _net("sg2_64")
    path = tmp_path / f"{kind}_ffhq_encode.pt"
    write_tiny_encoder_pt(path, kind, G)
    assert file_globals(path) == PT4
    model = load_encoder(path)
    assert model.kind == kind and model.n_styles == G.num_ws
    ws = torch.randn([2, G.num_ws, G.w_dim], generator=torch.Generator().manual_seed(3))
    assert torch.allclose(decode(model, ws), G.synthesis(ws, noise_mode="const", force_fp32=True), atol=1e-5)


@pytest.mark.parametrize("name", ["stylenerf_64", "stylenerf_128_ps"])
def test_stylenerf_pickle(tmp_path, name):
    """NERF19, read as data (containers as records, resolver caches as dicts), renders the parity image."""
    G, meta, a = _net(name)
    path = tmp_path / "ffhq_256.pkl"
    write_stylenerf_pickle(path, G, meta["init_kwargs"])
    assert file_globals(path) == NERF19

    synth = safe_load_pickle(path)["G_ema"].modules["synthesis"]
    block = synth.modules[f"b{min(G.synthesis.block_resolutions)}"]
    adapter, blocks = block.modules["conv0"].modules["adapter"], synth.modules["fg_nerf"].modules["blocks"]
    assert isinstance(adapter, TorchContainerRecord) and adapter.class_name == "Sequential"
    assert isinstance(blocks, TorchContainerRecord) and blocks.class_name == "ModuleList"
    metadata = synth.state["V"].state["_init_args"][0].fields["_metadata"]
    assert isinstance(metadata, ConfigStandIn) and type(metadata.fields["resolver_cache"]) is dict

    loaded = load_generator(path)
    assert loaded.checkpoint_info["architecture"] == "stylenerf"
    ref = G.state_dict()
    assert list(loaded.state_dict()) == list(ref)
    assert all(torch.equal(t, ref[k]) for k, t in loaded.state_dict().items())
    case = next(c for c in meta["cases"] if c["name"] == "pose0")
    ws = loaded.mapping(torch.from_numpy(a["z_" + case["z"]]), None, truncation_psi=case["psi"])
    cam = loaded.synthesis.get_camera(batch_size=1, mode=[case["u"], case["v"], 0.5], device="cpu", fov=case["fov"])
    torch.manual_seed(case["torch_manual_seed"])
    with torch.no_grad():
        out = loaded(styles=ws, camera_matrices=cam, theta=case["roll"] * math.pi,
                     render_option=case["render_option"], force_fp32=True, full_output=True)
    diff = np.abs(out["img"].numpy().astype(np.float64) - a["pose0/img"])
    assert diff.mean() < NERF_MEAN_TOL and diff.max() < NERF_MAX_TOL
