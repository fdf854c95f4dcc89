"""The Domains and Retrieve tabs' handlers: StyleGAN-NADA domain files in their real layout (rosinality
{'g_ema': ...}, PT3 pickle globals) through the fake Hub, the built-in demo domains offline, and Retrieve
in Style's ranking (by parts, a box or a painted region) and part transfer on the demo network."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from stylecore.codes.latents import seeds_to_ws
from stylecore.edit import resources
from stylecore.edit.domains import morph_frames, render_through
from stylecore.edit.resources import load_domains
from stylecore.engine.demo import build_demo_domain, build_demo_generator
from stylecore.engine.manager import ModelManager
from stylecore.engine.zoo import Zoo
from test_real_globals import PT3, file_globals
from writers.rosinality import write_rosinality_pt

pytest.importorskip("gradio")
from spaces.domains import DomainsTab  # noqa: E402
from spaces.retrieval import RetrievalTab  # noqa: E402

REPO = "tester/nada-domains"


@pytest.fixture
def nada_zoo(fake_hub, tmp_path):
    """A base generator and two of its domains as rosinality files on the fake Hub, with pinned cards."""
    cards = []
    for name, G in (("base", build_demo_generator("stylegan2")), ("pixar", build_demo_domain("pixar")),
                    ("sketch", build_demo_domain("sketch"))):
        path = tmp_path / f"{name}.pt"
        write_rosinality_pt(path, G, "convert_weight", latent_avg=False)
        assert file_globals(path) == PT3  # the published NADA files' pickle imports (real_files.md)
        data = path.read_bytes()
        commit = fake_hub.add_file(REPO, f"{name}.pt", data)
        extra = 'base = "tiny-ffhq"\n' if name != "base" else ""
        cards.append(f'[[models]]\nid = "{"tiny-ffhq" if name == "base" else "tiny-" + name}"\n'
                     f'title = "{name.title()} (test)"\narchitecture = "stylegan2"\nformat = "rosinality"\n'
                     f'repo_id = "{REPO}"\nfilename = "{name}.pt"\nrevision = "{commit}"\nsize = {len(data)}\n'
                     f'sha256 = "{hashlib.sha256(data).hexdigest()}"\n{extra}')
    models = tmp_path / "models.toml"
    models.write_text("\n".join(cards))
    return Zoo.from_sources(str(models))


def test_real_layout_domains_through_the_hub(nada_zoo):
    manager = ModelManager(nada_zoo, device="cpu")
    models = load_domains(manager, "tiny-ffhq", ["tiny-pixar", "tiny-sketch"])
    ws = seeds_to_ws(models.base.G, [7], 0.7)
    together = render_through([models.base.G] + [m.G for m in models.domains], ws)
    alone = [render_through([m.G], ws)[0] for m in (models.base, *models.domains)]
    assert all(np.array_equal(a, b) for a, b in zip(together, alone))
    assert not np.array_equal(together[1], together[2])
    frames = list(morph_frames(models.base.G, models.domains[0].G, ws, 3))
    assert np.array_equal(frames[0], together[0]) and np.array_equal(frames[-1], together[1])
    with pytest.raises(ValueError, match="'tiny-pixar' has no domain generators"):
        load_domains(manager, "tiny-pixar", ["tiny-sketch"])
    with pytest.raises(ValueError, match="not a domain of 'tiny-ffhq': demo-domain-a"):
        load_domains(manager, "tiny-ffhq", ["demo-domain-a"])
    # Retrieve in Style on the same real-layout generator: a gallery image is its own nearest neighbour
    found = RetrievalTab(manager).retrieve("tiny-ffhq", "seed", 2, 0.7, None, None, [0, 1], 3, 6, 4, 16)
    assert found[5][0] == 2 and found[1][0][1] == "seed 2: 0.000"


@pytest.fixture(scope="module")
def manager():
    return ModelManager(Zoo.from_sources(None), device="cpu")


def test_domains_tab_offline_on_the_demo_domains(manager):
    tab = DomainsTab(manager)
    assert tab.default == "demo" and [c.id for c in manager.zoo.domains_of("demo")] == \
        ["demo-domain-a", "demo-domain-b", "demo-domain-c"]
    gallery, grid, status = tab.domains("demo", ["demo-domain-a", "demo-domain-c"], "seed", 4, 0.7)
    assert len(gallery) == 3 and "2 styles" in status
    assert gallery[0][0].shape == (64, 64, 3)  # an API call: real pixels
    with pytest.raises(ValueError, match="not a domain of 'demo'"):
        tab.domains("demo", ["nada-anime"], "seed", 4, 0.7)


def test_domain_morph_video(manager, tmp_path):
    tab = DomainsTab(manager)
    steps = list(tab.morph("demo", "demo-domain-b", "seed", 4, 0.7, frames=3))
    video, status = steps[-1]
    assert video.endswith(".mp4") and "3 frames" in status


def test_retrieve_ranks_and_borrows(manager):
    tab = RetrievalTab(manager)
    query, results, nearest, part, status, seeds = tab.retrieve("demo", "seed", 5, 0.7, None, None, [0], 3, 12, 4, 16)
    assert nearest == 5 and seeds[0] == 5 and len(results) == 3  # seed 5 is in the gallery: its own neighbour
    assert results[0][1] == "seed 5: 0.000"
    before, after, transfer_status = tab.transfer("demo", "seed", 5, 0.7, None, None, seeds[1], 0, 4, 16)
    assert before.shape == after.shape == (64, 64, 3) and "part 0" in transfer_status
    again = tab.retrieve("demo", "seed", 5, 0.7, None, None, [0], 3, 12, 4, 16)
    assert again[5] == seeds  # the same gallery and ranking on every run
    with pytest.raises(ValueError, match="choose at least one part"):
        tab.retrieve("demo", "seed", 5, 0.7, None, None, [], 3, 12, 4, 16)
    # A region instead of parts: the parts it covers, each by its share; the query is still its own neighbour.
    by_region = tab.retrieve("demo", "seed", 5, 0.7, None, None, [], 3, 12, 4, 16, "0.25, 0.25, 0.75, 0.75")
    assert by_region[5][0] == 5 and "region (0.25, 0.25, 0.75, 0.75)" in by_region[4]
    with pytest.raises(ValueError, match="give the region as a box 'x0, y0, x1, y1'"):
        tab.retrieve("demo", "seed", 5, 0.7, None, None, [], 3, 12, 4, 16, "the mouth")


def captions(found: tuple) -> list[str]:
    """The 'seed N: distance' captions of a Retrieve result."""
    return [caption for _, caption in found[1]]


def test_retrieve_by_a_painted_region(manager):
    """The query put into the region editor, a square painted on it: the search compares the parts the strokes
    cover, as the same square given as a box does; with 'parts' chosen the strokes are left aside."""
    tab = RetrievalTab(manager)
    marked, image, hint = tab.mark_query("demo", "seed", 5, 0.7, None, None, 4, 16)
    assert marked["background"].shape == image.shape == (64, 64, 3) and "Paint over" in hint
    stroke = np.zeros((64, 64, 4), np.uint8)
    stroke[16:48, 16:48] = 255  # the brush's layer: opaque where painted
    painted = {**marked, "layers": [stroke]}
    search = ("demo", "seed", 5, 0.7, None, None, [0], 3, 12, 4, 16)
    by_paint = tab.retrieve(*search, "", "painted", painted)
    by_box = tab.retrieve(*search, "0.25, 0.25, 0.75, 0.75")
    assert by_paint[5][0] == 5 and "marked region" in by_paint[4]
    assert captions(by_paint) == captions(by_box)  # the same seeds at the same distances
    # the part to borrow is the one the region covers most; the status names the parts it covers
    from stylecore.edit.local_edit import part_map

    parts = resources.part_table(manager, manager.get("demo"), "", 4, 16)
    labels = part_map(manager.get("demo").G, seeds_to_ws(manager.get("demo").G, [5], 0.7), parts)[0]
    covered = np.bincount(labels[16:48, 16:48].ravel(), minlength=4)
    assert by_paint[3]["value"] == int(np.argmax(covered))
    assert f"(part{'s' if (covered > 0).sum() > 1 else ''} {int(np.argmax(covered))} (" in by_paint[4]
    assert captions(tab.retrieve(*search, "", "parts", painted)) == captions(tab.retrieve(*search))
    with pytest.raises(ValueError, match="mark the region with the brush"):
        tab.retrieve(*search, "", "painted", marked)  # nothing painted
