"""GeoLRM preprocessing: object-centric judgement, normalisation into the cube (equivariant
under similarity transforms of the capture), view selection, background, and the way back to
the capture's world frame."""

from __future__ import annotations

import math

import torch

from pipelines.cameras import Cameras
from pipelines.models.base import Views
from pipelines.models.geolrm import load
from pipelines.models.geolrm.preprocess import (
    judge_object_centric,
    normalize_to_cube,
    prepare_inputs,
    select_views,
)
from pipelines.transforms import Similarity, random_rotations


def _orbit(gen, n=24, radius=3.0, center=(0.0, 0.0, 0.0), width=80, height=60, elev_jitter=0.3):
    """Cameras around ``center`` (world up = -y, OpenCV convention), looking at it, with noise."""
    az = torch.arange(n) * 2 * math.pi / n + 0.1 * torch.rand(n, generator=gen)
    el = 0.3 + elev_jitter * (torch.rand(n, generator=gen) - 0.5)
    c = torch.tensor(center)
    eye = c + radius * torch.stack([el.cos() * az.cos(), -el.sin(), el.cos() * az.sin()], -1)
    target = c + 0.05 * torch.randn(n, 3, generator=gen)
    return Cameras.look_at(eye, target, fov_y_deg=45, width=width, height=height)


def test_judge_object_centric(gen):
    orbit = judge_object_centric(_orbit(gen))
    assert orbit.object_centric, orbit.reason
    assert orbit.center.norm() < 0.1 and orbit.spread_deg > 120

    # forward-facing: cameras on a plane, all looking down +z
    n = 20
    eye = torch.cat([torch.rand(n, 2, generator=gen) - 0.5, torch.zeros(n, 1)], -1)
    ff = Cameras.look_at(
        eye,
        eye + torch.tensor([0.0, 0.0, 1.0]) + 0.02 * torch.randn(n, 3, generator=gen),
        fov_y_deg=50,
        width=80,
        height=60,
    )
    j = judge_object_centric(ff)
    assert not j.object_centric and j.reason

    # inside-out: cameras near the origin looking outwards
    dirs = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1)
    out = Cameras.look_at(0.05 * dirs, dirs * 2, fov_y_deg=50, width=80, height=60)
    assert not judge_object_centric(out).object_centric


def test_normalization_puts_the_object_in_the_cube(gen):
    center = (torch.rand(3, generator=gen) - 0.5) * 4
    cams = _orbit(gen, center=tuple(center.tolist()), radius=4.0)
    half = torch.tensor([0.6, 0.4, 0.5])
    obj = center + (torch.rand(400, 3, generator=gen) * 2 - 1) * half  # a box of points
    far = center + torch.randn(50, 3, generator=gen) * 40  # background clutter far away
    norm = normalize_to_cube(cams, torch.cat([obj, far]), fill=0.9)
    assert norm.source == "points"
    p = norm.to_cube.apply(obj.double())
    # robust (2..98 %) bounds: nearly every point inside the cube, and the object fills most of it
    assert (p.abs() < 0.5).all(-1).double().mean() > 0.97 and p.abs().max() < 0.6
    assert p.abs().amax(0).max() > 0.4
    assert norm.to_cube.apply(center.double()).norm() < 0.05
    # world up (-y for these cameras) becomes +z
    up_cube = norm.to_cube.rotation @ torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64)
    assert up_cube[2] > 0.99
    # without points: centre from the cameras' look-at point
    norm_c = normalize_to_cube(cams, None)
    assert norm_c.source == "cameras" and norm_c.to_cube.apply(center.double()).norm() < 0.05


def test_normalization_is_equivariant(gen):
    """Transforming the capture by S leaves the cube frame unchanged: to_cube' o S = to_cube."""
    cams = _orbit(gen)
    pts = (torch.rand(300, 3, generator=gen) - 0.5) * 0.8
    S = Similarity(
        0.5 + 2 * float(torch.rand(1, generator=gen)),
        random_rotations(1, generator=gen)[0],
        torch.randn(3, generator=gen),
    )
    for points in (pts, None):
        a = normalize_to_cube(cams, points)
        b = normalize_to_cube(cams.transform(S), None if points is None else S.apply(points.double()).float())
        torch.testing.assert_close(b.to_cube.compose(S).matrix(), a.to_cube.matrix(), atol=1e-4, rtol=1e-4)


def test_select_views_spreads_around_the_object(gen):
    cams = _orbit(gen, n=72, elev_jitter=0.8)
    idx = select_views(cams, 6)
    assert len(idx) == 6 and idx == sorted(set(idx))
    c2w = cams.c2w[idx]
    az = torch.atan2(c2w[:, 2, 3], c2w[:, 0, 3]).sort().values
    gaps = torch.diff(torch.cat([az, az[:1] + 2 * math.pi]))
    assert gaps.max() < math.radians(110), torch.rad2deg(gaps)
    assert select_views(cams, 100) == list(range(72))
    assert set(select_views(cams, 3, candidates=[1, 5, 9, 13])) <= {1, 5, 9, 13}


def test_prepare_inputs_crops_and_whitens_background(gen):
    cams = _orbit(gen, n=4, width=96, height=64)
    images = torch.rand(4, 3, 64, 96, generator=gen) * 0.5  # nothing white
    small_object = (torch.rand(200, 3, generator=gen) - 0.5) * 0.4  # much smaller than the view
    norm = normalize_to_cube(cams, small_object)
    assert norm.source == "points"
    x, used = prepare_inputs(images, cams, norm, image_size=56)
    assert x.images.shape == (1, 4, 3, 56, 56)
    # the object's centre projects near the image centre horizontally (the square crop spans
    # the full height, so only x can be centred)
    uv, _ = used.project(torch.zeros(1, 3))
    assert ((uv[:, 0, 0] - 28).abs() < 1).all()
    # pixels whose rays miss the cube are white; the centre is not
    o, d = used.pixel_rays()
    t = -(o * d).sum(-1, keepdim=True)  # closest approach to the origin
    dist = (o + t * d).norm(dim=-1)
    far = dist > 0.5 * math.sqrt(3) + 1e-3  # misses even the cube's circumscribed sphere
    assert far.any() and (x.images[0].permute(0, 2, 3, 1)[far] == 1).all()
    assert (x.images[0, :, :, 28, 28] < 1).all()
    # K_norm / c2w_gl are the used cameras in GeoLRM's conventions
    torch.testing.assert_close(x.K_norm[0], used.K_normalized())
    torch.testing.assert_close(x.c2w_gl[0], used.c2w_opengl())


def test_reconstruction_returns_gaussians_in_the_capture_world(gen):
    """The reconstructor's output is the network's cube-frame output mapped by to_world."""
    rec = load(preset="tiny", seed=5)
    cams = _orbit(gen, n=4)
    S = Similarity(3.0, random_rotations(1, generator=gen)[0], torch.randn(3, generator=gen))
    cams = cams.transform(S)
    images = torch.rand(4, 3, 60, 80, generator=gen)
    out = rec(Views(images, cams))
    assert out.info["object_centric"]["object_centric"]
    norm = normalize_to_cube(cams, None)
    torch.testing.assert_close(out.to_world.matrix(), norm.to_world.matrix())
    x, _ = prepare_inputs(images, cams, norm, image_size=rec.cfg.image_size)
    with torch.no_grad():
        logits = rec.model.proposal(x.images, x.c2w_gl, x.K_norm)
        anchors = rec.model.select(logits, torch.Generator().manual_seed(5))
        raw = rec.model.reconstruction(x, anchors.xyz)
    g = rec.model.reconstruction.decoder.to_gaussians(
        anchors.xyz[0][anchors.valid[0]], raw[0][anchors.valid[0]]
    )
    g = g.prune_opacity(0.005)
    assert out.gaussians.num == g.num > 0
    torch.testing.assert_close(out.gaussians.means, norm.to_world.apply(g.means), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.gaussians.scales(), g.scales() * norm.to_world.scale, atol=1e-7, rtol=1e-5)
    assert out.timings["total_s"] > 0 and "proposal_s" in out.timings
