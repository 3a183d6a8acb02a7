"""Training-time samplers: ranges, location statistics, seeding, validation."""
import pytest
import torch

from sciflow.paths import BetaTime, LogitNormalTime, UniformTime, build_time_sampler

N = 40_000


def test_uniform_range_and_moments():
    g = torch.Generator().manual_seed(0)
    t = UniformTime()(N, generator=g, dtype=torch.float64)
    assert t.shape == (N,) and t.dtype == torch.float64
    assert t.min() >= 0 and t.max() < 1
    assert abs(t.mean().item() - 0.5) < 0.01
    assert abs(t.var().item() - 1 / 12) < 0.003


def test_logit_normal_median_and_range():
    g = torch.Generator().manual_seed(1)
    t = LogitNormalTime(0.0, 1.0)(N, generator=g)
    assert t.min() > 0 and t.max() < 1
    assert abs(t.median().item() - 0.5) < 0.01
    # shifted location: median is sigmoid(mean)
    t2 = LogitNormalTime(1.0, 0.5)(N, generator=g)
    assert abs(t2.median().item() - torch.sigmoid(torch.tensor(1.0)).item()) < 0.01
    # logit(t) ~ N(mean, std)
    z = torch.logit(t2.double())
    assert abs(z.std().item() - 0.5) < 0.02


@pytest.mark.parametrize("a,b", [(0.5, 0.5), (2.0, 5.0), (3.0, 1.0), (0.2, 0.8)])
def test_beta_mean(a, b):
    t = BetaTime(a, b)(N, generator=torch.Generator().manual_seed(2))
    assert t.shape == (N,)
    assert t.min() >= 0 and t.max() <= 1
    assert abs(t.mean().item() - a / (a + b)) < 0.01
    var = a * b / ((a + b) ** 2 * (a + b + 1))
    assert abs(t.var().item() - var) < 0.1 * var


def test_seeded_generators_reproduce():
    for s in (UniformTime(), LogitNormalTime(), BetaTime(0.5, 0.5), BetaTime(2.0, 5.0)):
        a = s(10, generator=torch.Generator().manual_seed(5))
        torch.manual_seed(123)  # the global RNG must not matter
        b = s(10, generator=torch.Generator().manual_seed(5))
        assert torch.equal(a, b), s
        assert not torch.equal(a, s(10, generator=torch.Generator().manual_seed(6)))


@pytest.mark.parametrize("alpha", [0.3, 1.0, 4.5])
def test_gamma_sample_moments(alpha):
    from sciflow.paths.time import gamma_sample

    x = gamma_sample(torch.full((200_000,), alpha, dtype=torch.float64), torch.Generator().manual_seed(0))
    assert (x > 0).all()
    assert x.mean().item() == pytest.approx(alpha, rel=0.02)      # Gamma(alpha, 1): mean = var = alpha
    assert x.var().item() == pytest.approx(alpha, rel=0.05)


def test_build_time_sampler_and_validation():
    assert isinstance(build_time_sampler("uniform"), UniformTime)
    ln = build_time_sampler({"name": "logit_normal", "mean": 0.3, "std": 2})
    assert isinstance(ln, LogitNormalTime) and ln.mean == 0.3 and ln.std == 2.0
    with pytest.raises(ValueError):
        LogitNormalTime(std=0)
    with pytest.raises(ValueError):
        BetaTime(0, 1)
    with pytest.raises(ValueError, match="unknown time_sampler"):
        build_time_sampler("nope")
    with pytest.raises(TypeError):
        build_time_sampler(1.5)
