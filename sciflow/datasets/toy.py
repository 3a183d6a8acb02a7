"""Built-in 2-D toy distributions for first runs, tests and benchmarks.

Every generator returns a float tensor of shape ``(n, 2)`` in roughly [-4, 4]^2 and draws from the
given ``torch.Generator`` so runs are reproducible. Names are registered under kind ``"dataset"``.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional

import torch

from sciflow.registry import register

Generator = Optional[torch.Generator]


def _randn(n, g, *shape):
    return torch.randn(n, *shape, generator=g)


def _rand(n, g, *shape):
    return torch.rand(n, *shape, generator=g)


@register("dataset", "eight_gaussians")
def eight_gaussians(n: int, generator: Generator = None, radius: float = 3.0, std: float = 0.3) -> torch.Tensor:
    """Mixture of 8 isotropic Gaussians (std ``std``) evenly spaced on a circle of ``radius``."""
    k = torch.randint(0, 8, (n,), generator=generator)
    angle = k.to(torch.get_default_dtype()) * (2 * math.pi / 8)
    centres = radius * torch.stack([torch.cos(angle), torch.sin(angle)], -1)
    return centres + std * _randn(n, generator, 2)


@register("dataset", "moons")
def moons(n: int, generator: Generator = None, noise: float = 0.1) -> torch.Tensor:
    """Two interleaving half circles (scikit-learn's definition), scaled by 2 and centred."""
    upper = _rand(n, generator) < 0.5
    theta = math.pi * _rand(n, generator)
    x = torch.where(upper, torch.cos(theta), 1 - torch.cos(theta))
    y = torch.where(upper, torch.sin(theta), 0.5 - torch.sin(theta))
    pts = torch.stack([x - 0.5, y - 0.25], -1) * 2.0
    return pts + noise * 2.0 * _randn(n, generator, 2)


@register("dataset", "checkerboard")
def checkerboard(n: int, generator: Generator = None, squares: int = 4) -> torch.Tensor:
    """Uniform on the dark squares of a ``squares x squares`` board covering [-4, 4]^2 (squares even)."""
    if squares % 2:
        raise ValueError(f"checkerboard needs an even number of squares, got {squares}")
    size = 8.0 / squares
    cell = torch.randint(0, squares * squares // 2, (n,), generator=generator)
    row = cell // (squares // 2)
    col = 2 * (cell % (squares // 2)) + (row % 2)
    offset = _rand(n, generator, 2) * size
    return torch.stack([col, row], -1).to(offset.dtype) * size - 4.0 + offset


@register("dataset", "circles")
def circles(n: int, generator: Generator = None, noise: float = 0.08) -> torch.Tensor:
    """Two concentric circles of radii 1.5 and 3 with Gaussian jitter."""
    r = torch.where(_rand(n, generator) < 0.5, 1.5, 3.0)
    theta = 2 * math.pi * _rand(n, generator)
    pts = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], -1)
    return pts + noise * _randn(n, generator, 2)


@register("dataset", "spirals")
def spirals(n: int, generator: Generator = None, noise: float = 0.1) -> torch.Tensor:
    """Two interleaved Archimedean spirals."""
    s = torch.sqrt(_rand(n, generator)) * 3 * math.pi
    sign = torch.where(_rand(n, generator) < 0.5, -1.0, 1.0)
    pts = sign[:, None] * torch.stack([s * torch.cos(s), s * torch.sin(s)], -1) / 2.5
    return pts + noise * _randn(n, generator, 2)


@register("dataset", "gaussian")
def gaussian(n: int, generator: Generator = None, mean: float = 2.0, std: float = 0.5) -> torch.Tensor:
    """Isotropic Gaussian N(mean * 1, std^2 I) in 2-D (closed-form reference for tests)."""
    return mean + std * _randn(n, generator, 2)


TOY_DATASETS: Dict[str, Callable[..., torch.Tensor]] = {
    "eight_gaussians": eight_gaussians, "moons": moons, "checkerboard": checkerboard,
    "circles": circles, "spirals": spirals, "gaussian": gaussian,
}


def sample_toy(name: str, n: int, seed: Optional[int] = None, **kwargs) -> torch.Tensor:
    """Draw ``n`` points ``(n, 2)`` from the toy distribution ``name`` (see :data:`TOY_DATASETS`)."""
    if name not in TOY_DATASETS:
        raise ValueError(f"unknown toy dataset '{name}'; choose one of {sorted(TOY_DATASETS)}")
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    return TOY_DATASETS[name](n, generator=g, **kwargs)
