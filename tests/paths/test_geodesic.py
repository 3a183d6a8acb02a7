"""Geodesic conditional paths: endpoints, targets against finite differences in t (with schedulers),
metric loss, projection of network outputs, and the Euclidean special case."""
import math

import pytest
import torch

from sciflow.paths import AffinePath
from sciflow.paths.geodesic import GeodesicPath
from sciflow.registry import build
from sciflow.spaces import SE3, SO3, Euclidean, Hyperbolic, Sphere, Torus

SPACES = [Sphere(2), Sphere(4), Torus(2), SO3(), SE3(), Hyperbolic(2, std=0.7)]


def _data(space, n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = space.random_base(n, dtype=torch.float64, generator=g)
    x1 = space.random_base(n, dtype=torch.float64, generator=g)
    t = torch.rand(n, dtype=torch.float64, generator=g) * 0.9 + 0.05
    return x0, x1, t


def _fd(space, a, b, h):
    if isinstance(space, Torus):
        return (torch.remainder(a - b + math.pi, 2 * math.pi) - math.pi) / h
    return (a - b) / h


@pytest.mark.parametrize("space", SPACES, ids=repr)
@pytest.mark.parametrize("scheduler", ["cond_ot", "cosine", {"name": "polynomial", "n": 2.0}])
def test_target_is_time_derivative_of_path(space, scheduler):
    path = GeodesicPath(space, scheduler=scheduler)
    x0, x1, t = _data(space)
    s = path.sample(x0, x1, t)
    h = 1e-6
    fd = _fd(space, path.sample(x0, x1, t + h).x_t, path.sample(x0, x1, t - h).x_t, 2 * h)
    assert torch.allclose(s.dx_t, fd, atol=1e-6)
    assert torch.allclose(space.proj_tangent(s.x_t, s.dx_t), s.dx_t, atol=1e-10)
    space.check(s.x_t, "x_t")


@pytest.mark.parametrize("space", SPACES, ids=repr)
def test_endpoints_and_constant_speed(space):
    path = GeodesicPath(space)
    x0, x1, _ = _data(space)
    n = x0.shape[0]
    s0 = path.sample(x0, x1, torch.zeros(n, dtype=torch.float64))
    s1 = path.sample(x0, x1, torch.ones(n, dtype=torch.float64))
    assert space.dist(s0.x_t, x0).max() < 1e-7 and space.dist(s1.x_t, x1).max() < 1e-7
    # cond-OT: |u_t| = d(x0, x1) at every t, also at t = 1 (closed-form geodesic velocity)
    for s in (s0, s1, path.sample(x0, x1, torch.full((n,), 0.3, dtype=torch.float64))):
        assert torch.allclose(space.inner(s.x_t, s.dx_t, s.dx_t).sqrt(), space.dist(x0, x1), atol=1e-7)


def test_fallback_formula_without_closed_form_matches_closed_form():
    class NoGeodesic:
        """Sphere without the closed-form geodesic, exercising u_t = kappa'/(1-kappa) log_{x_t}(x1)."""

        def __init__(self):
            self.s = Sphere(2)

        def __getattr__(self, k):
            if k == "geodesic":
                raise AttributeError(k)
            return getattr(self.s, k)

    x0, x1, t = _data(Sphere(2))
    a = GeodesicPath(Sphere(2), "cosine").sample(x0, x1, t)
    b = GeodesicPath(NoGeodesic(), "cosine").sample(x0, x1, t)
    assert torch.allclose(a.x_t, b.x_t, atol=1e-12) and torch.allclose(a.dx_t, b.dx_t, atol=1e-9)


def test_euclidean_reduces_to_affine_cond_ot():
    sp = Euclidean(3)
    x0, x1, t = _data(sp)
    g = GeodesicPath(sp).sample(x0, x1, t)
    a = AffinePath("cond_ot").sample(x0, x1, t)
    assert torch.allclose(g.x_t, a.x_t) and torch.allclose(g.dx_t, a.dx_t)


def test_loss_in_metric_and_projection_of_outputs():
    so3 = SO3()
    path = GeodesicPath(so3)
    x0, x1, t = _data(so3)
    s = path.sample(x0, x1, t)
    # adding a normal component to the exact target costs nothing: outputs are projected
    normal = s.x_t @ torch.diag_embed(torch.randn(32, 3, dtype=torch.float64))  # R * symmetric = normal
    assert path.loss(s.dx_t + normal, s).abs().max() < 1e-20
    # the loss is the squared metric norm (1/2 Frobenius on SO(3))
    w = so3.proj_tangent(s.x_t, torch.randn_like(s.x_t))
    assert torch.allclose(path.loss(s.dx_t + w, s), 0.5 * w.pow(2).sum((-1, -2)))
    assert torch.allclose(path.velocity(s.dx_t + normal, s.x_t, t), s.dx_t, atol=1e-12)
    with pytest.raises(ValueError, match="prediction 'x1'"):
        path.loss(s.dx_t, s, "x1")


def test_registry_and_binding():
    p = build("path", "geodesic", space={"name": "sphere", "dim": 2}, scheduler="cosine")
    assert isinstance(p.space, Sphere)
    unbound = build("path", "geodesic")
    with pytest.raises(ValueError, match="no space"):
        unbound.sample(*_data(Sphere(2)))
    assert unbound.bind(Sphere(2)).space is not None
    with pytest.raises(ValueError, match="bound to"):
        p.bind(Torus(2))


def test_product_space_and_simplex_use_the_generic_geodesic():
    """ProductSpace (mapping states) and Simplex have no closed-form ``geodesic``: the fallback
    u_t = kappa'/(1 - kappa) log_{x_t}(x1) must agree with the per-component closed forms."""
    from sciflow.spaces import ProductSpace, Simplex

    prod = ProductSpace({"pos": Sphere(2), "rot": SO3()})
    g = torch.Generator().manual_seed(0)
    x0 = prod.random_base(16, dtype=torch.float64, generator=g)
    x1 = prod.random_base(16, dtype=torch.float64, generator=g)
    t = torch.rand(16, dtype=torch.float64, generator=g) * 0.9
    s = GeodesicPath(prod, "cosine").sample(x0, x1, t)
    for k, sp in (("pos", Sphere(2)), ("rot", SO3())):
        ref = GeodesicPath(sp, "cosine").sample(x0[k], x1[k], t)
        assert torch.allclose(s.x_t[k], ref.x_t, atol=1e-10) and torch.allclose(s.dx_t[k], ref.dx_t, atol=1e-8)
    loss = GeodesicPath(prod).loss(s.dx_t, s)
    assert loss.shape == (16,) and loss.abs().max() < 1e-20

    simplex = Simplex(4)
    y0 = simplex.random_base(16, dtype=torch.float64, generator=g)
    y1 = simplex.random_base(16, dtype=torch.float64, generator=g)
    ss = GeodesicPath(simplex).sample(y0, y1, t)
    assert torch.allclose(ss.x_t, y0 + t[:, None] * (y1 - y0)) and torch.allclose(ss.dx_t, y1 - y0)
