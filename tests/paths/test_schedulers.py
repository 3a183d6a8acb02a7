"""Schedulers: closed-form derivatives vs central finite differences, boundary values, validation."""
import math

import pytest
import torch

from sciflow.paths import (
    CondOTScheduler,
    CosineScheduler,
    PolynomialScheduler,
    VPScheduler,
    build_scheduler,
)

SCHEDULERS = {
    "cond_ot": CondOTScheduler(),
    "poly2": PolynomialScheduler(2.0),
    "poly3.5": PolynomialScheduler(3.5),
    "poly0.7": PolynomialScheduler(0.7),
    "cosine": CosineScheduler(),
    "vp": VPScheduler(),
    "vp_small": VPScheduler(beta_min=0.5, beta_max=5.0),
}

# interior times, away from 1 where VP's sigma' blows up like 1/sqrt(1-t)
T_INTERIOR = torch.linspace(0.05, 0.95, 37, dtype=torch.float64)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_derivatives_match_central_differences(name):
    sch = SCHEDULERS[name]
    h = 1e-6
    out = sch(T_INTERIOR)
    plus, minus = sch(T_INTERIOR + h), sch(T_INTERIOR - h)
    fd_alpha = (plus.alpha - minus.alpha) / (2 * h)
    fd_sigma = (plus.sigma - minus.sigma) / (2 * h)
    torch.testing.assert_close(out.d_alpha, fd_alpha, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out.d_sigma, fd_sigma, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_output_shapes_and_dtype_follow_t(name):
    t = torch.rand(5, 1, dtype=torch.float64).squeeze(-1)
    out = SCHEDULERS[name](t)
    for v in (out.alpha, out.sigma, out.d_alpha, out.d_sigma):
        assert v.shape == (5,)
        assert v.dtype == torch.float64


@pytest.mark.parametrize("name", ["cond_ot", "poly2", "poly3.5", "poly0.7", "cosine"])
def test_exact_boundary_values(name):
    out = SCHEDULERS[name](torch.tensor([0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(out.alpha, torch.tensor([0.0, 1.0], dtype=torch.float64), atol=1e-15, rtol=0)
    torch.testing.assert_close(out.sigma, torch.tensor([1.0, 0.0], dtype=torch.float64), atol=1e-15, rtol=0)


def test_vp_boundary_values_and_variance_preserving():
    sch = VPScheduler(beta_min=0.1, beta_max=20.0)
    out = sch(torch.tensor([0.0, 1.0], dtype=torch.float64))
    # alpha_0 = exp(-T(1)/2), T(1) = 0.5 (beta_max - beta_min) + beta_min
    t1 = 0.5 * (20.0 - 0.1) + 0.1
    assert out.alpha[0].item() == pytest.approx(math.exp(-0.5 * t1), rel=1e-12)
    assert out.alpha[0].item() < 0.01  # exp(-5.025) ~ 0.0066 for the default betas
    assert out.sigma[0].item() == pytest.approx(math.sqrt(1 - math.exp(-t1)), rel=1e-12)
    assert out.sigma[0].item() > 0.9999
    assert out.alpha[1].item() == pytest.approx(1.0, abs=1e-15)
    assert out.sigma[1].item() == pytest.approx(0.0, abs=1e-15)
    # variance preserving: alpha^2 + sigma^2 = 1 everywhere
    mid = sch(T_INTERIOR)
    torch.testing.assert_close(mid.alpha**2 + mid.sigma**2, torch.ones_like(T_INTERIOR), rtol=0, atol=1e-12)


def test_cosine_is_variance_preserving():
    out = CosineScheduler()(T_INTERIOR)
    torch.testing.assert_close(out.alpha**2 + out.sigma**2, torch.ones_like(T_INTERIOR), rtol=0, atol=1e-14)


def test_polynomial_n1_equals_cond_ot():
    a, b = PolynomialScheduler(1.0)(T_INTERIOR), CondOTScheduler()(T_INTERIOR)
    for f in ("alpha", "sigma", "d_alpha", "d_sigma"):
        torch.testing.assert_close(getattr(a, f), getattr(b, f))


def test_build_scheduler_specs():
    assert isinstance(build_scheduler("cosine"), CosineScheduler)
    p = build_scheduler({"name": "polynomial", "n": 3})
    assert isinstance(p, PolynomialScheduler) and p.n == 3.0
    inst = VPScheduler()
    assert build_scheduler(inst) is inst
    with pytest.raises(ValueError, match="unknown scheduler"):
        build_scheduler("nope")
    with pytest.raises(TypeError, match="scheduler must be"):
        build_scheduler(3)


@pytest.mark.parametrize("ctor", [lambda: PolynomialScheduler(0.0), lambda: VPScheduler(5.0, 1.0),
                                  lambda: VPScheduler(-1.0, 2.0)])
def test_invalid_parameters(ctor):
    with pytest.raises(ValueError):
        ctor()
