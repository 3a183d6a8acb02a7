"""Euclidean space R^d with a standard Gaussian base distribution."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch

from sciflow.registry import register
from sciflow.spaces.base import Space


@register("space", "euclidean")
class Euclidean(Space):
    """R^{event_shape} with the flat metric; base distribution N(0, I).

    Args:
        shape: event shape of one state, an int ``d`` or a tuple such as ``(n_particles, 3)``.
    """

    is_euclidean = True

    def __init__(self, shape: Union[int, Sequence[int]]):
        self.event_shape = (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)
        if any(s <= 0 for s in self.event_shape):
            raise ValueError(f"shape must be positive, got {self.event_shape}")

    def __repr__(self) -> str:
        return f"Euclidean(shape={self.event_shape})"

    @property
    def dim(self) -> int:
        return math.prod(self.event_shape)

    def exp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return x + v

    def log(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y - x

    def dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (y - x).flatten(1).norm(dim=-1)

    def random_base(
        self,
        n: int,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        return torch.randn((n, *self.event_shape), device=device, dtype=dtype, generator=generator)

    def base_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        sq = x.flatten(1).pow(2).sum(-1)
        return -0.5 * sq - 0.5 * self.dim * math.log(2 * math.pi)
