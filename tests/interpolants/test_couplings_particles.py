"""Data-dependent sources, the Schrodinger-bridge coupling, particle samplers, and learned fields vs oracles."""
import pytest
import torch
from torch import nn

import sciflow
from si_oracles import GaussianMixture, OracleModel, interpolant_fields, path_coefficients
from sciflow.couplings.bridge import SchrodingerBridgeCoupling, schrodinger_bridge
from sciflow.couplings.data_dependent import (
    ConditionSource,
    CorruptionCoupling,
    LastObservationSource,
    NoisyConditionSource,
    UpsampledSource,
)
from sciflow.couplings.ot import sq_euclidean_cost
from sciflow.paths.interpolants import MultiFieldModel, StochasticInterpolantPath, interpolant_flow


# ------------------------------------------------------------------------------------ sources
def test_noisy_condition_source_statistics_and_errors():
    g = torch.Generator().manual_seed(0)
    cond = torch.randn(20000, 3, generator=g)
    x0 = NoisyConditionSource(scale=0.3)(20000, cond=cond, generator=g)
    d = x0 - cond
    assert abs(d.mean().item()) < 0.01 and abs(d.std().item() - 0.3) < 0.01
    with pytest.raises(ValueError, match="cond is None"):
        NoisyConditionSource(0.1)(4)
    with pytest.raises(ValueError, match="batch size"):
        NoisyConditionSource(0.1)(5, cond=torch.zeros(4, 2))
    with pytest.raises(ValueError, match="key="):
        NoisyConditionSource(0.1)(4, cond={"prev": torch.zeros(4, 2)})
    assert NoisyConditionSource(0.0, key="prev")(4, cond={"prev": torch.ones(4, 2)}).eq(1).all()
    with pytest.raises(ValueError, match="scale"):
        ConditionSource(scale=-1.0)


def test_history_and_upsampled_sources():
    hist = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    x0 = LastObservationSource(scale=0.0)(2, cond=hist)
    assert torch.equal(x0, hist[:, -1])
    low = torch.full((2, 1, 4, 4), 2.5)
    up = UpsampledSource(size=(16, 16), scale=0.0)(2, cond=low)
    assert up.shape == (2, 1, 16, 16) and torch.allclose(up, torch.full_like(up, 2.5))
    with pytest.raises(ValueError, match="exactly one"):
        UpsampledSource()


def test_corruption_coupling():
    x1 = torch.randn(8, 2)
    x0, x1b, c = CorruptionCoupling(lambda x: 0.5 * x)(torch.zeros(8, 2), x1)
    assert torch.equal(x0, 0.5 * x1) and x1b is x1 and c is None
    with pytest.raises(ValueError, match="shape"):
        CorruptionCoupling(lambda x: x[:, :1])(x1, x1)


class _ShiftedOracle(nn.Module):
    """Exact fields for x0 = c + N(0, s0^2), x1 = c + N(m, D): the linear interpolant commutes with the shift by c."""

    def __init__(self, path, p0, p1):
        super().__init__()
        self.inner = OracleModel(path, p0, p1, "drift_score")

    def forward(self, x, t, cond=None):
        out = self.inner(x - cond, t)
        return out


def test_forecasting_style_flow_with_noisy_condition_source():
    """Flow(source=NoisyConditionSource) draws x0 around the condition while training and sampling; with exact
    fields the SDE moves each condition's base to the right conditional target."""
    torch.manual_seed(0)
    s0 = 0.2
    p0 = GaussianMixture.gaussian([0.0, 0.0], torch.eye(2) * s0 ** 2)
    p1 = GaussianMixture.gaussian([1.0, -0.5], [[0.3, 0.1], [0.1, 0.2]])
    path = StochasticInterpolantPath("linear", {"name": "brownian", "scale": 0.5})
    flow = sciflow.Flow(_ShiftedOracle(path, p0, p1), path=path, prediction="drift_score",
                        source=NoisyConditionSource(scale=s0), t_eps=1e-3)
    cond = torch.randn(2000, 2, dtype=torch.float64) * 3
    loss = flow.loss(cond + p1.sample(2000), cond=cond)
    assert torch.isfinite(loss)
    res = flow.sample(cond=cond, sampler="euler_maruyama", steps=100, epsilon=0.5, dtype=torch.float64)
    y = res.x - cond
    assert torch.allclose(y.mean(0), p1.mean(), atol=0.05)
    assert torch.allclose(torch.cov(y.T), p1.cov(), atol=0.05)


# ------------------------------------------------------------------------------------ bridge
def test_schrodinger_bridge_coupling_interpolates_between_ot_and_independent():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(128, 2, generator=g)
    x1 = torch.randn(128, 2, generator=g) + torch.tensor([3.0, 0.0])
    mean_cost = sq_euclidean_cost(x0, x1).mean().item()

    def pair_cost(sigma):
        a, b, _ = SchrodingerBridgeCoupling(sigma, anneal=2.0, max_iter=1000)(x0, x1, generator=torch.Generator().manual_seed(1))
        return (a - b).pow(2).sum(1).mean().item()

    exact_ot = sciflow.couplings.ExactOTCoupling()(x0, x1)
    ot_cost = (exact_ot[0] - exact_ot[1]).pow(2).sum(1).mean().item()
    small, large = pair_cost(0.2), pair_cost(20.0)
    assert abs(small - ot_cost) < 0.1 * ot_cost
    assert abs(large - mean_cost) < 0.1 * mean_cost
    assert ot_cost < pair_cost(1.0) < mean_cost
    sb = schrodinger_bridge(sigma=0.5)
    assert sb["epsilon"] == 0.125 and sb["path"].gamma.scale == 0.5 and sb["prediction"] == "drift_denoiser"
    with pytest.raises(ValueError, match="sigma"):
        SchrodingerBridgeCoupling(0.0)


# ------------------------------------------------------------------------------------ particles
def test_particle_samplers_steer_toward_reward():
    """Bimodal target; the reward prefers the right mode: SMC and best-of-N put (almost) all samples there."""
    torch.manual_seed(0)
    std = GaussianMixture.standard(2)
    target = GaussianMixture([0.5, 0.5], [[-2.5, 0.0], [2.5, 0.0]], [torch.eye(2) * 0.2, torch.eye(2) * 0.2])
    path = StochasticInterpolantPath("linear", "brownian")
    flow = sciflow.Flow(OracleModel(path, std, target, "drift_score"), path=path, prediction="drift_score",
                        space=sciflow.spaces.Euclidean(2))
    x0 = std.sample(300)

    def reward(x, cond):
        return x[:, 0]

    base = flow.sample(x0=x0, sampler="euler_maruyama", steps=40, epsilon=1.0)
    assert abs((base.x[:, 0] > 0).double().mean().item() - 0.5) < 0.1
    smc = flow.sample(x0=x0, sampler="smc", reward=reward, n_particles=6, steps=40, epsilon=1.0, reward_scale=3.0)
    bon = flow.sample(x0=x0, sampler="best_of_n", reward=reward, n_particles=6, steps=40, epsilon=1.0)
    for res in (smc, bon):
        assert res.x.shape == (300, 2)
        assert (res.x[:, 0] > 0).double().mean().item() > 0.95
        assert res.extra["particles"].shape == (300, 6, 2) and res.extra["rewards"].shape == (300, 6)
        # the reward tilts samples within the right mode but they stay on it (no escape off the support)
        assert res.x[:, 0].max().item() < 5.0 and res.x[:, 1].abs().mean().item() < 0.6
    assert smc.extra["resampled"] > 0 and bon.nfe == 40 and smc.nfe > 40
    with pytest.raises(ValueError, match="reward"):
        sciflow.samplers.build_sampler("smc", steps=5)


# ------------------------------------------------------------------------------------ learned fields
@pytest.mark.parametrize("antithetic", [False, True])
def test_learned_fields_approach_exact_fields(antithetic):
    """A short training of drift + denoiser brings the learned drift and score close to the closed form."""
    torch.manual_seed(0)
    p0 = GaussianMixture.gaussian([-1.0, 0.5], [[0.5, 0.0], [0.0, 0.5]])
    p1 = GaussianMixture.gaussian([2.0, 1.0], [[0.6, 0.3], [0.3, 0.4]])
    path = StochasticInterpolantPath("linear", {"name": "brownian", "scale": 0.7}, antithetic=antithetic)
    net = MultiFieldModel(drift=sciflow.nn.MLP(2, hidden=64, depth=2), denoiser=sciflow.nn.MLP(2, hidden=64, depth=2))
    flow = interpolant_flow(net, path, "drift_denoiser", source=lambda n, **kw: p0.sample(n, dtype=torch.float32))
    t_test = torch.linspace(0.2, 0.8, 7).repeat_interleave(100)
    x_test = path.sample(p0.sample(700, dtype=torch.float32), p1.sample(700, dtype=torch.float32), t_test).x_t
    x_test = x_test[: t_test.shape[0]]
    exact = interpolant_fields(path_coefficients(path, t_test), p0, p1, x_test.double())

    def errors():
        with torch.no_grad():
            b, s = path.drift_and_score(flow.predict(x_test, t_test), x_test, t_test, "drift_denoiser")
        rel = lambda a, e: ((a.double() - e).norm() / e.norm()).item()  # noqa: E731
        return rel(b, exact["drift"]), rel(s, exact["score"])

    before = errors()
    opt = torch.optim.Adam(flow.parameters(), lr=2e-3)
    for _ in range(600):
        loss = flow.loss(p1.sample(256, dtype=torch.float32))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = errors()
    assert after[0] < 0.1 and after[1] < 0.15, (before, after)
    assert after[0] < 0.3 * before[0] and after[1] < 0.3 * before[1]


# ------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize("name", ["gaussian_to_8gaussians", "moons_to_8gaussians_sb"])
def test_interpolant_configs_build_a_trainable_flow(name):
    from sciflow.config import load_config
    from sciflow.paths.interpolants import AntitheticModel
    from sciflow.registry import build

    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "configs" / "interpolants" / f"{name}.yaml"
    cfg = load_config(path)
    task = build("task", cfg.task, config=cfg)
    flow = task.build_flow()
    assert isinstance(flow.path, StochasticInterpolantPath) and flow.t_eps == 1e-3
    assert isinstance(flow.model, AntitheticModel) == flow.path.antithetic
    x1 = task.train_dataset().tensors[0][:64]
    loss = flow.loss(x1)
    loss.backward()
    assert torch.isfinite(loss)
    res = flow.sample(16, sampler=cfg.sample.sampler, steps=5)
    assert res.x.shape == (16, 2) and res.nfe == 5
    with pytest.raises(Exception, match="prediction"):
        build("task", cfg.task, config=load_config(path, ["flow.prediction=x1"])).build_flow()
