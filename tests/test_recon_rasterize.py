"""The Gaussian rasterizer: reference vs compiled path (images and every gradient), finite differences,
geometry of a single Gaussian, the 3DGS cutoffs, and the gsplat path (CUDA only)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from vnvs.errors import InputError
from vnvs.recon.rasterize import ALPHA_MAX, bin_tiles, project_gaussians, quat_to_rotmat, rasterize

K = torch.tensor([[40.0, 0, 19.5], [0, 40, 14.5], [0, 0, 1]])
W, H = 40, 30


def _scene(n: int, seed: int, dtype=torch.float64, opacity_bias: float = 0.0, spread: float = 0.5):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * spread + torch.tensor([0.0, 0.0, 3.0])
    log_scales = torch.randn(n, 3, generator=g) * 0.3 - 2.3
    quats = torch.randn(n, 4, generator=g)
    logits = torch.randn(n, generator=g) + opacity_bias
    colors = torch.rand(n, 3, generator=g)
    return [x.to(dtype).requires_grad_() for x in (means, log_scales, quats, logits, colors)]


def _loss_and_grads(params, backend, w2c=None, bg=(0.2, 0.3, 0.4)):
    w2c = torch.eye(4) if w2c is None else w2c
    out = rasterize(*params, w2c, K, W, H, background=torch.tensor(bg), backend=backend)
    g = torch.Generator().manual_seed(7)
    wi = torch.rand(3, H, W, generator=g).to(params[0].dtype)
    wa = torch.rand(H, W, generator=g).to(params[0].dtype)
    loss = (out.image * wi).sum() + (out.alpha * wa).sum() + 0.1 * out.depth.sum()
    return out, torch.autograd.grad(loss, params)


@pytest.mark.parametrize("seed,bias", [(0, 0.0), (1, 4.0)])
def test_numba_matches_reference_images_and_gradients(seed, bias):
    params = _scene(300, seed, opacity_bias=bias)
    ref, g_ref = _loss_and_grads(params, "reference")
    fast, g_fast = _loss_and_grads(params, "numba")
    assert float(ref.alpha.detach().max()) > 0.9
    for a, b in ((ref.image, fast.image), (ref.alpha, fast.alpha), (ref.depth, fast.depth)):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9)
    for name, a, b in zip(("means", "log_scales", "quats", "opacity", "colors"), g_ref, g_fast):
        assert float(a.abs().max()) > 0, name
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-8, msg=name)


def test_float32_paths_agree():
    params = _scene(200, 3, dtype=torch.float32)
    ref, g_ref = _loss_and_grads(params, "reference")
    fast, g_fast = _loss_and_grads(params, "numba")
    torch.testing.assert_close(fast.image, ref.image, rtol=1e-4, atol=1e-5)
    for a, b in zip(g_ref, g_fast):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-3)


def test_opaque_stack_stops_early_and_clamps():
    # 40 large opaque Gaussians in front of each other: alpha is clamped at 0.99 and pixels stop at T < 1e-4
    n = 40
    means = torch.stack([torch.zeros(n), torch.zeros(n), torch.linspace(2, 4, n)], 1).double()
    params = [means, torch.full((n, 3), -0.5).double(), torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1).double(),
              torch.full((n,), 8.0).double(), torch.rand(n, 3, generator=torch.Generator().manual_seed(0)).double()]
    params = [p.requires_grad_() for p in params]
    ref, g_ref = _loss_and_grads(params, "reference")
    fast, g_fast = _loss_and_grads(params, "numba")
    centre = ref.image[:, 15, 20]
    # the first two Gaussians take 0.99 and 0.0099 of the weight; the third would drop T below 1e-4
    expect = 0.99 * params[4][0] + 0.99 * 0.01 * params[4][1] + 1e-4 * torch.tensor([0.2, 0.3, 0.4]).double()
    torch.testing.assert_close(centre, expect.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(fast.image, ref.image, rtol=1e-9, atol=1e-9)
    for a, b in zip(g_ref, g_fast):
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_gradients_match_finite_differences(backend):
    params = _scene(6, 5, spread=0.15)
    w2c = torch.eye(4, dtype=torch.float64)
    w2c[:3, 3] = torch.tensor([0.05, -0.02, 0.1])

    g = torch.Generator().manual_seed(3)
    wi, wa, wd = (torch.rand(*s, generator=g).double() for s in ((3, 20, 24), (20, 24), (20, 24)))

    def f(*p):  # a scalar of every output: one backward pass, 2 x 84 forward passes
        out = rasterize(*p, w2c, K, 24, 20, background=torch.tensor([0.1, 0.5, 0.9]), backend=backend)
        return (out.image * wi).sum() + (out.alpha * wa).sum() + (out.depth * wd).sum()

    assert torch.autograd.gradcheck(f, tuple(params), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_single_gaussian_lands_where_the_camera_projects_it():
    w2c = torch.eye(4)
    w2c[:3, 3] = torch.tensor([0.3, -0.2, 1.0])
    means = torch.tensor([[0.1, 0.05, 2.0]])
    out = rasterize(means, torch.full((1, 3), -3.0), torch.tensor([[1.0, 0, 0, 0]]), torch.tensor([3.0]),
                    torch.tensor([[1.0, 0.5, 0.25]]), w2c, K, W, H)
    cam = means[0] + w2c[:3, 3]
    u, v = 40 * cam[0] / cam[2] + 19.5, 40 * cam[1] / cam[2] + 14.5
    peak = int(out.alpha.argmax())
    assert (peak % W, peak // W) == (round(float(u)), round(float(v)))
    assert abs(float(out.depth.reshape(-1)[peak]) - float(cam[2])) < 1e-5
    torch.testing.assert_close(out.image[:, peak // W, peak % W] / out.alpha.max(), torch.tensor([1.0, 0.5, 0.25]))
    assert float(out.alpha.max()) <= ALPHA_MAX + 1e-6


def test_projection_covariance_and_culling():
    # an isotropic Gaussian of std s at depth z has 2D variance (f s / z)^2 + 0.3 on both axes
    means = torch.tensor([[0.0, 0.0, 4.0], [0.0, 0.0, -1.0], [50.0, 0.0, 4.0]])
    proj = project_gaussians(means, torch.full((3, 3), -2.0), quat_to_rotmat(torch.eye(4)[:3]).new_tensor(
        [[1.0, 0, 0, 0]] * 3), torch.eye(4), K, W, H)
    var = (40 * torch.exp(torch.tensor(-2.0)) / 4) ** 2 + 0.3
    torch.testing.assert_close(proj.conics[0], torch.tensor([1 / var, 0.0, 1 / var]))
    assert proj.radii.tolist()[1:] == [0, 0] and int(proj.radii[0]) == int(torch.ceil(3 * var.sqrt()))
    lists = bin_tiles(proj.means2d, proj.depths, proj.radii, W, H)
    assert set(lists.gid.tolist()) == {0}


def test_bad_shapes_and_backend_are_refused():
    p = _scene(4, 0)
    with pytest.raises(ValueError, match="means"):
        rasterize(p[0][:, :2], *p[1:], torch.eye(4), K, W, H)
    with pytest.raises(ValueError, match="backend"):
        rasterize(*p, torch.eye(4), K, W, H, backend="opengl")


@pytest.mark.skipif(importlib.util.find_spec("gsplat") is not None, reason="gsplat is installed")
def test_gsplat_missing_is_one_line_error():
    p = _scene(4, 0)
    with pytest.raises(InputError, match=r"pip install 'vnvs\[gpu\]'"):
        rasterize(*p, torch.eye(4), K, W, H, backend="gsplat")


@pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("gsplat") is None,
                    reason="needs CUDA and gsplat")
def test_gsplat_matches_reference_on_cuda():  # pragma: no cover - GPU only
    p = [x.detach().float() for x in _scene(300, 0)]
    ref = rasterize(*p, torch.eye(4), K, W, H, backend="reference")
    gpu = rasterize(*[x.cuda() for x in p], torch.eye(4).cuda(), K.cuda(), W, H, backend="gsplat")
    assert (gpu.image.cpu() - ref.image).abs().mean() < 2e-3
    assert (gpu.alpha.cpu() - ref.alpha).abs().mean() < 2e-3


@pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("gsplat") is None,
                    reason="needs CUDA and gsplat")
def test_gsplat_gradients_match_the_numba_path_on_cuda():  # pragma: no cover - GPU only
    params = _scene(300, 1, dtype=torch.float32)
    _, ref = _loss_and_grads(params, "numba", bg=(0.0, 0.0, 0.0))
    cuda = [x.detach().cuda().requires_grad_() for x in params]
    out = rasterize(*cuda, torch.eye(4).cuda(), K.cuda(), W, H, background=torch.zeros(3).cuda(), backend="gsplat")
    g = torch.Generator().manual_seed(7)
    wi, wa = torch.rand(3, H, W, generator=g), torch.rand(H, W, generator=g)
    loss = (out.image * wi.cuda()).sum() + (out.alpha * wa.cuda()).sum() + 0.1 * out.depth.sum()
    loss.backward(retain_graph=True)
    g2d = out.means2d_grad()  # densification statistics reach the caller
    assert g2d is not None and g2d.shape == (300, 2) and bool((g2d.abs().sum(1) > 0).any())
    grads = torch.autograd.grad(loss, cuda)
    for name, a, b in zip(("means", "log_scales", "quats", "opacity_logits", "colors"), grads, ref):
        a = a.cpu()
        cos = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0)
        assert cos > 0.99, (name, float(cos))
        assert (a - b).norm() / b.norm() < 0.1, (name, float((a - b).norm() / b.norm()))


def test_numba_projection_matches_the_torch_definition():
    """Values and gradients in float64, with Gaussians behind the near plane, off screen, beyond the
    Jacobian's clamp and with unnormalised quaternions."""
    g = torch.Generator().manual_seed(3)
    n = 3000
    means = torch.randn(n, 3, generator=g, dtype=torch.float64) * torch.tensor([2.0, 2.0, 1.5]) + torch.tensor([0, 0, 2.0])
    log_scales = torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.5 - 2.5
    quats = torch.randn(n, 4, generator=g, dtype=torch.float64) * 3
    a = torch.tensor(0.3, dtype=torch.float64)
    w2c = torch.eye(4, dtype=torch.float64)
    w2c[:3, :3] = torch.stack([torch.stack([a.cos(), a * 0, a.sin()]), torch.tensor([0.0, 1, 0], dtype=torch.float64),
                               torch.stack([-a.sin(), a * 0, a.cos()])])
    w2c[:3, 3] = torch.tensor([0.1, -0.2, 0.3])
    Kc = torch.tensor([[60.0, 0, 31.5], [0, 55, 23.5], [0, 0, 1]], dtype=torch.float64)
    ref_in = [x.clone().requires_grad_() for x in (means, log_scales, quats)]
    fast_in = [x.clone().requires_grad_() for x in (means, log_scales, quats)]
    ref = project_gaussians(*ref_in, w2c, Kc, 64, 48, backend="torch")
    fast = project_gaussians(*fast_in, w2c, Kc, 64, 48, backend="numba")
    assert bool((ref.depths <= 0.01).any()) and bool((ref.radii == 0).any()) and bool((ref.radii > 0).any())
    for name in ("means2d", "conics", "depths"):
        torch.testing.assert_close(getattr(fast, name), getattr(ref, name), rtol=1e-10, atol=1e-9, msg=name)
    assert torch.equal(fast.radii, ref.radii)
    w = [torch.randn(n, 2, generator=g, dtype=torch.float64), torch.randn(n, 3, generator=g, dtype=torch.float64),
         torch.randn(n, generator=g, dtype=torch.float64)]

    def loss(p):
        return (p.means2d * w[0]).sum() + (p.conics * w[1]).sum() + (p.depths * w[2]).sum()

    for name, a_, b_ in zip(("means", "log_scales", "quats"), torch.autograd.grad(loss(fast), fast_in),
                            torch.autograd.grad(loss(ref), ref_in)):
        torch.testing.assert_close(a_, b_, rtol=1e-8, atol=1e-8, msg=name)
