"""StyleGAN-NADA domains and Retrieve in Style on the demo networks (engine level; the tab and the
real-layout files through the fake Hub are tested in their own modules)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stylecore.codes.latents import seeds_to_ws
from stylecore.codes.stylespace import ws_to_styles
from stylecore.edit.domains import check_same_network, morph_frames, render_through
from stylecore.edit.local_edit import PartModel
from stylecore.edit.retrieval import build_gallery, part_weights, rank, region_shares, share_weights
from stylecore.engine.demo import build_demo_generator
from stylecore.progress import Cancelled
from stylecore.video.writer import mp4_steps


@pytest.fixture(scope="module")
def base():
    return build_demo_generator("stylegan2", seed=0).eval()


@pytest.fixture(scope="module")
def domain():
    """The base network with other synthesis weights: what a NADA domain is to its FFHQ generator."""
    return build_demo_generator("stylegan2", seed=1).eval()


@pytest.fixture(scope="module")
def code(base):
    return seeds_to_ws(base, [3], 0.7)


def test_one_code_through_two_domains_equals_each_alone(base, domain, code):
    together = render_through([base, domain], code)
    alone = [render_through([G], code)[0] for G in (base, domain)]
    assert all(np.array_equal(a, b) for a, b in zip(together, alone))
    assert not np.array_equal(together[0], together[1])


def test_morph_starts_and_ends_at_the_two_models(base, domain, code):
    frames = list(morph_frames(base, domain, code, 4))
    ends = render_through([base, domain], code)
    assert np.array_equal(frames[0], ends[0]) and np.array_equal(frames[-1], ends[1])
    assert not np.array_equal(frames[1], frames[0]) and not np.array_equal(frames[1], frames[-1])
    with pytest.raises(ValueError, match="frames must be"):
        list(morph_frames(base, domain, code, 1))


def test_morph_video_and_stop(base, domain, code, tmp_path):
    steps = mp4_steps(tmp_path / "morph.mp4", morph_frames(base, domain, code, 3), 3, fps=6)
    fractions = []
    with pytest.raises(StopIteration) as done:
        while True:
            fractions.append(next(steps)[0])
    assert fractions == pytest.approx([1 / 3, 2 / 3, 1]) and done.value.value.stat().st_size > 0
    with pytest.raises(Cancelled):
        list(mp4_steps(tmp_path / "stopped.mp4", morph_frames(base, domain, code, 3), 3, 6, cancel=lambda: True))
    assert not (tmp_path / "stopped.mp4").exists()


def test_a_domain_must_be_the_same_network(base):
    with pytest.raises(ValueError, match="not a domain of this generator"):
        check_same_network(base, build_demo_generator("stylegan3"), "demo-sg3")


@pytest.fixture(scope="module")
def gallery(base):
    return build_gallery(base, 12, first_seed=100)


@pytest.fixture(scope="module")
def two_local_parts(base, gallery):
    """Parts made local by construction: part 0 owns the even channels of every layer, part 1 the odd."""
    contributions = []
    for s in gallery.styles:
        c = np.zeros((2, s.shape[1]), np.float32)
        c[0, 0::2], c[1, 1::2] = 1, 1
        contributions.append(c)
    return PartModel("b32", np.eye(2, 8, dtype=np.float32), contributions, 0, 0)


def test_every_gallery_image_is_its_own_nearest_neighbour(gallery, two_local_parts):
    for part in (0, 1):
        weights = part_weights(two_local_parts, [part])
        for i in range(len(gallery)):
            query = [s[i] for s in gallery.styles]
            best = rank(gallery, query, weights, top=1)[0]
            assert best.index == i and best.distance == pytest.approx(0, abs=1e-9)


def test_changing_one_part_moves_only_that_parts_ranking(gallery, two_local_parts):
    query = [s[2].clone() for s in gallery.styles]
    weights = {p: part_weights(two_local_parts, [p]) for p in (0, 1)}
    before = {p: [m.index for m in rank(gallery, query, weights[p], top=12)] for p in (0, 1)}
    for q, s in zip(query, gallery.styles):  # image 7's part 0 on image 2
        q[0::2] = s[7, 0::2]
    after = {p: [m.index for m in rank(gallery, query, weights[p], top=12)] for p in (0, 1)}
    assert after[1] == before[1]
    assert after[0][0] == 7 and after[0] != before[0]


def test_painted_region_weights_parts_by_their_share(two_local_parts):
    labels = np.zeros((4, 4), int)
    labels[:, 2:] = 1
    region = np.zeros((4, 4), bool)
    region[:, 1:3] = True  # half part 0, half part 1
    weights = share_weights(two_local_parts, region_shares(two_local_parts, labels, region))
    assert np.allclose(weights[0], 0.5)
    with pytest.raises(ValueError, match="mask is empty"):
        region_shares(two_local_parts, labels, np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="choose at least one part"):
        part_weights(two_local_parts, [])


def test_gallery_is_the_same_on_every_run(base, gallery):
    again = build_gallery(base, 12, first_seed=100)
    assert np.array_equal(again.images, gallery.images) and torch.equal(again.ws, gallery.ws)
    assert torch.equal(again.styles[3], ws_to_styles(base, seeds_to_ws(base, list(range(100, 112)), 0.7))[3].detach())
