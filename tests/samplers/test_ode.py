"""ODE integrators: order of convergence on closed-form flows, NFE, grids, backward integration, errors."""
import math

import numpy as np
import pytest
import torch

from sciflow.registry import names
from sciflow.samplers import ODESampler, build_sampler, integrate, time_grid

# A linear field with rotation and decay, dx/dt = A x, x(t) = expm(A t) x0 ...
A = torch.tensor([[-0.5, 2.0], [-2.0, -0.3]], dtype=torch.float64)


def linear_field(x, t):
    return x @ A.T


# ... and a nonlinear, time-dependent one: dx/dt = cos(2 t) x - x^3 has no simple form, so use
# dx/dt = x^2 cos(t) with solution x(t) = x0 / (1 - x0 sin t) (finite for |x0| < 1 on [0, 1]).
def riccati_field(x, t):
    return x.pow(2) * torch.cos(t)[:, None]


def riccati_exact(x0, t):
    return x0 / (1 - x0 * math.sin(t))


X0 = torch.tensor([[1.0, -0.5], [0.3, 0.8], [-1.2, 0.1]], dtype=torch.float64)
X0_RIC = torch.tensor([[0.9], [-0.7], [0.4], [0.05]], dtype=torch.float64)

ORDERS = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}
STAGES = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}


def _slope(method, field, x0, exact, steps_list):
    errs = []
    for n in steps_list:
        out = integrate(field, x0, method=method, steps=n)
        assert out.nfe == n * STAGES[method]
        errs.append((out.x - exact).abs().max().item())
    hs = 1.0 / np.asarray(steps_list, dtype=float)
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    return slope, errs


@pytest.mark.parametrize("method", list(ORDERS))
def test_order_of_convergence_linear(method):
    exact = X0 @ torch.linalg.matrix_exp(A).T
    steps = [4, 8, 16, 32] if method == "rk4" else [16, 32, 64, 128]
    slope, errs = _slope(method, linear_field, X0, exact, steps)
    assert abs(slope - ORDERS[method]) < 0.3, (slope, errs)
    assert errs[-1] < errs[0]


@pytest.mark.parametrize("method", list(ORDERS))
def test_order_of_convergence_nonlinear_time_dependent(method):
    exact = riccati_exact(X0_RIC, 1.0)
    steps = [4, 8, 16, 32] if method == "rk4" else [16, 32, 64, 128]
    slope, errs = _slope(method, riccati_field, X0_RIC, exact, steps)
    assert abs(slope - ORDERS[method]) < 0.3, (slope, errs)


def test_dopri5_accuracy_and_nfe():
    exact = riccati_exact(X0_RIC, 1.0)
    out = integrate(riccati_field, X0_RIC, method="dopri5", atol=1e-8, rtol=1e-8)
    assert out.nfe > 0
    assert (out.x - exact).abs().max().item() < 1e-6
    loose = integrate(riccati_field, X0_RIC, method="dopri5", atol=1e-3, rtol=1e-3)
    assert 0 < loose.nfe < out.nfe
    assert (loose.x - exact).abs().max().item() < 1e-2


def test_dopri5_trajectory_on_grid():
    grid = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    out = integrate(linear_field, X0, method="dopri5", grid=grid, return_trajectory=True, atol=1e-9, rtol=1e-9)
    assert out.trajectory.shape == (4, *X0.shape)
    for i, t in enumerate(grid.tolist()):
        torch.testing.assert_close(out.trajectory[i], X0 @ torch.linalg.matrix_exp(A * t).T, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["rk4", "dopri5"])
def test_backward_integration_inverts_forward(method):
    kw = dict(method=method, steps=64, atol=1e-10, rtol=1e-10)
    fwd = integrate(riccati_field, X0_RIC, **kw)
    back = integrate(riccati_field, fwd.x, t0=1.0, t1=0.0, **kw)
    torch.testing.assert_close(back.x, X0_RIC, rtol=1e-7, atol=1e-7)


def test_backward_grid_is_descending():
    out = integrate(linear_field, X0, method="euler", steps=5, t0=1.0, t1=0.0)
    assert torch.all(out.times.diff() < 0)
    assert out.times[0] == 1.0 and out.times[-1] == 0.0


@pytest.mark.parametrize("method", list(ORDERS))
def test_trajectory_shape_and_endpoints(method):
    x0 = torch.randn(5, 3, 2, dtype=torch.float64)
    out = integrate(lambda x, t: -x, x0, method=method, steps=7, return_trajectory=True)
    assert out.trajectory.shape == (8, 5, 3, 2)
    assert out.times.shape == (8,)
    torch.testing.assert_close(out.trajectory[0], x0)
    torch.testing.assert_close(out.trajectory[-1], out.x)
    no_traj = integrate(lambda x, t: -x, x0, method=method, steps=7)
    assert no_traj.trajectory is None


def test_explicit_nonuniform_grid():
    # Euler on dx/dt = 1 (any grid integrates exactly), and the field sees the grid's times
    seen = []

    def field(x, t):
        seen.append(t[0].item())
        return torch.ones_like(x)

    grid = torch.tensor([0.0, 0.1, 0.5, 0.6, 1.0], dtype=torch.float64)
    out = integrate(field, torch.zeros(3, 1, dtype=torch.float64), method="euler", grid=grid)
    torch.testing.assert_close(out.x, torch.ones(3, 1, dtype=torch.float64))
    assert seen == pytest.approx([0.0, 0.1, 0.5, 0.6])
    assert out.nfe == 4
    torch.testing.assert_close(out.times, grid)


def test_time_argument_has_batch_shape():
    shapes = []

    def field(x, t):
        shapes.append(tuple(t.shape))
        return -x

    integrate(field, torch.randn(6, 2), method="midpoint", steps=3)
    integrate(field, torch.randn(6, 2, dtype=torch.float64), method="dopri5")
    assert set(shapes) == {(6,)}


def test_mapping_states():
    x0 = {"a": torch.ones(4, 2, dtype=torch.float64), "b": torch.ones(4, dtype=torch.float64)}
    out = integrate(lambda x, t: {"a": x["a"], "b": -x["b"]}, x0, method="rk4", steps=20, return_trajectory=True)
    torch.testing.assert_close(out.x["a"], torch.full((4, 2), math.e, dtype=torch.float64), rtol=1e-6, atol=0)
    torch.testing.assert_close(out.x["b"], torch.full((4,), math.exp(-1), dtype=torch.float64), rtol=1e-6, atol=0)
    assert out.trajectory["a"].shape == (21, 4, 2)


@pytest.mark.parametrize("steps", [0, -3, None])
def test_invalid_steps(steps):
    with pytest.raises(ValueError, match="steps"):
        integrate(linear_field, X0, method="euler", steps=steps)


@pytest.mark.parametrize("grid", [[[0.0, 1.0]], [0.5], [0.0, 0.5, 0.4, 1.0], [0.0, 0.0, 1.0]])
def test_invalid_grid(grid):
    with pytest.raises(ValueError, match="time_grid"):
        integrate(linear_field, X0, method="euler", grid=torch.tensor(grid, dtype=torch.float64))


def test_time_grid_helper():
    g = time_grid(4, 0.0, 1.0, None, torch.device("cpu"), torch.float64)
    torch.testing.assert_close(g, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64))


def test_unknown_method():
    with pytest.raises(ValueError, match="nope"):
        integrate(linear_field, X0, method="nope")


def test_registered_samplers_and_build():
    for n in ("euler", "midpoint", "heun", "rk4", "dopri5"):
        assert n in names("sampler")
    s = build_sampler({"name": "rk4", "steps": 3}, steps=9)
    assert isinstance(s, ODESampler) and s.method == "rk4" and s.steps == 9
    with pytest.raises(ValueError, match="unknown sampler"):
        build_sampler("nope")
    with pytest.raises(TypeError):
        build_sampler(3)


def test_fractional_steps_and_options_on_built_sampler_are_errors():
    import pytest
    import torch

    from sciflow.samplers import build_sampler, integrate

    with pytest.raises(ValueError, match="positive integer"):
        integrate(lambda x, t: -x, torch.ones(2, 1), steps=2.5)
    with pytest.raises(ValueError, match="already built"):
        build_sampler(build_sampler("euler", steps=3), steps=10)
