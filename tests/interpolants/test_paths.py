"""Stochastic interpolant paths: schedules, marginals, objectives against closed-form oracles."""
import math

import pytest
import torch

from si_oracles import GaussianMixture, OracleModel, interpolant_fields, path_coefficients
from sciflow.paths.interpolants import (
    AntitheticModel,
    CustomGamma,
    CustomInterpolant,
    MultiFieldModel,
    StochasticInterpolantPath,
    build_gamma,
    build_interpolant,
    interpolant_flow,
)

INTERPOLANTS = ["linear", "trigonometric", "encoder_decoder", "one_sided", {"name": "one_sided", "schedule": "trigonometric"},
                "mirror"]
GAMMAS = ["brownian", {"name": "scaled", "scale": 0.3}, "sin2", "zero"]


@pytest.mark.parametrize("spec", INTERPOLANTS)
def test_interpolant_derivatives_match_finite_differences(spec):
    it = build_interpolant(spec)
    t = torch.tensor([0.1, 0.3, 0.45, 0.55, 0.7, 0.9], dtype=torch.float64)
    h = 1e-6
    a, b, da, db = it.coefficients(t)
    ap, bp, _, _ = it.coefficients(t + h)
    am, bm, _, _ = it.coefficients(t - h)
    assert torch.allclose(da, (ap - am) / (2 * h), atol=1e-6)
    assert torch.allclose(db, (bp - bm) / (2 * h), atol=1e-6)
    ends = it.coefficients(torch.tensor([0.0, 1.0], dtype=torch.float64))
    if not isinstance(it, type(build_interpolant("mirror"))):
        assert torch.allclose(ends[0], torch.tensor([1.0, 0.0], dtype=torch.float64), atol=1e-12)
        assert torch.allclose(ends[1], torch.tensor([0.0, 1.0], dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("spec", GAMMAS)
def test_gamma_derivatives_and_boundaries(spec):
    g = build_gamma(spec)
    t = torch.tensor([0.05, 0.2, 0.5, 0.8, 0.95], dtype=torch.float64)
    h = 1e-6
    val, d = g(t)
    assert torch.allclose(d, (g(t + h)[0] - g(t - h)[0]) / (2 * h), atol=1e-5)
    assert torch.allclose(g.gamma_dot_gamma(t), val * d, atol=1e-12)
    assert torch.allclose(g(torch.tensor([0.0, 1.0], dtype=torch.float64))[0], torch.zeros(2, dtype=torch.float64),
                          atol=1e-12)


def test_custom_schedules_use_autograd_derivatives():
    it = CustomInterpolant(a=lambda t: 1 - t ** 2, b=lambda t: t ** 2)
    t = torch.tensor([0.25, 0.5], dtype=torch.float64)
    _, _, da, db = it.coefficients(t)
    assert torch.allclose(da, -2 * t) and torch.allclose(db, 2 * t)
    g = build_gamma(lambda t: t * (1 - t))
    assert isinstance(g, CustomGamma)
    assert torch.allclose(g(t)[1], 1 - 2 * t)


def test_brownian_gamma_derivative_is_singular_at_end_points():
    g = build_gamma("brownian")
    assert g.singular_derivative
    assert torch.isinf(g(torch.tensor([0.0]))[1]).all()
    assert torch.allclose(g.gamma_dot_gamma(torch.tensor([0.0, 1.0])), torch.tensor([0.5, -0.5]))


def test_path_sample_marginal_moments():
    """x_t of a linear + Brownian interpolant between Gaussians has mean a m0 + b m1, cov a^2 C0 + b^2 C1 + gamma^2 I."""
    torch.manual_seed(0)
    p0 = GaussianMixture.gaussian([-1.0, 2.0], [[0.5, 0.1], [0.1, 0.3]])
    p1 = GaussianMixture.gaussian([3.0, 0.0], [[1.0, -0.4], [-0.4, 0.7]])
    path = StochasticInterpolantPath("trigonometric", {"name": "brownian", "scale": 0.8})
    n = 40000
    t = torch.full((n,), 0.3, dtype=torch.float64)
    s = path.sample(p0.sample(n), p1.sample(n), t)
    c = path.coefficients(t[:1])
    a, b, g = c["a"].item(), c["b"].item(), c["gamma"].item()
    assert torch.allclose(s.x_t.mean(0), a * p0.mean() + b * p1.mean(), atol=0.03)
    cov = a * a * p0.cov() + b * b * p1.cov() + g * g * torch.eye(2, dtype=torch.float64)
    assert torch.allclose(torch.cov(s.x_t.T), cov, atol=0.03)
    # the conditional target is the time derivative of x_t along the same noise
    h = 1e-6
    s2 = path.sample(s.x0, s.x1, t + h)
    c2 = path.coefficients(t[:1] + h)
    x_plus = c2["a"] * s.x0 + c2["b"] * s.x1 + c2["gamma"] * s.extra["z"]
    assert torch.allclose((x_plus - s.x_t) / h, s.dx_t, atol=1e-4)
    assert s2.x_t.shape == s.x_t.shape


P0 = GaussianMixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], [torch.eye(2) * 0.3, torch.eye(2) * 0.5])
P1 = GaussianMixture.gaussian([1.0, 3.0], [[1.0, 0.5], [0.5, 0.8]])


@pytest.mark.parametrize("prediction", ["drift", "score", "denoiser", "velocity_denoiser", "drift_denoiser"])
@pytest.mark.parametrize("antithetic", [False, True])
def test_objective_excess_equals_squared_perturbation(prediction, antithetic):
    """E[loss(exact + delta)] - E[loss(exact)] = |delta|^2 / d for a constant delta: the exact fields minimise the
    objective, which checks the targets (dI + gamma' z, -z / gamma, z) and the oracle fields together."""
    gamma = "sin2" if prediction == "velocity_denoiser" else "brownian"
    path = StochasticInterpolantPath("linear", gamma, antithetic=antithetic)
    torch.manual_seed(1)
    n = 60000
    x0, x1 = P0.sample(n), P1.sample(n)
    t = 0.1 + 0.8 * torch.rand(n, dtype=torch.float64)
    sample = path.sample(x0, x1, t)
    oracle = OracleModel(path, P0, P1, prediction)
    model = AntitheticModel(oracle) if antithetic else oracle
    out = model(sample.x_t, t)
    delta = torch.tensor([0.3, -0.2], dtype=torch.float64)
    base = path.loss(out, sample, prediction).mean()
    if isinstance(out, dict):
        pert = {k: v + delta for k, v in out.items()}
        n_fields = len(out)
    else:
        pert, n_fields = out + delta, 1
    excess = path.loss(pert, sample, prediction).mean() - base
    expected = n_fields * delta.pow(2).mean()
    assert abs(excess.item() - expected.item()) < 0.1 * expected.item()


def test_concatenated_output_equals_mapping():
    path = StochasticInterpolantPath("linear", "brownian")
    t = torch.full((5,), 0.4, dtype=torch.float64)
    x = torch.randn(5, 2, dtype=torch.float64)
    as_dict = OracleModel(path, P0, P1, "drift_score")(x, t)
    as_cat = OracleModel(path, P0, P1, "drift_score", concat=True)(x, t)
    b1, s1 = path.drift_and_score(as_dict, x, t, "drift_score")
    b2, s2 = path.drift_and_score(as_cat, x, t, "drift_score")
    assert torch.equal(b1, b2) and torch.equal(s1, s2)
    with pytest.raises(ValueError, match="concatenated along dim 1"):
        path.drift_and_score(torch.zeros(5, 3, dtype=torch.float64), x, t, "drift_score")


@pytest.mark.parametrize("prediction", ["drift_score", "drift_denoiser"])
def test_drift_and_score_equal_oracle(prediction):
    path = StochasticInterpolantPath("linear", "brownian")
    t = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    x = torch.randn(7, 2, dtype=torch.float64) * 2
    b, s = path.drift_and_score(OracleModel(path, P0, P1, prediction)(x, t), x, t, prediction)
    f = interpolant_fields(path_coefficients(path, t), P0, P1, x)
    assert torch.allclose(b, f["drift"]) and torch.allclose(s, f["score"])


def test_score_is_gradient_of_oracle_log_density():
    path = StochasticInterpolantPath("encoder_decoder", "sin2")
    t = torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64)
    x = torch.randn(3, 2, dtype=torch.float64).requires_grad_(True)
    f = interpolant_fields(path_coefficients(path, t), P0, P1, x)
    (grad,) = torch.autograd.grad(f["log_prob"].sum(), x)
    assert torch.allclose(grad, f["score"], atol=1e-10)


def test_one_sided_score_from_denoiser():
    """One-sided (Gaussian x0, gamma = 0): score = -E[x0 | x_t] / a(t)."""
    path = StochasticInterpolantPath("one_sided", None)
    std = GaussianMixture.standard(2)
    t = torch.tensor([0.2, 0.6], dtype=torch.float64)
    x = torch.randn(2, 2, dtype=torch.float64)
    _, s = path.drift_and_score(OracleModel(path, std, P1, "velocity_denoiser")(x, t), x, t, "velocity_denoiser")
    f = interpolant_fields(path_coefficients(path, t), std, P1, x)
    assert torch.allclose(s, f["score"])


def test_errors_are_clear():
    with pytest.raises(ValueError, match="one-sided"):
        StochasticInterpolantPath("one_sided", "brownian")
    with pytest.raises(ValueError, match="velocity_denoiser"):
        StochasticInterpolantPath("linear", "brownian").check_prediction("velocity_denoiser")
    with pytest.raises(ValueError, match="needs noise"):
        StochasticInterpolantPath("linear", "zero").check_prediction("drift_score")
    with pytest.raises(ValueError, match="scale must be > 0"):
        build_gamma({"name": "brownian", "scale": 0.0})
    with pytest.raises(ValueError, match="unknown interpolant"):
        build_interpolant("cubic")
    path = StochasticInterpolantPath("linear", "brownian")
    x = torch.randn(4, 2)
    s = path.sample(x, x, torch.tensor([0.0, 0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="t_eps"):
        path.loss(torch.zeros(4, 2), s, "drift")
    with pytest.raises(ValueError, match="score_flow"):
        path.drift_and_score(torch.zeros(4, 2), x, torch.full((4,), 0.5), "drift")
    anti = StochasticInterpolantPath("linear", "brownian", antithetic=True)
    s = anti.sample(x, x, torch.full((4,), 0.5))
    with pytest.raises(ValueError, match="AntitheticModel"):
        anti.loss(torch.zeros(4, 2), s, "drift")


def test_interpolant_flow_wraps_and_sets_t_eps():
    import sciflow

    path = StochasticInterpolantPath("linear", "brownian", antithetic=True)
    net = MultiFieldModel(drift=sciflow.nn.MLP(2, hidden=16, depth=1), score=sciflow.nn.MLP(2, hidden=16, depth=1))
    flow = interpolant_flow(net, path, "drift_score", space=sciflow.spaces.Euclidean(2))
    assert isinstance(flow.model, AntitheticModel) and flow.t_eps == 1e-3
    x1 = torch.randn(16, 2)
    loss = flow.loss(x1)
    loss.backward()
    assert math.isfinite(loss.item())
    v = flow.velocity(torch.randn(3, 2), torch.zeros(3))  # plain batch at sampling time, t = 0 is fine for "drift"
    assert v.shape == (3, 2) and torch.isfinite(v).all()
