"""The depth-mesh renderer: backends against the reference, coverage, cuts, conventions."""

import importlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vnvs.geometry import MASK, WARPED, forward_splat, mesh_render, render_control, warp_cells
from vnvs.geometry.control import composite_warped, push_pull_fill
from vnvs.geometry import _mesh_numba
from test_geometry import make_cameras

mesh_module = importlib.import_module("vnvs.geometry.mesh_render")  # the package exports the function by that name
BACKENDS = ["numba", "torch", "reference"]
FIELDS = ["index", "warped", "depth", "corr", "mask"]


def assert_same(a, b):
    for f in FIELDS:
        assert torch.equal(getattr(a, f), getattr(b, f)), f


def intrinsics(H, W, f=None):
    f = f if f is not None else 0.9 * W
    return torch.tensor([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1.0]])[None]


def test_constants_match_the_kernel():
    assert (mesh_module.EDGE_TOL, mesh_module.MARGIN, mesh_module.SQRT2) == \
        (_mesh_numba.EDGE_TOL, _mesh_numba.MARGIN, _mesh_numba.SQRT2)
    assert [tuple(n) for n in _mesh_numba.NEIGHBOURS.tolist()] == list(mesh_module._NEIGHBOURS)


@pytest.mark.parametrize("target_size", [None, (17, 29)])
@pytest.mark.parametrize("fill_points,extend", [(False, False), (True, False), (True, True)])
def test_backends_agree_bit_for_bit(target_size, fill_points, extend):
    T, H, W = 2, 14, 18
    g = torch.Generator().manual_seed(1)
    img = torch.rand(T, 3, H, W, generator=g)
    depth = 2 + torch.rand(T, H, W, generator=g)  # rough surfaces: some triangles cut, some bridged
    depth[:, 4:9, 5:11] = 1.0  # a foreground box
    depth[0, :3, :3] = float("nan")
    depth[1, 10:, :] = -1.0
    valid = torch.rand(T, H, W, generator=g) > 0.05
    K, w2c, Kt, w2t = make_cameras(T, H, W, focal_scale=1.3)
    if target_size is not None:
        Kt[:, 0] *= target_size[1] / W
        Kt[:, 1] *= target_size[0] / H
    outs = {b: mesh_render(img, depth, K, w2c, Kt, w2t, target_size=target_size, valid=valid, fill_points=fill_points,
                           extend=extend, backend=b) for b in BACKENDS}
    ref = outs["reference"]
    assert 0.2 < ref.mask.float().mean() < 1.0
    assert_same(outs["numba"], ref)
    assert_same(outs["torch"], ref)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16), yaw=st.floats(-0.4, 0.4), zoom=st.floats(0.6, 2.0),
       ratio=st.sampled_from([1.05, 1.5, float("inf")]), stretch=st.sampled_from([float("-inf"), 1.0, 3.0]))
def test_backends_agree_on_random_cameras(seed, yaw, zoom, ratio, stretch):
    T, H, W = 1, 9, 11
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(T, 3, H, W, generator=g)
    depth = 1 + 2 * torch.rand(T, H, W, generator=g)
    K, w2c, Kt, w2t = make_cameras(T, H, W, yaw=yaw, focal_scale=zoom, seed=seed)
    outs = {b: mesh_render(img, depth, K, w2c, Kt, w2t, max_depth_ratio=ratio, max_stretch=stretch,
                           fill_points=False, backend=b) for b in BACKENDS}
    assert_same(outs["numba"], outs["reference"])
    assert_same(outs["torch"], outs["reference"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_identity_camera_reproduces_the_image(backend):
    T, H, W = 2, 6, 7
    img = torch.rand(T, 3, H, W, generator=torch.Generator().manual_seed(0))
    depth = 1 + torch.rand(T, H, W, generator=torch.Generator().manual_seed(1)) * 0.05
    K, I = intrinsics(H, W).expand(T, 3, 3), torch.eye(4).expand(T, 4, 4)
    out = mesh_render(img, depth, K, I, K, I, fill_points=False, backend=backend)
    assert out.mask.all()
    torch.testing.assert_close(out.warped, img, atol=1e-6, rtol=0)
    grid = torch.stack(torch.meshgrid(torch.arange(W.__float__()), torch.arange(H.__float__()), indexing="xy"))
    torch.testing.assert_close(out.corr, grid.expand(T, 2, H, W), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.depth, depth, atol=1e-5, rtol=1e-6)
    assert torch.equal(out.index, torch.arange(H * W).reshape(H, W).expand(T, H, W))


def test_dolly_in_on_a_plane_leaves_no_cracks_but_the_point_splat_does():
    H, W = 40, 48
    img = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(0))
    depth = torch.full((1, H, W), 4.0)
    K = intrinsics(H, W)
    w2t = torch.eye(4)[None].clone()
    w2t[0, 2, 3] = -1.5  # 1.5 units closer: the plane is magnified 1.6x
    mesh = mesh_render(img, depth, K, torch.eye(4)[None], K, w2t, fill_points=False)
    splat = forward_splat(img, depth, K, torch.eye(4)[None], K, w2t)
    assert mesh.mask.all()  # the plane fills the whole target view
    assert splat.mask.float().mean() < 0.5  # one point per source pixel cannot
    # sub-pixel correspondence: target pixel (x, y) sees source (c + (x - c) / 1.6)
    c = torch.tensor([(W - 1) / 2, (H - 1) / 2]).view(2, 1, 1)
    grid = torch.stack(torch.meshgrid(torch.arange(float(W)), torch.arange(float(H)), indexing="xy"))
    torch.testing.assert_close(mesh.corr[0], c + (grid - c) / 1.6, atol=1e-4, rtol=0)
    torch.testing.assert_close(mesh.depth[0], torch.full((H, W), 2.5), atol=1e-5, rtol=0)


def test_depth_jump_leaves_a_hole_not_a_stretched_triangle():
    H, W = 20, 40
    img = torch.zeros(1, 3, H, W)
    img[:, 0] = 1.0  # background red
    depth = torch.full((1, H, W), 10.0)
    depth[:, :, 20:] = 2.0  # right half: a near wall
    img[:, :, :, 20:] = torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1)  # blue
    K = intrinsics(H, W, f=30.0)
    w2t = torch.eye(4)[None].clone()
    w2t[0, 0, 3] = 0.5  # camera moves left: the near wall slides right, opening a gap of several pixels
    cut = mesh_render(img, depth, K, torch.eye(4)[None], K, w2t, fill_points=False)
    whole = mesh_render(img, depth, K, torch.eye(4)[None], K, w2t, max_depth_ratio=float("inf"), fill_points=False)
    gap = ~cut.mask[0, H // 2]
    assert 4 <= int(gap.sum()) <= 10  # the disocclusion stays a hole
    assert whole.mask[0, H // 2, 10:][gap[10:]].all() and gap[10:].sum() >= 4  # without the cut a triangle bridges it ...
    mixed = whole.warped[0, :, H // 2, 10:][:, gap[10:]]  # ... with colours of both sides
    assert (mixed[0] > 0.05).any() and (mixed[2] > 0.05).any()
    # the background keeps its colour and depth where it shows
    bg = cut.mask[0] & (cut.depth[0] > 5)
    assert bg.any() and torch.equal(cut.warped[0, :, bg], torch.tensor([1.0, 0.0, 0.0])[:, None].expand(3, int(bg.sum())))


@pytest.mark.parametrize("backend", BACKENDS)
def test_invalid_and_nan_depth_are_skipped(backend):
    H, W = 8, 9
    img = torch.rand(1, 3, H, W)
    depth = torch.full((1, H, W), 2.0)
    depth[0, 0, 0] = float("nan")
    depth[0, 3, 4] = -1.0
    valid = torch.ones(1, H, W, dtype=torch.bool)
    valid[0, 6, 6] = False
    K, I = intrinsics(H, W), torch.eye(4)[None]
    out = mesh_render(img, depth, K, I, K, I, valid=valid, fill_points=False, backend=backend)
    for y, x in ((0, 0), (3, 4), (6, 6)):
        assert not out.mask[0, y, x]  # no triangle touches the skipped vertex
        assert not (out.index == y * W + x).any()
    assert out.mask.float().mean() > 0.8
    assert torch.isfinite(out.warped).all() and torch.isfinite(out.corr).all()
    assert (out.warped[:, :, ~out.mask[0]] == 0).all() and (out.index[~out.mask] == -1).all()


def test_outputs_have_the_splat_shapes_and_dtypes():
    T, H, W = 2, 10, 12
    img = torch.rand(T, 4, H, W)
    depth = 1 + torch.rand(T, H, W)
    K, w2c, Kt, w2t = make_cameras(T, H, W)
    a = mesh_render(img, depth, K, w2c, Kt, w2t, target_size=(7, 9))
    b = forward_splat(img, depth, K, w2c, Kt, w2t, target_size=(7, 9))
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        assert (x.shape, x.dtype) == (y.shape, y.dtype), f


def test_fill_points_only_adds_pixels():
    T, H, W = 1, 16, 16
    img = torch.rand(T, 3, H, W)
    depth = torch.full((T, H, W), 3.0)
    depth[:, 5:11, 5:11] = 1.0
    K, w2c, Kt, w2t = make_cameras(T, H, W, yaw=0.1)
    bare = mesh_render(img, depth, K, w2c, Kt, w2t, fill_points=False, extend=False)
    for fill_points, extend in ((True, False), (False, True), (True, True)):
        full = mesh_render(img, depth, K, w2c, Kt, w2t, fill_points=fill_points, extend=extend)
        assert (full.mask & ~bare.mask).any() and not (bare.mask & ~full.mask).any()
        assert torch.equal(full.warped[:, :, bare.mask[0]], bare.warped[:, :, bare.mask[0]])


def test_extension_reveals_background_next_to_a_silhouette():
    """A box in front of a wall, the camera moved sideways: the wall's band next to the box's silhouette,
    which the cut triangles leave open, is filled with the wall (its colour, its depth) and nothing else."""
    T, H, W = 1, 24, 24
    img = torch.full((T, 3, H, W), 0.2)
    depth = torch.full((T, H, W), 4.0)
    img[:, :, 8:16, 8:16] = 0.9
    depth[:, 8:16, 8:16] = 1.0
    K, I = intrinsics(H, W), torch.eye(4)[None]
    w2t = I.clone()
    w2t[:, 0, 3] = -0.15  # the camera moves right: the wall right of the box is revealed
    bare = mesh_render(img, depth, K, I, K, w2t, fill_points=False, extend=False)
    ext = mesh_render(img, depth, K, I, K, w2t, fill_points=False, extend=True)
    added = ext.mask & ~bare.mask
    assert added.sum() >= 8  # at least a pixel per row of the box
    torch.testing.assert_close(ext.warped[0][:, added[0]], torch.full((3, int(added.sum())), 0.2))
    assert (ext.depth[added] > 3.5).all()
    assert not (ext.mask & ~bare.mask & (ext.depth < 3.5)).any()


def test_render_control_takes_the_renderer():
    T, H, W = 2, 12, 14
    img, depth = torch.rand(T, 3, H, W), 1 + torch.rand(T, H, W)
    K, w2c, Kt, w2t = make_cameras(T, H, W)
    zb = render_control(img, depth, K, w2c, Kt, w2t, (H, W))
    assert torch.equal(zb, render_control(img, depth, K, w2c, Kt, w2t, (H, W), renderer="zbuffer"))
    mesh = render_control(img, depth, K, w2c, Kt, w2t, (H, W), renderer="mesh", chunk=1)
    assert mesh.shape == zb.shape and not torch.equal(mesh, zb)
    with pytest.raises(ValueError, match="renderer"):
        render_control(img, depth, K, w2c, Kt, w2t, (H, W), renderer="nope")


def test_warp_cells_is_render_control_per_view():
    T, H, W = 3, 12, 14
    img, depth = torch.rand(T, 3, H, W), 1 + torch.rand(T, H, W)
    K, w2c, Kt, w2t = make_cameras(T, H, W)
    Kg, w2cg = torch.stack([K, Kt, Kt]), torch.stack([w2c, w2t, w2t @ w2t])
    warped, landed = warp_cells(img, depth, K, w2c, Kg, w2cg, renderer="mesh")
    assert warped.shape == (3, T, 3, H, W) and landed.shape == (3, T, H, W) and landed.dtype == torch.bool
    assert torch.equal(warped[0], img) and landed[0].all()
    for v in (1, 2):
        control = render_control(img, depth, K, w2c, Kg[v], w2cg[v], (H, W), renderer="mesh")
        assert torch.equal(warped[v], control[:, WARPED]) and torch.equal(landed[v], control[:, MASK][:, 0] > 0.5)
    assert not landed[2].all()  # the second view reveals something


def test_bad_arguments_raise():
    img, depth = torch.rand(1, 3, 4, 4), torch.ones(1, 4, 4)
    K, I = intrinsics(4, 4), torch.eye(4)[None]
    with pytest.raises(ValueError, match="max_depth_ratio"):
        mesh_render(img, depth, K, I, K, I, max_depth_ratio=0.5)
    with pytest.raises(ValueError, match="backend"):
        mesh_render(img, depth, K, I, K, I, backend="gpu")
    with pytest.raises(ValueError, match="depth"):
        mesh_render(img, depth[:, :3], K, I, K, I)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_backend_on_cuda_matches_the_cpu():
    T, H, W = 2, 24, 30
    img, depth = torch.rand(T, 3, H, W), 1 + torch.rand(T, H, W)
    K, w2c, Kt, w2t = make_cameras(T, H, W, focal_scale=1.4)
    cpu = mesh_render(img, depth, K, w2c, Kt, w2t, backend="numba")
    gpu = mesh_render(*(x.cuda() for x in (img, depth, K, w2c, Kt, w2t)))
    for f in FIELDS:
        torch.testing.assert_close(getattr(gpu, f).cpu(), getattr(cpu, f), atol=1e-5, rtol=0)


def test_push_pull_fill_keeps_known_pixels_and_fills_within_their_range():
    g = torch.Generator().manual_seed(4)
    values = torch.rand(2, 3, 13, 17, generator=g)
    weights = (torch.rand(2, 1, 13, 17, generator=g) > 0.7).float()
    out = push_pull_fill(values * weights, weights)
    known = weights.expand_as(values) > 0
    assert torch.equal(out[known], values[known])
    assert float(out.min()) >= float(values[known].min()) - 1e-6 and float(out.max()) <= float(values[known].max()) + 1e-6
    flat = push_pull_fill(torch.full_like(values, 0.3) * weights, weights)  # a constant stays constant
    assert torch.allclose(flat, torch.full_like(values, 0.3), atol=1e-6)
    assert torch.equal(push_pull_fill(values, torch.ones_like(weights)), values)
    assert torch.equal(push_pull_fill(values * 0, torch.zeros_like(weights)), torch.zeros_like(values))  # nothing known


def test_seamless_composite_removes_a_colour_shift_of_the_painted_holes():
    g = torch.Generator().manual_seed(5)
    truth = torch.rand(2, 3, 1, 1, generator=g) * 0.5 + torch.rand(2, 3, 24, 20, generator=g) * 0.05
    mask = torch.ones(2, 1, 24, 20, dtype=torch.bool)
    mask[..., 6:18, 5:14] = False  # a disocclusion
    painted = truth + 0.3  # a generator that gets the hole's texture right and its colour wrong
    plain = composite_warped(painted, truth, mask)
    seamless = composite_warped(painted, truth, mask, seamless=True)
    core = torch.zeros_like(mask)
    core[..., 8:16, 7:12] = True  # away from the rim, which crack filling may close
    core = core.expand_as(truth)
    assert torch.allclose(plain[core], painted[core])
    assert float((seamless[core] - truth[core]).abs().max()) < 0.02  # the shift is gone, the texture kept
    assert torch.equal(seamless[mask.expand_as(truth)], truth[mask.expand_as(truth)])
