"""Distribution distances against closed forms and scipy."""
import math

import numpy as np
import pytest
import scipy.stats
import torch

from sciflow.metrics import energy_distance, mmd, w1, w2, wasserstein
from sciflow.registry import get


def test_wasserstein_of_shifted_copies_is_the_shift():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 3, generator=g, dtype=torch.float64)
    shift = torch.tensor([0.3, -1.2, 0.4], dtype=torch.float64)
    # translating a measure: W_p = |shift| for every p (the translation is the optimal map, Jensen)
    assert w2(x, x + shift) == pytest.approx(float(shift.norm()), rel=1e-9)
    assert w1(x, x + shift) == pytest.approx(float(shift.norm()), rel=1e-9)
    assert w2(x, x) == pytest.approx(0.0, abs=1e-12)


def test_wasserstein_hand_case_and_1d_scipy():
    x = torch.tensor([[0.0], [1.0]])
    y = torch.tensor([[0.0], [3.0]])
    assert w2(x, y) == pytest.approx(math.sqrt(0.5 * 4))      # pairs (0,0), (1,3)
    assert wasserstein(x, y, p=3) == pytest.approx((0.5 * 8) ** (1 / 3))
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(60, generator=g), torch.rand(45, generator=g) * 3
    assert w1(a[:, None], b[:, None]) == pytest.approx(scipy.stats.wasserstein_distance(a.numpy(), b.numpy()), rel=1e-5)


def test_mmd_identical_near_zero_and_separated_large():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(200, 2, generator=g)
    x2 = torch.randn(200, 2, generator=g)
    y = torch.randn(200, 2, generator=g) + 3.0
    assert abs(mmd(x, x2)) < 0.02
    assert mmd(x, x, unbiased=False) == pytest.approx(0.0, abs=1e-6)
    assert mmd(x, y) > 0.5
    assert mmd(x, y, bandwidths=[0.5, 1.0, 2.0]) > 0.5
    # biased = unbiased + positive diagonal correction
    assert mmd(x, x2, unbiased=False) > mmd(x, x2, unbiased=True)
    # closed form for one point each: 2 - 2 exp(-d^2 / 2h^2)
    assert mmd(torch.zeros(1, 1), torch.ones(1, 1), bandwidths=1.0, unbiased=False) == pytest.approx(2 - 2 * math.exp(-0.5), rel=1e-6)


def test_energy_distance_matches_scipy_squared():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(70, generator=g, dtype=torch.float64)
    b = torch.randn(50, generator=g, dtype=torch.float64) * 2 + 1
    ref = scipy.stats.energy_distance(a.numpy(), b.numpy())
    assert energy_distance(a[:, None], b[:, None]) == pytest.approx(ref ** 2, rel=1e-9)
    assert energy_distance(a[:, None], b[:, None], unbiased=True) > energy_distance(a[:, None], b[:, None]) - 0.1
    assert energy_distance(a[:, None], a[:, None]) == pytest.approx(0.0, abs=1e-12)


def test_registry_and_errors():
    x = torch.randn(10, 2)
    assert get("metric", "w2")(x, x + 1) == pytest.approx(math.sqrt(2), rel=1e-5)
    for name in ("w1", "mmd", "energy"):
        assert isinstance(get("metric", name)(x, x + 1), float)
    with pytest.raises(ValueError, match="event size"):
        w2(x, torch.randn(10, 3))
    with pytest.raises(ValueError, match="finite"):
        mmd(x, torch.full((10, 2), float("nan")))
    with pytest.raises(ValueError, match="bandwidths"):
        mmd(x, x, bandwidths=[-1.0])
