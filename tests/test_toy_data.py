"""Built-in toy distributions: shapes, reproducibility, and distribution facts that could fail."""
import math

import pytest
import torch

from sciflow.datasets import TOY_DATASETS, sample_toy


@pytest.mark.parametrize("name", sorted(TOY_DATASETS))
def test_shape_range_and_seed(name):
    a, b = sample_toy(name, 4000, seed=1), sample_toy(name, 4000, seed=1)
    assert a.shape == (4000, 2) and torch.equal(a, b)
    assert a.abs().max() < 6


def test_eight_gaussians_has_eight_modes_on_the_circle():
    x = sample_toy("eight_gaussians", 8000, seed=0)
    angle = torch.atan2(x[:, 1], x[:, 0])
    sector = torch.round(angle / (2 * math.pi / 8)).remainder(8).long()
    counts = torch.bincount(sector, minlength=8).float()
    assert (counts / 8000 - 1 / 8).abs().max() < 0.02
    assert (x.norm(dim=1).mean() - 3.0).abs() < 0.05


def test_checkerboard_only_fills_dark_squares():
    x = sample_toy("checkerboard", 4000, seed=0)
    col, row = torch.floor((x + 4) / 2).long().unbind(1)
    assert ((col + row) % 2 == 0).all()


def test_gaussian_moments():
    x = sample_toy("gaussian", 20000, seed=0)
    assert torch.allclose(x.mean(0), torch.tensor([2.0, 2.0]), atol=0.02)
    assert torch.allclose(x.std(0), torch.tensor([0.5, 0.5]), atol=0.02)


def test_unknown_dataset_is_named():
    with pytest.raises(ValueError, match="moons"):
        sample_toy("moon", 10)
