"""Mixture paths (masked/uniform) and the CTMC sampler against closed forms and exact-posterior oracles."""
import pytest
import torch

from oracles import JointOracle, empirical_joint
from sciflow import Flow
from sciflow.paths.discrete import MixturePath
from sciflow.samplers.ctmc import CTMCSampler
from sciflow.spaces import Tokens


@pytest.mark.parametrize("source", ["mask", "uniform"])
@pytest.mark.parametrize("sched", ["linear", {"name": "polynomial", "n": 2.0}, "cosine"])
def test_path_marginals_match_closed_form(source, sched):
    torch.manual_seed(0)
    v, n = 5, 40000
    path = MixturePath(v, source=source, scheduler=sched)
    space = Tokens(1, v, source=source)
    x1 = torch.full((n, 1), 2)
    t = torch.full((n,), 0.37)
    xt = path.sample(space.random_base(n), x1, t).x_t
    emp = torch.bincount(xt[:, 0], minlength=path.num_states).double() / n
    exact = path.marginal_probs(x1[:1], t[:1].double())[0, 0]
    k = float(path.kappa(t[:1].double())[0])
    expect_data = k + (1 - k) / v if source == "uniform" else k
    assert abs(float(exact[2]) - expect_data) < 1e-12
    assert torch.allclose(emp, exact, atol=0.01), (emp, exact)


def test_rates_are_a_generator_and_zero_at_unmasked():
    path = MixturePath(4, source="mask")
    x = torch.tensor([[4, 1, 4]])
    logits = torch.randn(1, 3, 4)
    u = path.velocity(logits, x, torch.tensor([0.3]))
    assert u.shape == (1, 3, 5)
    assert torch.allclose(u.sum(-1), torch.zeros(1, 3), atol=1e-6)
    assert (u[0, 1] == 0).all()  # unmasked position never moves
    c = 1 / (1 - 0.3)
    assert torch.allclose(u[0, 0, :4], c * torch.softmax(logits[0, 0], -1), atol=1e-6)


def test_losses_and_bad_inputs():
    path = MixturePath(3, source="uniform", loss="generalized_kl")
    space = Tokens(4, 3, source="uniform")
    x1 = torch.randint(0, 3, (8, 4))
    s = path.sample(space.random_base(8), x1, torch.rand(8))
    assert path.loss(torch.randn(8, 4, 3), s).shape == (8,)
    with pytest.raises(ValueError, match="logits must have shape"):
        path.loss(torch.randn(8, 4, 4), s)
    with pytest.raises(TypeError, match="long tensor"):
        path.sample(space.random_base(8), x1.float(), torch.rand(8))
    with pytest.raises(ValueError, match="ids"):
        path.sample(space.random_base(8), x1 + 5, torch.rand(8))


def _tv(p, q):
    return 0.5 * float((p - q).abs().sum())


@pytest.mark.parametrize("source", ["mask", "uniform"])
def test_ctmc_with_exact_posterior_reproduces_joint_target(source):
    """A correlated target on V^L = 3^2 states: exact posterior + CTMC steps -> target (TV < 0.03)."""
    torch.manual_seed(1)
    v, length = 3, 2
    pi = torch.tensor([0.30, 0.02, 0.05, 0.02, 0.25, 0.03, 0.05, 0.03, 0.25], dtype=torch.float64)
    path = MixturePath(v, source=source)
    flow = Flow(JointOracle(pi, length, v, path), space=Tokens(length, v, source=source), path=path,
                prediction="logits")
    res = flow.sample(8000, sampler="ctmc", steps=50)
    assert res.nfe == 50 and res.x.dtype == torch.long and res.x.shape == (8000, 2)
    assert int(res.x.max()) < v  # no mask left
    assert _tv(empirical_joint(res.x, v), pi) < 0.03


def test_ctmc_single_position_is_exact_with_few_steps():
    """For one position the mixture step is the exact transition: 3 steps reproduce pi."""
    torch.manual_seed(2)
    pi = torch.tensor([0.6, 0.1, 0.3], dtype=torch.float64)
    path = MixturePath(3, source="uniform", scheduler="cosine")
    flow = Flow(JointOracle(pi, 1, 3, path), space=Tokens(1, 3, source="uniform"), path=path, prediction="logits")
    x = flow.sample(20000, sampler="ctmc", steps=3).x
    assert _tv(empirical_joint(x, 3), pi) < 0.015


def test_ctmc_corrector_keeps_target():
    torch.manual_seed(3)
    v, length = 3, 2
    pi = torch.tensor([0.30, 0.02, 0.05, 0.02, 0.25, 0.03, 0.05, 0.03, 0.25], dtype=torch.float64)
    path = MixturePath(v, source="mask")
    flow = Flow(JointOracle(pi, length, v, path), space=Tokens(length, v), path=path, prediction="logits")
    x = flow.sample(8000, sampler=CTMCSampler(steps=50, corrector=1.0)).x
    assert int(x.max()) < v
    assert _tv(empirical_joint(x, v), pi) < 0.03


def test_ctmc_rejects_wrong_path():
    from sciflow.paths import AffinePath

    flow = Flow(torch.nn.Linear(2, 2), space=Tokens(2, 3), path=AffinePath())
    with pytest.raises(TypeError, match="MixturePath"):
        CTMCSampler(steps=2)(flow, torch.zeros(2, 2, dtype=torch.long))


def test_ctmc_sampling_is_reproducible_with_a_generator():
    import torch

    from sciflow import Flow
    from sciflow.paths import MixturePath
    from sciflow.spaces import Tokens

    class Uniformish(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.linspace(-1, 1, 5))

        def forward(self, x, t, cond=None):
            return self.bias.expand(*x.shape, 5)

    flow = Flow(Uniformish(), space=Tokens(8, 5, source="mask"), path=MixturePath(5, source="mask"), prediction="logits")
    a = flow.sample(64, sampler="ctmc", steps=6, generator=torch.Generator().manual_seed(3)).x
    b = flow.sample(64, sampler="ctmc", steps=6, generator=torch.Generator().manual_seed(3)).x
    c = flow.sample(64, sampler="ctmc", steps=6, generator=torch.Generator().manual_seed(4)).x
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() < 5  # no mask tokens left at t = 1
