"""Riemannian divergence (exact and Hutchinson) against closed-form Laplacians, change of variables on
manifolds (densities integrate to one), and the fixed-step samplers staying on the manifold."""
import math

import pytest
import torch
from torch import nn

from sciflow import Flow
from sciflow.likelihood import log_prob, make_probes
from sciflow.paths.geodesic import GeodesicPath
from sciflow.spaces import SO3, Hyperbolic, Sphere, Torus


def test_sphere_divergence_of_gradient_field_is_laplacian():
    # f(x) = <a, x> on S^d: grad f = P_x a and Laplacian f = -d f
    for d in (2, 4):
        sp = Sphere(d)
        x = sp.random_base(64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        a = torch.randn(d + 1, dtype=torch.float64)
        fn = lambda x_, t_: a.expand_as(x_)  # noqa: E731 - projected inside divergence()
        t = torch.zeros(64, dtype=torch.float64)
        v, div = sp.divergence(fn, x, t, method="exact")
        assert torch.allclose(div, -d * (x @ a), atol=1e-10)
        assert torch.allclose(v, sp.proj_tangent(x, a.expand_as(x)))
        probes = make_probes(x, 4000, "gaussian", torch.Generator().manual_seed(1))
        _, hdiv = sp.divergence(fn, x, t, method="hutchinson", probes=probes)
        assert (hdiv - div).abs().mean() < 0.1


def test_so3_divergence_of_gradient_field_is_laplacian():
    # f(R) = tr(A^T R): Laplacian eigenvalue l(l+1) = 2 for metric 1/2 tr(U^T V); grad f = 2 P_R(A)
    so3 = SO3()
    r = so3.random_base(32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a = torch.randn(3, 3, dtype=torch.float64)
    t = torch.zeros(32, dtype=torch.float64)
    _, div = so3.divergence(lambda x_, t_: a.expand_as(x_), r, t)
    assert torch.allclose(div, -(a * r).sum((-1, -2)), atol=1e-10)
    # left-invariant fields R hat(w) are divergence free
    w = torch.tensor([[0.0, -1.0, 2.0], [1.0, 0.0, -0.5], [-2.0, 0.5, 0.0]], dtype=torch.float64)
    _, div0 = so3.divergence(lambda x_, t_: x_ @ w, r, t)
    assert div0.abs().max() < 1e-10


def test_hyperbolic_divergence_of_gradient_field_is_laplacian():
    # f(x) = <a, x>_L on H^d: grad f = P_x a (Minkowski projection), Laplacian f = d f
    hb = Hyperbolic(3, std=0.8)
    x = hb.random_base(32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a = torch.randn(4, dtype=torch.float64)
    t = torch.zeros(32, dtype=torch.float64)
    f = (x[:, 1:] * a[1:]).sum(-1) - x[:, 0] * a[0]
    _, div = hb.divergence(lambda x_, t_: a.expand_as(x_), x, t)
    assert torch.allclose(div, 3 * f, atol=1e-9)
    probes = make_probes(x, 4000, "rademacher", torch.Generator().manual_seed(1))
    _, hdiv = hb.divergence(lambda x_, t_: a.expand_as(x_), x, t, method="hutchinson", probes=probes)
    assert ((hdiv - div).abs() / (1 + div.abs())).mean() < 0.1


class _Field(nn.Module):
    """A fixed random smooth field (ambient output, projected by the path)."""

    def __init__(self, d, scale=1.5, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(d + 1, 32), nn.Tanh(), nn.Linear(32, d)).double()
        self.scale = scale

    def forward(self, x, t):
        b = x.shape[0]
        h = torch.cat([x.reshape(b, -1), t.reshape(b, 1).to(x.dtype)], -1)
        return self.scale * self.net(h).reshape(x.shape)


class _PeriodicField(_Field):
    """Smooth on the torus: sees (cos x, sin x)."""

    def __init__(self, d, scale=1.5, seed=0):
        super().__init__(2 * d, scale, seed)
        self.d = d

    def forward(self, x, t):
        return super().forward(torch.cat([torch.cos(x), torch.sin(x)], -1), t)[:, : self.d]


class _BoundedLorentzField(_Field):
    """Tangent field on H^d with metric norm < scale (an unbounded one would blow up in finite time)."""

    def forward(self, x, t):
        v = Hyperbolic(x.shape[-1] - 1).proj_tangent(x, super().forward(x, t))
        n2 = (v[:, 1:] ** 2).sum(-1) - v[:, 0] ** 2
        return v / torch.sqrt(1 + n2.clamp_min(0)).unsqueeze(-1)


@pytest.mark.parametrize("space", [Sphere(2), SO3(), Torus(2)], ids=repr)
def test_model_density_integrates_to_one(space):
    """E_{x ~ base}[p_model(x) / p_base(x)] = 1 only if the Riemannian divergence is right."""
    d = math.prod(space.event_shape)
    field = _PeriodicField(d) if isinstance(space, Torus) else _Field(d)
    flow = Flow(field, space=space, path=GeodesicPath(space))
    n = 200 if isinstance(space, SO3) else 1000
    x = space.random_base(n, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    lp = log_prob(flow, x, steps=10, method="rk4")
    ratio = (lp - space.base_log_prob(x)).exp()
    se = ratio.std() / math.sqrt(n)
    assert abs(ratio.mean().item() - 1) < max(4 * se.item(), 0.02)
    # the density is not trivially the base: the field moves mass
    assert ratio.std() > 0.1


def test_hyperbolic_model_density_integrates_to_one_on_polar_grid():
    """Non-compact case: integrate p_model over H^2 in polar coordinates, dvol = sinh(r) dr dphi."""
    hb = Hyperbolic(2, std=0.5)
    flow = Flow(_BoundedLorentzField(3, scale=1.0), space=hb, path=GeodesicPath(hb))
    r = torch.linspace(0, 6, 61, dtype=torch.float64)
    phi = torch.linspace(0, 2 * math.pi, 49, dtype=torch.float64)[:-1]
    rr, pp = torch.meshgrid(r, phi, indexing="ij")
    x = torch.stack([torch.cosh(rr), torch.sinh(rr) * torch.cos(pp), torch.sinh(rr) * torch.sin(pp)], -1)
    lp = log_prob(flow, x.reshape(-1, 3), steps=10, method="rk4").reshape(rr.shape)
    radial = (lp.exp() * torch.sinh(rr)).mean(1) * 2 * math.pi  # periodic in phi: the mean is spectrally accurate
    total = torch.trapezoid(radial, r).item()
    assert abs(total - 1) < 0.02
    assert (lp - hb.base_log_prob(x.reshape(-1, 3)).reshape(rr.shape)).abs().max() > 0.1


def test_divergence_free_field_keeps_uniform_density_and_hutchinson_agrees():
    sp = Sphere(2)
    rot = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)

    class Rotation(nn.Module):
        def forward(self, x, t):
            return x @ rot.T * 3.0

    flow = Flow(Rotation(), space=sp, path=GeodesicPath(sp))
    x = sp.random_base(32, dtype=torch.float64)
    lp = log_prob(flow, x, steps=10, method="midpoint")
    assert torch.allclose(lp, torch.full_like(lp, -math.log(4 * math.pi)), atol=1e-10)
    flow2 = Flow(_Field(3), space=sp, path=GeodesicPath(sp))
    ex = log_prob(flow2, x, steps=10, method="midpoint")
    hu = log_prob(flow2, x, steps=10, method="midpoint", divergence="hutchinson", n_probes=32,
                  generator=torch.Generator().manual_seed(0))
    assert (ex - hu).abs().mean() < 0.15


@pytest.mark.parametrize("method,stages", [("euler", 1), ("midpoint", 2), ("heun", 2), ("rk4", 4)])
@pytest.mark.parametrize("space", [Sphere(2), SO3(), Hyperbolic(2)], ids=repr)
def test_fixed_step_samplers_stay_on_manifold_and_count_nfe(space, method, stages):
    d = math.prod(space.event_shape)
    field = _BoundedLorentzField(d, 3.0) if isinstance(space, Hyperbolic) else _Field(d, scale=3.0)
    flow = Flow(field, space=space, path=GeodesicPath(space))
    res = flow.sample(256, sampler=method, steps=15, dtype=torch.float64)
    space.check(res.x, "samples")
    assert space.on_manifold_error(res.x).max() < 1e-10
    assert res.nfe == 15 * stages
