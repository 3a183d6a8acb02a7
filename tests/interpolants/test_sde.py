"""SDE samplers driven by exact (oracle) drift and score: target moments for several epsilon, ODE = SDE
marginals, backward runs, the affine-model conversion and the torchsde adapter."""
import pytest
import torch

import sciflow
from si_oracles import GaussianMixture, OracleModel, interpolant_fields, path_coefficients
from sciflow.paths.affine import AffinePath
from sciflow.paths.conversions import affine_drift_and_score, affine_noise_from_score, affine_velocity_from_score
from sciflow.paths.interpolants import StochasticInterpolantPath
from sciflow.samplers.sde import SDESampler, resolve_epsilon

P0 = GaussianMixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], [torch.eye(2) * 0.3, torch.eye(2) * 0.5])
P1 = GaussianMixture.gaussian([1.0, 3.0], [[1.0, 0.5], [0.5, 0.8]])
N = 2000


def _flow(path, p0, p1, prediction):
    return sciflow.Flow(OracleModel(path, p0, p1, prediction), path=path, prediction=prediction,
                        space=sciflow.spaces.Euclidean(2))


def _assert_moments(x, p, tol_mean=0.1, tol_cov=0.15):
    assert torch.isfinite(x).all()
    assert torch.allclose(x.mean(0), p.mean(), atol=tol_mean), (x.mean(0), p.mean())
    assert torch.allclose(torch.cov(x.T), p.cov(), atol=tol_cov), (torch.cov(x.T), p.cov())


@pytest.mark.parametrize("epsilon", [0.25, 1.0, 3.0, lambda t: 2.0 * t * (1 - t)])
@pytest.mark.parametrize("sampler", ["euler_maruyama", "sde_heun"])
def test_sde_with_exact_fields_reproduces_target_moments(epsilon, sampler):
    """Data-to-data: a two-component mixture to a correlated Gaussian through linear + Brownian noise."""
    torch.manual_seed(0)
    path = StochasticInterpolantPath("linear", "brownian")
    flow = _flow(path, P0, P1, "drift_score")
    steps = 150 if sampler == "euler_maruyama" else 60
    res = flow.sample(x0=P0.sample(N), sampler=sampler, steps=steps, epsilon=epsilon, seed=1)
    _assert_moments(res.x, P1)
    assert res.nfe == (steps if sampler == "euler_maruyama" else 2 * steps)


def test_gaussian_to_mixture_with_denoiser_and_mixture_modes():
    """Gaussian base to a bimodal target; drift + denoiser parameterisation (score = -eta / gamma)."""
    torch.manual_seed(1)
    std = GaussianMixture.standard(2)
    target = GaussianMixture([0.3, 0.7], [[-3.0, 1.0], [2.0, -1.0]], [torch.eye(2) * 0.2, torch.eye(2) * 0.4])
    path = StochasticInterpolantPath("trigonometric", {"name": "brownian", "scale": 0.5})
    flow = _flow(path, std, target, "drift_denoiser")
    res = flow.sample(x0=std.sample(N), sampler="euler_maruyama", steps=200, epsilon=1.0)
    _assert_moments(res.x, target, tol_mean=0.12, tol_cov=0.25)
    left = (res.x[:, 0] < 0).double().mean()
    assert abs(left.item() - 0.3) < 0.03


def test_ode_and_sde_marginals_agree_along_the_path():
    """Probability-flow ODE (core heun sampler) and the SDE share the time marginals of x_t."""
    torch.manual_seed(2)
    p0 = GaussianMixture.gaussian([-1.0, 0.0], [[0.6, 0.0], [0.0, 0.4]])
    path = StochasticInterpolantPath("linear", "brownian")
    flow = _flow(path, p0, P1, "drift_score")
    x0 = p0.sample(N)
    ode = flow.sample(x0=x0, sampler="heun", steps=40, return_trajectory=True)
    sde = flow.sample(x0=x0, sampler="euler_maruyama", steps=160, epsilon=1.5, return_trajectory=True, seed=3)
    for t_idx_ode, t_idx_sde, t in [(20, 80, 0.5), (30, 120, 0.75), (40, 160, 1.0)]:
        c = path.coefficients(torch.tensor([t], dtype=torch.float64))
        a, b, g = c["a"].item(), c["b"].item(), c["gamma"].item()
        mean = a * p0.mean() + b * P1.mean()
        cov = a * a * p0.cov() + b * b * P1.cov() + g * g * torch.eye(2, dtype=torch.float64)
        for traj, idx in ((ode.trajectory, t_idx_ode), (sde.trajectory, t_idx_sde)):
            x = traj[idx]
            assert torch.allclose(x.mean(0), mean, atol=0.08)
            assert torch.allclose(torch.cov(x.T), cov, atol=0.12)


@pytest.mark.parametrize("sampler", ["euler_maruyama", "sde_heun"])
def test_backward_sde_recovers_source(sampler):
    torch.manual_seed(3)
    path = StochasticInterpolantPath("linear", "brownian")
    flow = _flow(path, P0, P1, "drift_score")
    res = flow.sample(x0=P1.sample(N), sampler=sampler, steps=120, epsilon=1.0, t0=1.0, t1=0.0)
    _assert_moments(res.x, P0, tol_cov=0.25)
    assert (res.x[:, 0] < 0).double().mean().sub(0.5).abs() < 0.03


@pytest.mark.parametrize("prediction", ["velocity", "x1", "noise"])
def test_affine_conversion_gives_exact_score_and_velocity(prediction):
    """A core affine model (any parameterisation) gives the exact marginal score without retraining."""
    for sched in ("cond_ot", "vp", "cosine"):
        path = AffinePath(sched)
        std = GaussianMixture.standard(2)
        t = torch.linspace(0.1, 0.9, 9, dtype=torch.float64)
        x = torch.randn(9, 2, dtype=torch.float64) * 1.5
        out = OracleModel(path, std, P0, prediction)(x, t)
        v, s = affine_drift_and_score(path, out, x, t, prediction)
        f = interpolant_fields(path_coefficients(path, t), std, P0, x)
        assert torch.allclose(s, f["score"], atol=1e-8)
        assert torch.allclose(v, f["velocity"], atol=1e-8)
        assert torch.allclose(affine_velocity_from_score(path, s, x, t), v, atol=1e-8)
        assert torch.allclose(affine_noise_from_score(path, s, t), f["x0"], atol=1e-8)


@pytest.mark.parametrize("epsilon", [0.5, 2.0])
def test_core_affine_model_sde_sampling(epsilon):
    torch.manual_seed(4)
    path = AffinePath("cond_ot")
    std = GaussianMixture.standard(2)
    flow = sciflow.Flow(OracleModel(path, std, P0, "velocity"), space=sciflow.spaces.Euclidean(2), path=path)
    res = flow.sample(N, sampler="euler_maruyama", steps=150, epsilon=epsilon, dtype=torch.float64)
    _assert_moments(res.x, P0, tol_cov=0.25)
    assert (res.x[:, 0] < 0).double().mean().sub(0.5).abs() < 0.03


@pytest.mark.parametrize("method", ["euler", "heun", pytest.param("srk", marks=pytest.mark.slow)])
def test_torchsde_adapter_matches_target(method):
    torch.manual_seed(5)
    path = StochasticInterpolantPath("linear", "brownian")
    flow = _flow(path, P0, P1, "drift_score")
    steps = 100 if method == "euler" else 30
    res = flow.sample(x0=P0.sample(N), sampler="torchsde", method=method, steps=steps, epsilon=1.0, seed=7)
    _assert_moments(res.x, P1)
    assert res.nfe >= steps
    back = flow.sample(x0=P1.sample(N), sampler="torchsde", method=method, steps=steps, epsilon=1.0, t0=1.0, t1=0.0)
    _assert_moments(back.x, P0, tol_cov=0.25)


def test_epsilon_zero_equals_euler_ode_and_seed_reproducible():
    path = StochasticInterpolantPath("linear", "brownian")
    flow = _flow(path, P0, P1, "drift_score")
    x0 = P0.sample(50)
    ode = flow.sample(x0=x0, sampler="euler", steps=20)
    sde = flow.sample(x0=x0, sampler="euler_maruyama", steps=20, epsilon=0.0)
    assert torch.allclose(ode.x, sde.x)
    a = flow.sample(x0=x0, sampler="euler_maruyama", steps=20, epsilon=1.0, seed=11)
    b = flow.sample(x0=x0, sampler="euler_maruyama", steps=20, epsilon=1.0, seed=11)
    c = flow.sample(x0=x0, sampler="euler_maruyama", steps=20, epsilon=1.0, seed=12)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)


@pytest.mark.parametrize("sampler, kw", [("euler_maruyama", {}), ("sde_heun", {}), ("torchsde", {"method": "euler"}),
                                        ("smc", {"n_particles": 3, "reward": lambda x, c: x[:, 0]}),
                                        ("best_of_n", {"n_particles": 3, "reward": lambda x, c: x[:, 0]})])
def test_flow_sample_generator_drives_the_sampler_noise(sampler, kw):
    """flow.sample(generator=g) seeds the Brownian increments (and particle draws), not only x0."""
    path = StochasticInterpolantPath("linear", "brownian")
    flow = _flow(path, P0, P1, "drift_score")
    x0 = P0.sample(40)

    def run(seed, global_seed):
        torch.manual_seed(global_seed)  # the global RNG must not matter once a generator is given
        g = torch.Generator().manual_seed(seed)
        return flow.sample(x0=x0, sampler=sampler, steps=10, epsilon=1.0, generator=g, **kw).x

    a, b, c = run(3, 0), run(3, 99), run(4, 0)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_two_flow_design_with_score_flow():
    torch.manual_seed(6)
    path = StochasticInterpolantPath("linear", "brownian")
    drift_flow = _flow(path, P0, P1, "drift")
    score_flow = _flow(path, P0, P1, "denoiser")
    res = drift_flow.sample(x0=P0.sample(N), sampler="euler_maruyama", steps=120, epsilon=1.0, score_flow=score_flow)
    _assert_moments(res.x, P1)
    assert res.nfe == 2 * 120 - 2  # drift only at t = 0 (end point) and in the final denoising step
    with pytest.raises(ValueError, match="score_flow"):
        drift_flow.sample(x0=P0.sample(5), sampler="euler_maruyama", steps=5, epsilon=1.0)


def test_sampler_argument_errors():
    with pytest.raises(ValueError, match="epsilon"):
        resolve_epsilon(-1.0)
    with pytest.raises(TypeError, match="epsilon"):
        resolve_epsilon("big")
    with pytest.raises(ValueError, match="steps"):
        SDESampler(steps=0)
    with pytest.raises(ValueError, match="method"):
        SDESampler(method="rk4")
    with pytest.raises(ValueError, match=">= 0"):
        resolve_epsilon(lambda t: -t)(torch.ones(3))


def test_affine_sde_refuses_a_custom_source():
    """The closed-form affine score assumes x0 ~ N(0, I); a flow with a data-dependent source would be
    sampled from the wrong SDE, so the sampler says so instead of returning wrong samples."""
    def shifted(n, cond=None, device=None, dtype=None, generator=None):
        return 3.0 + torch.randn(n, 2, dtype=dtype, generator=generator)

    path = AffinePath("cond_ot")
    flow = sciflow.Flow(OracleModel(path, GaussianMixture.standard(2), P0, "velocity"), path=path, source=shifted)
    with pytest.raises(ValueError, match="custom source"):
        flow.sample(8, sampler="euler_maruyama", steps=4, epsilon=0.5, dtype=torch.float64)
    assert torch.isfinite(flow.sample(8, sampler="euler", steps=4, dtype=torch.float64).x).all()  # ODE is fine
