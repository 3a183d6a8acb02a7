"""The closed-form target densities of the T^2 / SO(3) benchmark are normalised and match their samplers."""
import math

import torch

from sciflow.benchmarks.riemannian import IGSO3Mixture, WrappedNormalMixtureT2
from sciflow.spaces import SO3, Torus
from sciflow.spaces.so3 import exp_so3, random_rotations


def _torus_target():
    return WrappedNormalMixtureT2([[-2.0, -1.0], [2.9, 3.0]], [[0.3, 0.5], [0.6, 0.25]], [0.6, 0.4])


def test_wrapped_normal_mixture_integrates_to_one_on_torus():
    target = _torus_target()
    n = 400  # midpoint rule on a 400 x 400 grid of [-pi, pi)^2 (periodic, smooth: spectrally accurate)
    a = -math.pi + (torch.arange(n, dtype=torch.float64) + 0.5) * 2 * math.pi / n
    xx, yy = torch.meshgrid(a, a, indexing="ij")
    p = target.log_prob(torch.stack([xx.flatten(), yy.flatten()], -1)).exp()
    assert abs(float(p.sum()) * (2 * math.pi / n) ** 2 - 1) < 1e-8


def test_wrapped_normal_mixture_samples_follow_density():
    target = _torus_target()
    g = torch.Generator().manual_seed(0)
    x = target.sample(20000, g)
    Torus(2).check(x)
    # entropy two ways: MC mean of -log p on samples vs grid quadrature of -p log p
    mc = float(-target.log_prob(x).mean())
    n = 300
    a = -math.pi + (torch.arange(n, dtype=torch.float64) + 0.5) * 2 * math.pi / n
    xx, yy = torch.meshgrid(a, a, indexing="ij")
    lp = target.log_prob(torch.stack([xx.flatten(), yy.flatten()], -1))
    quad = float(-(lp.exp() * lp).sum()) * (2 * math.pi / n) ** 2
    assert abs(mc - quad) < 0.03


def test_igso3_mixture_is_normalised_and_matches_its_sampler():
    so3 = SO3()
    centres = exp_so3(torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.5, -1.0]], dtype=torch.float64))
    target = IGSO3Mixture(centres, [0.5, 0.7], [0.5, 0.5])
    g = torch.Generator().manual_seed(0)
    # normalisation: E_uniform[p] * vol(SO(3)) = 1 (Monte Carlo with Haar samples)
    u = random_rotations(200000, dtype=torch.float64, generator=g)
    est = float(target.log_prob(u).exp().mean()) * so3.volume()
    assert abs(est - 1) < 0.02
    # samples: their MC entropy equals the importance-sampled entropy under the uniform proposal
    x = target.sample(20000, g)
    so3.check(x)
    mc = float(-target.log_prob(x).mean())
    lp = target.log_prob(u)
    is_entropy = float(-(lp.exp() * lp).mean()) * so3.volume()
    assert abs(mc - is_entropy) < 0.05
