"""Geometry of the Riemannian spaces: exp/log round trips, geodesic endpoints, metric consistency,
safe behaviour at small angles and cut points, base distributions and their densities."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sciflow.spaces import IGSO3, SE3, SO3, Hyperbolic, Sphere, Torus
from sciflow.spaces.so3 import angle_so3, exp_so3, hat, log_so3

SPACES = {
    "sphere2": lambda: Sphere(2),
    "sphere5": lambda: Sphere(5),
    "torus3": lambda: Torus(3),
    "so3": lambda: SO3(),
    "so3_igso3": lambda: SO3("igso3", 0.4),
    "se3": lambda: SE3(),
    "hyperbolic2": lambda: Hyperbolic(2, std=0.7),
    "hyperbolic4": lambda: Hyperbolic(4, std=0.7),
}


def _pair(space, n, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return space.random_base(n, dtype=dtype, generator=g), space.random_base(n, dtype=dtype, generator=g)


@pytest.mark.parametrize("name", sorted(SPACES))
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_exp_log_round_trip_and_geodesic_endpoints(name, seed):
    space = SPACES[name]()
    x, y = _pair(space, 64, seed)
    space.check(x, "x")
    v = space.log(x, y)
    # log is tangent and exp(log) returns to y
    assert torch.allclose(space.proj_tangent(x, v), v, atol=1e-9)
    assert space.dist(space.exp(x, v), y).max() < 1e-7
    # |log_x y|_g = d(x, y), symmetry of the distance
    assert torch.allclose(space.inner(x, v, v).sqrt(), space.dist(x, y), atol=1e-8)
    assert torch.allclose(space.dist(x, y), space.dist(y, x), atol=1e-8)
    # geodesic endpoints and constant speed
    s0, s1 = torch.zeros(64, dtype=x.dtype), torch.ones(64, dtype=x.dtype)
    g0, d0 = space.geodesic(x, v, s0)
    g1, d1 = space.geodesic(x, v, s1)
    assert space.dist(g0, x).max() < 1e-7 and space.dist(g1, y).max() < 1e-7
    assert torch.allclose(space.inner(g1, d1, d1), space.inner(x, v, v), atol=1e-7)
    assert torch.allclose(d0, v, atol=1e-8)
    # the midpoint is equidistant
    gm, _ = space.geodesic(x, v, 0.5 * s1)
    assert torch.allclose(space.dist(x, gm), space.dist(gm, y), atol=1e-7)


@pytest.mark.parametrize("name", sorted(SPACES))
def test_float32_round_trip_and_samples_on_manifold(name):
    space = SPACES[name]()
    x, y = _pair(space, 512, 0, torch.float32)
    assert x.dtype == torch.float32
    space.check(x)
    z = space.exp(x, space.log(x, y))
    space.check(z, "exp(log)")
    assert space.dist(z, y).max() < 5e-3  # Lorentz model loses digits far from the origin in float32


@pytest.mark.parametrize("name", sorted(SPACES))
def test_geodesic_velocity_matches_finite_differences(name):
    space = SPACES[name]()
    x, y = _pair(space, 32, 1)
    v = space.log(x, y)
    s = torch.rand(32, dtype=x.dtype, generator=torch.Generator().manual_seed(2)) * 0.9 + 0.05
    h = 1e-6
    _, ds = space.geodesic(x, v, s)
    gp, _ = space.geodesic(x, v, s + h)
    gm, _ = space.geodesic(x, v, s - h)
    fd = (gp - gm) / (2 * h)
    if isinstance(space, Torus):
        fd = (torch.remainder(gp - gm + math.pi, 2 * math.pi) - math.pi) / (2 * h)
    assert torch.allclose(ds, fd, atol=1e-6)


def test_sphere_small_angles_and_antipodes():
    sp = Sphere(2)
    x = sp.random_base(16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    w = sp.proj_tangent(x, torch.randn_like(x))
    w = w / w.norm(dim=-1, keepdim=True)
    for eps in [1e-12, 1e-8, 1e-4]:
        y = sp.exp(x, eps * w)
        assert torch.allclose(sp.log(x, y), eps * w, rtol=1e-6, atol=1e-15)  # y is stored to ~1e-16
    # exact antipode: finite, length pi, tangent
    v = sp.log(x, -x)
    assert torch.isfinite(v).all()
    assert torch.allclose(v.norm(dim=-1), torch.full((16,), math.pi, dtype=torch.float64))
    assert (x * v).sum(-1).abs().max() < 1e-12
    assert sp.dist(sp.exp(x, v), -x).max() < 1e-7
    # nearly antipodal: still an accurate geodesic
    y = sp.exp(x, (math.pi - 1e-7) * w)
    assert torch.allclose(sp.log(x, y), (math.pi - 1e-7) * w, atol=1e-6)
    # gradients are finite at y = x and at the antipode
    xg = x.clone().requires_grad_(True)
    (sp.log(xg, x.clone()).sum() + sp.log(xg, -x).sum() + sp.dist(xg, x).sum()).backward()
    assert torch.isfinite(xg.grad).all()


def test_so3_rodrigues_small_and_near_pi():
    g = torch.Generator().manual_seed(0)
    axis = torch.randn(64, 3, dtype=torch.float64, generator=g)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    for theta in [0.0, 1e-10, 1e-5, 0.3, 2.0, math.pi - 1e-3, math.pi - 1e-7]:
        w = theta * axis
        r = exp_so3(w)
        assert torch.allclose(r.transpose(-1, -2) @ r, torch.eye(3, dtype=torch.float64).expand(64, 3, 3), atol=1e-12)
        assert torch.allclose(torch.linalg.matrix_exp(hat(w)), r, atol=1e-12)
        assert torch.allclose(log_so3(r), w, atol=1e-6 if theta > 3 else 1e-10)
        assert torch.allclose(angle_so3(r), torch.full((64,), theta, dtype=torch.float64), atol=1e-7)
    # exactly pi: either sign is a valid log; exp(log) must give back R
    r = exp_so3(math.pi * axis)
    assert torch.allclose(exp_so3(log_so3(r)), r, atol=1e-10)
    wg = (0.5 * axis).clone().requires_grad_(True)
    log_so3(exp_so3(wg)).sum().backward()
    assert torch.allclose(wg.grad, torch.ones_like(wg), atol=1e-8)


def test_so3_proj_is_nearest_rotation():
    r = SO3().random_base(8, dtype=torch.float64)
    noisy = r + 1e-3 * torch.randn_like(r)
    p = SO3().proj(noisy)
    assert SO3().on_manifold_error(p).max() < 1e-12
    assert SO3().dist(p, r).max() < 1e-2
    with pytest.raises(ValueError, match="not on SO3"):
        SO3().check(noisy + 0.1, "rot")


def test_hyperbolic_far_and_near():
    hb = Hyperbolic(3)
    x, y = _pair(hb, 32, 3)
    d = hb.dist(x, y)
    assert torch.allclose(d, torch.acosh((-(x * y)[:, 1:].sum(-1) + x[:, 0] * y[:, 0]).clamp_min(1)), atol=1e-6)
    v = hb.proj_tangent(x, 1e-9 * torch.randn_like(x))
    assert torch.allclose(hb.log(x, hb.exp(x, v)), v, rtol=1e-5, atol=1e-14)
    with pytest.raises(ValueError, match="not on Hyperbolic"):
        hb.check(-x)


def test_sphere_check_errors():
    with pytest.raises(ValueError, match="not on Sphere"):
        Sphere(2).check(torch.ones(4, 3))
    with pytest.raises(ValueError, match="shape"):
        Sphere(2).check(torch.ones(4, 4))
    with pytest.raises(ValueError, match="NaN"):
        Sphere(2).check(torch.full((2, 3), float("nan")))


# -- base distributions ----------------------------------------------------------------------------

@pytest.mark.parametrize("space,log_vol", [
    (Sphere(2), math.log(4 * math.pi)),
    (Sphere(3), math.log(2 * math.pi ** 2)),
    (Torus(2), 2 * math.log(2 * math.pi)),
    (SO3(), math.log(8 * math.pi ** 2)),
])
def test_uniform_base_log_prob_is_minus_log_volume(space, log_vol):
    x = space.random_base(10, dtype=torch.float64)
    assert torch.allclose(space.base_log_prob(x), torch.full((10,), -log_vol, dtype=torch.float64))


def test_uniform_sphere_and_so3_samples_are_uniform():
    g = torch.Generator().manual_seed(0)
    x = Sphere(2).random_base(20000, generator=g, dtype=torch.float64)
    assert x.mean(0).abs().max() < 0.03  # E[x] = 0
    assert torch.allclose(x.T @ x / 20000, torch.eye(3, dtype=torch.float64) / 3, atol=0.01)
    r = SO3().random_base(20000, generator=g, dtype=torch.float64)
    # Haar: the rotation angle has density (1 - cos w)/pi; E[w] = pi/2 + 2/pi
    assert abs(angle_so3(r).mean().item() - (math.pi / 2 + 2 / math.pi)) < 0.02


@pytest.mark.parametrize("sigma", [0.2, 0.5, 1.5])
def test_igso3_density_normalised_and_sampler_matches(sigma):
    ig = IGSO3(sigma)
    om = torch.linspace(0, math.pi, 20001, dtype=torch.float64)
    pdf = ig.density(om) * (1 - torch.cos(om)) / math.pi
    assert abs(torch.trapezoid(pdf, om).item() - 1) < 1e-6
    # log_prob w.r.t. volume 8 pi^2 integrates to one: E_uniform[exp(log_prob)] * 8 pi^2 = 1
    r = SO3().random_base(200000, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert abs((ig.log_prob(r).exp().mean() * 8 * math.pi ** 2).item() - 1) < 0.03
    s = ig.sample(20000, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    mean_angle = torch.trapezoid(pdf * om, om).item()
    assert abs(angle_so3(s).mean().item() - mean_angle) < 0.02


def test_igso3_small_sigma_is_gaussian_rotation_vector():
    ig = IGSO3(0.05)
    s = ig.sample(20000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    w = log_so3(s)
    assert torch.allclose(w.std(0), torch.full((3,), 0.05, dtype=torch.float64), rtol=0.05)
    # log-density in the far tail is finite (asymptotic branch)
    assert torch.isfinite(ig.log_density(torch.tensor([0.0, 0.5, 3.0], dtype=torch.float64))).all()


def test_hyperbolic_wrapped_normal_density_integrates_to_one():
    # H^2 in polar coordinates: dvol = sinh(r) dr dphi; the density depends on r only
    hb = Hyperbolic(2, std=0.6)
    r = torch.linspace(1e-6, 8, 20001, dtype=torch.float64)
    x = torch.stack([torch.cosh(r), torch.sinh(r), torch.zeros_like(r)], -1)
    lp = hb.base_log_prob(x)
    total = 2 * math.pi * torch.trapezoid(lp.exp() * torch.sinh(r), r)
    assert abs(total.item() - 1) < 1e-6
    s = hb.random_base(20000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    hb.check(s)
    # the distance to the origin is the norm of a 2-D Gaussian: E[r] = std sqrt(pi/2)
    dist = hb.dist(hb.origin(20000, dtype=torch.float64), s)
    assert abs(dist.mean().item() - 0.6 * math.sqrt(math.pi / 2)) < 0.01


def test_se3_layout_and_density():
    se = SE3(trans_std=2.0)
    x = se.random_base(5000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5000, 3, 4)
    r, t = se.split(x)
    assert torch.allclose(se.join(r, t), x)
    assert abs(t.std().item() - 2.0) < 0.05
    lp = se.base_log_prob(x)
    expected = -math.log(8 * math.pi ** 2) - 0.5 * (t / 2).pow(2).sum(-1) - 3 * math.log(2 * math.sqrt(2 * math.pi))
    assert torch.allclose(lp, expected)


def test_device_and_dtype_follow_inputs():
    for space in (Sphere(2), Torus(2), SO3(), SE3(), Hyperbolic(2)):
        x = space.random_base(4, dtype=torch.float32)
        assert x.dtype == torch.float32 and space.base_log_prob(x).dtype == torch.float32
        x64 = space.random_base(4, dtype=torch.float64)
        assert space.log(x64, x64).dtype == torch.float64
