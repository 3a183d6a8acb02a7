"""Flow: loss/sample contracts, an exact-velocity oracle, reproducibility, errors, a short training run."""
import math

import numpy as np
import pytest
import torch
from torch import nn

import sciflow
from sciflow import Flow
from sciflow.nn.mlp import MLP
from sciflow.paths import AffinePath
from sciflow.spaces.euclidean import Euclidean

MU = torch.tensor([2.0, -1.0], dtype=torch.float64)
STD = torch.tensor([0.5, 1.5], dtype=torch.float64)


class GaussianOracle(nn.Module):
    """Exact marginal quantities of the cond-OT path from N(0, I) to N(MU, diag(STD^2)), independent coupling.

    x_t = t x1 + (1 - t) x0 is Gaussian with mean t MU and variance var_t = (1-t)^2 + t^2 STD^2, so
    E[x1 | x_t] = MU + t STD^2 (x - t MU) / var_t and E[x0 | x_t] = (1 - t) (x - t MU) / var_t.
    """

    def __init__(self, prediction="velocity"):
        super().__init__()
        self.prediction = prediction
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x, t, cond=None):
        t = t[:, None]
        var = (1 - t) ** 2 + t**2 * STD**2
        r = (x - t * MU) / var
        x1 = MU + t * STD**2 * r
        x0 = (1 - t) * r
        return {"velocity": x1 - x0, "x1": x1, "noise": x0}[self.prediction] + 0 * self.dummy


@pytest.mark.parametrize("sampler,steps", [("euler", 200), ("midpoint", 20), ("rk4", 10), ("dopri5", None)])
def test_exact_velocity_transports_to_target(sampler, steps):
    flow = Flow(GaussianOracle(), space=Euclidean(2))
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4000, 2, generator=g, dtype=torch.float64)
    out = flow.sample(x0=x0, sampler=sampler, steps=steps)
    # the flow map of a Gaussian-to-Gaussian field is affine: x1 = MU + STD * x0 exactly (per coordinate)
    tol = {"euler": 6e-2, "midpoint": 3e-4, "rk4": 5e-5, "dopri5": 1e-3}[sampler]
    torch.testing.assert_close(out.x, MU + STD * x0, rtol=0, atol=tol)
    assert out.nfe > 0


@pytest.mark.parametrize("prediction", ["x1", "noise"])
def test_other_parameterisations_give_same_velocity(prediction):
    v_flow = Flow(GaussianOracle("velocity"), space=Euclidean(2))
    p_flow = Flow(GaussianOracle(prediction), space=Euclidean(2), prediction=prediction)
    x = torch.randn(16, 2, dtype=torch.float64)
    t = torch.rand(16, dtype=torch.float64) * 0.9 + 0.05
    torch.testing.assert_close(p_flow.velocity(x, t), v_flow.velocity(x, t), rtol=1e-10, atol=1e-10)


def test_x1_prediction_samples_with_euler_and_midpoint():
    # midpoint never evaluates the field at t = 1, so the full interval [0, 1] is safe here
    flow = Flow(GaussianOracle("x1"), space=Euclidean(2), prediction="x1", t_eps=0.0)
    x0 = torch.randn(500, 2, dtype=torch.float64)
    out = flow.sample(x0=x0, sampler="midpoint", steps=40)
    torch.testing.assert_close(out.x, MU + STD * x0, rtol=0, atol=1e-3)


class _BiasedX1(GaussianOracle):
    """The exact x1 prediction plus a constant error of 0.01, like a trained network's."""

    def forward(self, x, t, cond=None):
        return super().forward(x, t, cond) + 0.01


@pytest.mark.parametrize("sampler,steps", [("heun", 10), ("rk4", 5), ("midpoint", 10)])
def test_x1_prediction_errors_are_not_amplified_at_the_end(sampler, steps):
    """Heun/RK4 would evaluate v = (x1_hat - x) / (1 - t) at t = 1 - 1e-3, turning a 0.01 error of x1_hat
    into ~5 / steps; their last step is taken with the midpoint rule instead, so the error stays a few 0.01."""
    flow = Flow(_BiasedX1("x1"), space=Euclidean(2), prediction="x1")
    x0 = torch.randn(500, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = flow.sample(x0=x0, sampler=sampler, steps=steps)
    err = (out.x - (MU + STD * x0)).abs().max().item()
    assert err < 0.1, err
    naive = sciflow.samplers.ode.integrate(lambda x, t: flow.velocity(x, t), x0, method=sampler, steps=steps,
                                           t0=flow.time_interval()[0], t1=flow.time_interval()[1])
    if sampler != "midpoint":  # the oracle for this test: without the final midpoint step it fails
        assert (naive.x - (MU + STD * x0)).abs().max().item() > 0.3


class _BiasedNoise(GaussianOracle):
    """The exact noise prediction plus a constant error of 0.01."""

    def forward(self, x, t, cond=None):
        return super().forward(x, t, cond) + 0.01


def test_singular_ends_name_the_end_point_each_parameterisation_divides_by_zero_at():
    assert Flow(GaussianOracle("x1"), space=Euclidean(2), prediction="x1").singular_ends == (1.0,)
    assert Flow(GaussianOracle("noise"), space=Euclidean(2), prediction="noise").singular_ends == (0.0,)
    velocity = Flow(GaussianOracle(), space=Euclidean(2))
    assert velocity.singular_ends == () and velocity.t_eps == 0.0


def test_noise_prediction_inverted_towards_t0_keeps_its_last_step_off_the_singular_end():
    """Data -> source with Heun: the last step ends at t = 1e-3, next to the noise parameterisation's
    singular t = 0; it is taken by the midpoint rule, so a 0.01 error of the network is not amplified."""
    flow = Flow(_BiasedNoise("noise"), space=Euclidean(2), prediction="noise")
    x0 = torch.randn(500, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    lo, hi = flow.time_interval()
    back = sciflow.samplers.ode.ODESampler("heun", steps=10, t0=hi, t1=lo)(flow, MU + STD * x0)
    err = (back.x - x0).abs().max().item()
    assert err < 0.1, err
    naive = sciflow.samplers.ode.integrate(lambda x, t: flow.velocity(x, t), MU + STD * x0, method="heun",
                                           steps=10, t0=hi, t1=lo)
    assert (naive.x - x0).abs().max().item() > 0.3


@pytest.mark.parametrize("prediction,sampler", [("x1", "rk4"), ("x1", "heun"), ("noise", "euler")])
def test_singular_parameterisations_sample_finite(prediction, sampler):
    # the default t_eps = 1e-3 of x1/noise predictions keeps samplers off the singular end points
    flow = Flow(GaussianOracle(prediction), space=Euclidean(2), prediction=prediction)
    out = flow.sample(64, sampler=sampler, steps=10, dtype=torch.float64)
    assert torch.isfinite(out.x).all()


def test_oracle_has_lower_loss_than_perturbed_field():
    flow = Flow(GaussianOracle(), space=Euclidean(2))
    g = torch.Generator().manual_seed(1)
    x1 = MU + STD * torch.randn(20000, 2, generator=g, dtype=torch.float64)
    exact = flow.loss(x1, generator=torch.Generator().manual_seed(2))

    class Perturbed(GaussianOracle):
        def forward(self, x, t, cond=None):
            return super().forward(x, t) + 0.3

    worse = Flow(Perturbed(), space=Euclidean(2)).loss(x1, generator=torch.Generator().manual_seed(2))
    # the MSE decomposes: loss(v + c) = loss(v) + |c|^2 / d (per-coordinate mean) up to cross terms ~ 0
    assert worse.item() == pytest.approx(exact.item() + 0.09, abs=0.01)


@pytest.mark.parametrize("prediction", ["velocity", "x1", "noise"])
def test_loss_is_finite_scalar_with_gradients(prediction):
    torch.manual_seed(0)
    flow = Flow(MLP(2, hidden=32, depth=2), space=Euclidean(2), prediction=prediction)
    x1 = torch.randn(64, 2)
    loss = flow.loss(x1)
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in flow.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert flow.loss_per_example(x1).shape == (64,)


def test_loss_with_given_x0_is_deterministic_given_generator():
    flow = Flow(MLP(2, hidden=16, depth=1), space=Euclidean(2))
    x1, x0 = torch.randn(32, 2), torch.randn(32, 2)
    a = flow.loss(x1, x0=x0, generator=torch.Generator().manual_seed(3))
    b = flow.loss(x1, x0=x0, generator=torch.Generator().manual_seed(3))
    c = flow.loss(x1, x0=x0, generator=torch.Generator().manual_seed(4))
    assert a.item() == b.item() and a.item() != c.item()


def test_sample_shapes_and_n_inference():
    flow = Flow(MLP((3, 2), hidden=16, depth=1, num_classes=4), space=Euclidean((3, 2)))
    out = flow.sample(7, steps=3)
    assert out.x.shape == (7, 3, 2) and out.nfe == 3
    cond = torch.tensor([0, 1, 2, 3, 1])
    assert flow.sample(cond=cond, steps=2).x.shape == (5, 3, 2)
    assert flow.sample(x0=torch.randn(6, 3, 2), steps=2).x.shape == (6, 3, 2)
    traj = flow.sample(4, sampler="midpoint", steps=5, return_trajectory=True)
    assert traj.trajectory.shape == (6, 4, 3, 2) and traj.nfe == 10
    with pytest.raises(ValueError, match="cond has batch size 5 but n=3"):
        flow.sample(3, cond=cond, steps=2)
    with pytest.raises(ValueError, match="needs n, cond or x0"):
        flow.sample(steps=2)


def test_sample_reproducible_with_generator():
    torch.manual_seed(0)
    flow = Flow(MLP(2, hidden=16, depth=1), space=Euclidean(2))
    a = flow.sample(10, steps=4, generator=torch.Generator().manual_seed(7)).x
    b = flow.sample(10, steps=4, generator=torch.Generator().manual_seed(7)).x
    c = flow.sample(10, steps=4, generator=torch.Generator().manual_seed(8)).x
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_sample_follows_model_dtype():
    flow = Flow(MLP(2, hidden=8, depth=1).double(), space=Euclidean(2))
    assert flow.sample(3, steps=2).x.dtype == torch.float64


def test_custom_source():
    calls = {}

    def source(n, cond=None, device=None, dtype=None, generator=None):
        calls["n"] = n
        return torch.full((n, 2), 5.0, dtype=dtype)

    flow = Flow(GaussianOracle(), source=source)
    x0 = flow.sample_source(3, dtype=torch.float64)
    assert calls["n"] == 3 and torch.all(x0 == 5.0)
    assert torch.isfinite(flow.loss(torch.randn(8, 2, dtype=torch.float64)))


def test_temperature_scales_the_source_noise_only():
    flow = Flow(MLP(2, hidden=8), space=Euclidean(2))
    cold = flow.sample_source(4000, generator=torch.Generator().manual_seed(0))
    hot = flow.sample_source(4000, generator=torch.Generator().manual_seed(0), temperature=1.5)
    assert torch.allclose(hot, 1.5 * cold)  # same draws, scaled
    assert hot.std().item() == pytest.approx(1.5, rel=0.05)
    a = flow.sample(50, steps=2, temperature=2.0, generator=torch.Generator().manual_seed(1)).x
    x0 = 2.0 * flow.sample_source(50, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(a, flow.sample(x0=x0, steps=2).x, atol=1e-6)

    def shifted(n, cond=None, device=None, dtype=None, generator=None, temperature=1.0):
        return 5.0 + temperature * torch.randn(n, 2, generator=generator)

    src = Flow(MLP(2, hidden=8), source=shifted).sample_source(4000, temperature=0.1)
    assert src.mean().item() == pytest.approx(5.0, abs=0.01) and src.std().item() == pytest.approx(0.1, rel=0.05)

    def plain(n, cond=None, device=None, dtype=None, generator=None):
        return torch.zeros(n, 2)

    with pytest.raises(TypeError, match="temperature"):
        Flow(MLP(2, hidden=8), source=plain).sample_source(3, temperature=2.0)
    assert Flow(MLP(2, hidden=8), source=plain).sample_source(3).shape == (3, 2)  # temperature 1: untouched
    from sciflow.spaces.sphere import Sphere

    with pytest.raises(ValueError, match="Gaussian source"):
        Flow(MLP(3, hidden=8), space=Sphere(2)).sample_source(3, temperature=2.0)
    with pytest.raises(ValueError, match="> 0"):
        flow.sample_source(3, temperature=0.0)
    with pytest.raises(ValueError, match="given x0"):
        flow.sample(x0=x0, steps=2, temperature=2.0)


def test_constructor_errors():
    with pytest.raises(ValueError, match="space .* or a source"):
        Flow(MLP(2))
    with pytest.raises(ValueError, match="prediction 'score'"):
        Flow(MLP(2), space=Euclidean(2), prediction="score")
    with pytest.raises(ValueError, match="cond_dropout"):
        Flow(MLP(2), space=Euclidean(2), cond_dropout=1.0)
    with pytest.raises(ValueError, match="unknown sampler"):
        Flow(MLP(2), space=Euclidean(2)).sample(2, sampler="nope")


def test_components_from_names():
    flow = Flow(MLP(2), space=Euclidean(2), path=AffinePath("cosine"),
                time_sampler={"name": "logit_normal", "std": 0.5}, coupling="independent")
    assert type(flow.time_sampler).__name__ == "LogitNormalTime"
    assert "cosine" in repr(flow.path).lower()


def test_t_eps_keeps_training_times_inside():
    seen = []

    class Rec(GaussianOracle):
        def forward(self, x, t, cond=None):
            seen.append(t)
            return super().forward(x, t)

    flow = Flow(Rec("x1"), space=Euclidean(2), prediction="x1", t_eps=0.1)
    flow.loss(torch.randn(2000, 2, dtype=torch.float64))
    t = torch.cat(seen)
    assert t.min() >= 0.1 and t.max() <= 0.9


def _w2(a, b):
    import ot

    a, b = a.double().numpy(), b.double().numpy()
    m = ot.dist(a, b)  # squared Euclidean
    w = np.full(len(a), 1 / len(a))
    return math.sqrt(ot.emd2(w, w, m, numItermax=1_000_000))



def test_short_training_reaches_target_w2(one_thread):
    """A few seconds on one CPU core: 2-D anisotropic Gaussian target, W2 to held-out data below a threshold
    that the untrained model (and the source) miss by far."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    mu, std = MU.float(), STD.float()

    def data(n):
        return mu + std * torch.randn(n, 2, generator=g)

    flow = Flow(MLP(2, hidden=64, depth=2, time_dim=16), space=Euclidean(2))
    heldout = data(1000)
    before = _w2(flow.sample(1000, steps=20, generator=torch.Generator().manual_seed(1)).x, heldout)
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    for _ in range(400):
        loss = flow.loss(data(256))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = _w2(flow.sample(1000, sampler="midpoint", steps=20, generator=torch.Generator().manual_seed(1)).x, heldout)
    noise_floor = _w2(data(1000), heldout)
    assert before > 1.5
    print(f"W2 before {before:.3f} after {after:.3f} data-vs-data {noise_floor:.3f}")
    assert after < 0.35, (after, noise_floor)


def test_loss_equals_hand_written_cfm_with_same_random_draws():
    """Flow.loss draws x0 then t from the generator; replaying those draws by hand gives the same value."""
    torch.manual_seed(0)
    net = MLP(2, hidden=16, depth=1).double()
    flow = Flow(net, space=Euclidean(2))
    x1 = torch.randn(64, 2, dtype=torch.float64)
    got = flow.loss(x1, generator=torch.Generator().manual_seed(11))
    g = torch.Generator().manual_seed(11)
    x0 = torch.randn(64, 2, generator=g, dtype=torch.float64)
    t = torch.rand(64, generator=g, dtype=torch.float64)
    xt = t[:, None] * x1 + (1 - t[:, None]) * x0
    want = (net(xt, t) - (x1 - x0)).pow(2).mean()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_time_interval_defaults_and_overrides():
    assert Flow(GaussianOracle(), space=Euclidean(2)).time_interval() == (0.0, 1.0)
    lo, hi = Flow(GaussianOracle("x1"), space=Euclidean(2), prediction="x1").time_interval()
    assert lo == pytest.approx(1e-3) and hi == pytest.approx(1 - 1e-3)
    with pytest.raises(ValueError, match="t_eps"):
        Flow(GaussianOracle(), space=Euclidean(2), t_eps=0.5)
    flow = Flow(GaussianOracle("x1"), space=Euclidean(2), prediction="x1")
    x0 = torch.randn(300, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # rk4 on [1e-3, 1 - 1e-3]: close to the exact map, off by O(t_eps) only
    out = flow.sample(x0=x0, sampler="rk4", steps=20, return_trajectory=True)
    assert out.times[0].item() == pytest.approx(1e-3) and out.times[-1].item() == pytest.approx(1 - 1e-3)
    torch.testing.assert_close(out.x, MU + STD * x0, rtol=0, atol=2e-2)
    # an explicit interval on the sampler wins
    part = flow.sample(x0=x0, sampler={"name": "rk4", "t0": 0.2, "t1": 0.5}, steps=4, return_trajectory=True)
    assert part.times[0].item() == pytest.approx(0.2) and part.times[-1].item() == pytest.approx(0.5)
