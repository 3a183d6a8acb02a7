"""The flat torus T^d = (S^1)^d in angle coordinates.

States are angles of shape ``(B, d)`` in [-pi, pi); tangent vectors are arbitrary ``(B, d)`` vectors
(angular velocities). The metric is flat, so::

    exp_x(v) = wrap(x + v),   log_x(y) = wrap(y - x),   d(x, y) = |wrap(y - x)|

with wrap(a) = ((a + pi) mod 2 pi) - pi. At the cut locus (a coordinate difference of exactly pi) the
log picks -pi for that coordinate, deterministically. Base distribution: uniform, density
1 / (2 pi)^d. Networks usually want periodic features (cos x, sin x); see
:class:`sciflow.spaces.torus.PeriodicFeatures`.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import nn

from sciflow.registry import register
from sciflow.spaces.manifold import Manifold, bexpand


def wrap(a: torch.Tensor) -> torch.Tensor:
    """Map angles to [-pi, pi)."""
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi


@register("space", "torus")
class Torus(Manifold):
    """T^d with angle coordinates in [-pi, pi).

    Args:
        dim: number of angles d >= 1.
    """

    def __init__(self, dim: int = 2):
        if int(dim) < 1:
            raise ValueError(f"Torus dim must be >= 1, got {dim}")
        self.d = int(dim)
        self.event_shape = (self.d,)

    def __repr__(self) -> str:
        return f"Torus(dim={self.d})"

    @property
    def dim(self) -> int:
        return self.d

    def volume(self) -> float:
        return (2 * math.pi) ** self.d

    def proj(self, x: torch.Tensor) -> torch.Tensor:
        return wrap(x)

    def proj_tangent(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return v

    def inner(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (u * v).sum(-1)

    def exp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return wrap(x + v)

    def log(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return wrap(y - x)

    def dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return wrap(y - x).norm(dim=-1)

    def geodesic(self, x: torch.Tensor, v: torch.Tensor, s: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return wrap(x + bexpand(s, v) * v), v

    def random_base(self, n: int, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
        u = torch.rand((n, self.d), device=device, dtype=dtype, generator=generator)
        return (2 * u - 1) * math.pi

    def base_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full(x.shape[:1], -self.d * math.log(2 * math.pi), device=x.device, dtype=x.dtype)

    def on_manifold_error(self, x: torch.Tensor) -> torch.Tensor:
        return (x.abs() - math.pi).clamp_min(0).amax(-1)


class PeriodicFeatures(nn.Module):
    """Wrap a network so it sees (cos x, sin x) instead of raw angles: ``net`` takes ``(B, 2d)`` inputs
    and must return ``(B, d)`` outputs (build it with ``shape=2d`` and slice, or pass ``out_slice``).

    Args:
        net: network ``net(features, t, cond=None)`` on features of shape ``(B, 2 d)``.
        d: number of angles; the output is ``net(...)[:, :d]``.
    """

    def __init__(self, net: nn.Module, d: int):
        super().__init__()
        self.net, self.d = net, int(d)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        feats = torch.cat([torch.cos(x), torch.sin(x)], -1)
        out = self.net(feats, t, cond) if cond is not None else self.net(feats, t)
        return out[:, : self.d]
