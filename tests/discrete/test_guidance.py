"""Guidance for discrete and Dirichlet flows: scale 0 / 1 equal the unconditional / conditional models."""
import torch

from oracles import JointOracle
from sciflow import Flow
from sciflow.guidance.discrete import (classifier_grad, classifier_log_ratios, classifier_log_weights,
                                       dirichlet_classifier_probs)
from sciflow.paths.dirichlet import DirichletPath
from sciflow.paths.discrete import MixturePath
from sciflow.samplers.ctmc import CTMCSampler
from sciflow.samplers.product import ProductSampler
from sciflow.spaces import Simplex, Tokens

PIS = torch.tensor([[0.5, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05],
                    [0.02, 0.02, 0.02, 0.02, 0.1, 0.1, 0.1, 0.1, 0.52]], dtype=torch.float64)


def _discrete_flow():
    path = MixturePath(3, source="mask")
    return Flow(JointOracle(PIS, 2, 3, path), space=Tokens(2, 3), path=path, prediction="logits")


def _run(flow, cond, scale, sampler):
    torch.manual_seed(7)
    return flow.sample(cond=cond, sampler=sampler, guidance_scale=scale).x


def test_discrete_cfg_scale_0_and_1():
    flow = _discrete_flow()
    cond = torch.tensor([0, 1] * 100)
    s = CTMCSampler(steps=8)
    assert torch.equal(_run(flow, cond, 1.0, s), _run(flow, cond, 1.0, s))  # seeded: deterministic
    assert torch.equal(_run(flow, cond, 0.0, s), _run(flow, torch.full_like(cond, -1), 1.0, s))
    guided = _run(flow, cond, 3.0, s)
    assert guided.shape == (200, 2) and int(guided.max()) < 3


def test_discrete_classifier_guidance_scale_1_is_exact_conditional_rate():
    """Masked path: p_u(y) p(c | x^{i<-y}) / p(c | x) == p_c(y) (Bayes), for the exact classifier."""
    flow = _discrete_flow()
    oracle = flow.model
    x = torch.tensor([[3, 3], [0, 3], [3, 2], [1, 3]])
    t = torch.full((4,), 0.4, dtype=torch.float64)
    cond = torch.tensor([1, 0, 1, 1])

    def log_classifier(xx, tt):
        post = oracle.joint_posterior(xx, tt)  # p(x1 | x_t) under the label-marginal prior
        joint = post.unsqueeze(1) * PIS.unsqueeze(0) * 0.5 / (0.5 * PIS).sum(0)  # p(x1, c | x_t)
        return torch.log(joint.sum(-1))

    ratio = classifier_log_ratios(x, t, cond, log_classifier, 4, 3, mode="exact")
    logp_u = torch.log_softmax(oracle(x, t), -1)
    logp_c = torch.log_softmax(oracle(x, t, cond), -1)
    masked = (x == 3).unsqueeze(-1).expand_as(logp_u)
    at1 = classifier_log_weights(logp_u, ratio, 1.0)
    assert torch.allclose(at1[masked], logp_c[masked], atol=1e-10)
    assert torch.equal(classifier_log_weights(logp_u, ratio, 0.0), logp_u)
    # sampler-level: scale 0 is the unconditional model
    sampler = CTMCSampler(steps=6, classifier=log_classifier)
    torch.manual_seed(3)
    a = flow.sample(cond=torch.tensor([1] * 50), sampler=sampler, guidance_scale=0.0).x
    torch.manual_seed(3)
    b = flow.sample(50, sampler=CTMCSampler(steps=6)).x
    assert torch.equal(a, b)


def test_taylor_ratio_is_exact_for_a_linear_log_classifier():
    w = torch.randn(2, 3, 5, dtype=torch.float64)  # (classes, L, states)

    def lin(xx, tt):
        oh = torch.nn.functional.one_hot(xx, 5).to(torch.float64) if not xx.is_floating_point() else xx
        return torch.einsum("bls,cls->bc", oh, w)

    x = torch.tensor([[4, 1, 2], [0, 4, 4]])
    t = torch.full((2,), 0.3, dtype=torch.float64)
    cond = torch.tensor([1, 0])
    exact = classifier_log_ratios(x, t, cond, lin, 5, 4, mode="exact")
    taylor = classifier_log_ratios(x, t, cond, lin, 5, 4, mode="taylor")
    assert torch.allclose(exact, taylor, atol=1e-10)


class DirichletOracle(torch.nn.Module):
    """Exact posterior logits for categorical targets PI_c (K = 3) under the Dirichlet path."""

    def __init__(self, path, pis):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.path, self.pis = path, pis

    def forward(self, x, t, cond=None):
        marg = self.pis.mean(0)
        prior = marg.expand(x.shape[0], -1) if cond is None else torch.where(
            (cond < 0)[:, None], marg, self.pis[cond.clamp_min(0)])
        return torch.log(self.path.posterior_probs(x, t, prior))


DPIS = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=torch.float64)


def test_dirichlet_cfg_scale_0_and_1_and_classifier_guidance_exact():
    path = DirichletPath(3, coefficient="quadrature", nodes=48)
    flow = Flow(DirichletOracle(path, DPIS), space=Simplex(3), path=path, prediction="logits")
    torch.manual_seed(0)
    x0 = Simplex(3).random_base(64, dtype=torch.float64)
    cond = torch.tensor([0, 1] * 32)
    s = ProductSampler(steps=10)
    run = lambda c, w: flow.sample(x0=x0, cond=c, sampler=s, guidance_scale=w).x  # noqa: E731
    assert torch.allclose(run(cond, 0.0), run(torch.full_like(cond, -1), 1.0), atol=1e-12)
    assert torch.allclose(run(cond, 1.0), run(cond, 1.0), atol=0)
    assert not torch.allclose(run(cond, 1.0), run(cond, 0.0))
    assert torch.allclose(run(cond, 2.0).sum(-1), torch.ones(64, dtype=torch.float64), atol=1e-9)

    # classifier guidance: exact p(c | x_t) = sum_i p(x1 = i | x_t) p(c | i)
    def log_classifier(xx, tt):
        post = path.posterior_probs(xx, tt, DPIS.mean(0).expand(xx.shape[0], -1))
        pc_given_i = (DPIS / DPIS.sum(0)).T  # (K, C) with uniform label prior
        return torch.log(post @ pc_given_i)

    x = Simplex(3).random_base(32, dtype=torch.float64)
    t = torch.full((32,), 0.35, dtype=torch.float64)
    c = torch.tensor([0, 1] * 16)
    p_u = torch.softmax(flow.model(x, t), -1)
    p_c = torch.softmax(flow.model(x, t, c), -1)
    g = classifier_grad(x, t, c, log_classifier)
    assert torch.allclose(dirichlet_classifier_probs(p_u, x, g, path.score_scale(t), 1.0), p_c, atol=1e-10)
    assert torch.equal(dirichlet_classifier_probs(p_u, x, g, path.score_scale(t), 0.0), p_u)
    # sampler-level scale 0 equals the unconditional model
    a = flow.sample(x0=x0, cond=cond, sampler=ProductSampler(steps=10, classifier=log_classifier), guidance_scale=0.0).x
    assert torch.allclose(a, flow.sample(x0=x0, sampler=s).x, atol=1e-12)
