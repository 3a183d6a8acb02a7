"""Dirichlet / linear simplex FM: path moments, the incomplete-beta coefficient, simplex-preserving sampling."""
import math

import pytest
import torch

from sciflow import Flow
from sciflow.paths.dirichlet import CoefficientTable, DirichletPath, LinearSimplexPath, dirichlet_flow_coefficient
from sciflow.spaces import Simplex


def test_dirichlet_path_mean():
    torch.manual_seed(0)
    k, n = 5, 40000
    path = DirichletPath(k, alpha_max=8.0, coefficient="quadrature")
    x1 = torch.full((n,), 3)
    t = torch.full((n,), 0.5)
    xt = path.sample(Simplex(k).random_base(n), x1, t).x_t
    a = 1 + 8.0 * 0.5
    expect = torch.full((k,), 1.0 / (k + a - 1))
    expect[3] = a / (k + a - 1)
    assert torch.allclose(xt.mean(0), expect, atol=0.005)
    assert torch.allclose(xt.sum(-1), torch.ones(n), atol=1e-5)


def test_coefficient_matches_incomplete_beta_derivative():
    """C = -alpha' dI_x(a, K-1)/da B(a, K-1) / (x^(a-1) (1-x)^(K-1)) against scipy finite differences."""
    sp = pytest.importorskip("scipy.special")
    for k in (3, 6):
        b = k - 1
        for a in (1.5, 4.0, 9.0):
            for x in (0.05, 0.2, 0.5, 0.8):
                h = 1e-6
                di = (sp.betainc(a + h, b, x) - sp.betainc(a - h, b, x)) / (2 * h)
                ref = -di * sp.beta(a, b) / (x ** (a - 1) * (1 - x) ** b)
                c = dirichlet_flow_coefficient(torch.tensor([x], dtype=torch.float64),
                                               torch.tensor(a, dtype=torch.float64), k, nodes=128)
                assert abs(float(c) - ref) <= 1e-5 * abs(ref) + 1e-8, (k, a, x, float(c), ref)


def test_coefficient_finite_on_closed_simplex_and_table():
    x = torch.tensor([0.0, 1e-30, 0.3, 1.0], dtype=torch.float64)
    for a in (1.0, 2.0):
        c = dirichlet_flow_coefficient(x, torch.tensor(a, dtype=torch.float64), 4)
        assert torch.isfinite(c).all() and (c >= -1e-6).all()  # C >= 0 up to quadrature error (C(0, 1) = 0)
    tab = CoefficientTable(6, alpha_max=8.0, n_alpha=33, n_x=513, nodes=48)
    torch.manual_seed(0)
    xs = torch.distributions.Dirichlet(torch.ones(6)).sample((200,)).double()
    al = 1 + 8 * torch.rand(200, 1, dtype=torch.float64)
    ref = dirichlet_flow_coefficient(xs, al, 6, nodes=128)
    assert ((tab(xs, al) - ref).abs() <= 2e-3 * ref.abs() + 1e-6).all()


def _prior_flow(path, prior, k):
    class PosteriorOracle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

        def forward(self, x, t, cond=None):
            if isinstance(path, DirichletPath):
                return torch.log(path.posterior_probs(x, t, prior))
            inside = x >= t.view(-1, 1) - 1e-12  # linear path: x_t,i >= t iff x1 = e_i is possible
            return torch.where(inside, torch.log(prior), torch.full_like(x, -1e30))

    return Flow(PosteriorOracle(), space=Simplex(k), path=path, prediction="logits")


@pytest.mark.parametrize("kind", ["dirichlet", "linear"])
def test_sampling_with_exact_posterior_reproduces_target_and_stays_on_simplex(kind):
    torch.manual_seed(1)
    k = 4
    prior = torch.tensor([0.5, 0.1, 0.15, 0.25], dtype=torch.float64)
    path = DirichletPath(k, table_size=(33, 769)) if kind == "dirichlet" else LinearSimplexPath(k)
    flow = _prior_flow(path, prior, k)
    steps = 40 if kind == "dirichlet" else 200  # linear FM's field is discontinuous: Euler bias is O(h)
    res = flow.sample(3000, sampler="simplex", steps=steps, return_trajectory=True, dtype=torch.float64)
    traj = res.trajectory
    assert (traj >= 0).all() and torch.allclose(traj.sum(-1), torch.ones_like(traj.sum(-1)), atol=1e-9)
    freq = torch.bincount(res.x.argmax(-1), minlength=k).double() / 3000
    assert 0.5 * float((freq - prior).abs().sum()) < 0.03, freq


def test_dirichlet_velocity_is_tangent_and_euler_steps_stay_inside():
    torch.manual_seed(2)
    k = 5
    path = DirichletPath(k, coefficient="quadrature")
    x = Simplex(k).random_base(256, dtype=torch.float64)
    t = torch.rand(256, dtype=torch.float64) * 0.98
    p = torch.softmax(torch.randn(256, k, dtype=torch.float64), -1)
    v = path.velocity_from_probs(p, x, t)
    assert torch.allclose(v.sum(-1), torch.zeros(256, dtype=torch.float64), atol=1e-12)
    # v = S (m - x) with m on the simplex: x + h v stays on the simplex whenever h * S <= 1
    c = path.coefficient(x, t)
    h = 1.0 / (p * c).sum(-1, keepdim=True)
    y = x + h * v
    assert (y >= -1e-12).all()


def test_simplex_space_projection_and_errors():
    from sciflow.spaces.simplex import project_to_simplex

    y = project_to_simplex(torch.tensor([[0.5, 0.8, -0.2], [0.2, 0.3, 0.5]]))
    assert torch.allclose(y, torch.tensor([[0.35, 0.65, 0.0], [0.2, 0.3, 0.5]]), atol=1e-6)
    s = Simplex(3)
    with pytest.raises(ValueError, match="sum to 1"):
        s.check(torch.tensor([[0.5, 0.5, 0.5]]))
    assert math.isclose(float(s.base_log_prob(torch.ones(1, 3) / 3)), math.log(2.0), rel_tol=1e-6)
