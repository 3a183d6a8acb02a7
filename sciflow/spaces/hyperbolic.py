"""Hyperbolic space H^d (curvature -1) in the Lorentz (hyperboloid) model.

States are ``(B, d + 1)`` points with <x, x>_L = -1 and x_0 > 0, where <u, v>_L = -u_0 v_0 + sum_i u_i v_i
is the Minkowski form; tangent vectors at x satisfy <x, v>_L = 0 and the metric is <u, v>_L. Closed forms
(e.g. Nickel & Kiela 2018; Nagano et al. 2019)::

    exp_x(v) = cosh|v|_L x + sinh|v|_L v/|v|_L
    d(x, y)  = arccosh(-<x, y>_L) = 2 asinh(|x - y|_L / 2)       (second form: accurate at small d)
    log_x(y) = d / sinh(d) (y + <x, y>_L x)

Projections: onto the manifold by lifting x_0 = sqrt(1 + |x_{1:}|^2); onto the tangent space by
v + <x, v>_L x (Minkowski-orthogonal, not Euclidean-orthogonal). Hyperbolic space has no cut locus, so
log is defined everywhere.

Base distribution: the wrapped normal at the origin mu_0 = (1, 0, ..., 0) (Nagano et al. 2019): draw
u ~ N(0, std^2 I_d) in T_{mu_0} H^d and map x = exp_{mu_0}(u); its log-density w.r.t. the hyperbolic
volume is log N(u; 0, std^2 I) - (d - 1) log(sinh r / r), r = |u| = d(mu_0, x).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from sciflow.registry import register
from sciflow.spaces.manifold import Manifold, bexpand, sinhc


def minkowski(u: torch.Tensor, v: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """Minkowski form -u_0 v_0 + sum_i u_i v_i over the last axis."""
    p = u * v
    out = p[..., 1:].sum(-1) - p[..., 0]
    return out.unsqueeze(-1) if keepdim else out


def _lnorm(v: torch.Tensor, keepdim: bool = True) -> torch.Tensor:
    """sqrt(max(<v, v>_L, 0)) with a zero (not NaN) gradient at 0."""
    sq = minkowski(v, v, keepdim=keepdim)
    pos = sq > 0
    return torch.where(pos, torch.where(pos, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


@register("space", "hyperbolic")
class Hyperbolic(Manifold):
    """H^d in the Lorentz model.

    Args:
        dim: intrinsic dimension d >= 1 (states have d + 1 coordinates).
        std: standard deviation of the wrapped-normal base at the origin.
    """

    orthogonal_projection = False

    def __init__(self, dim: int = 2, std: float = 1.0):
        if int(dim) < 1:
            raise ValueError(f"Hyperbolic dim must be >= 1, got {dim}")
        if not std > 0:
            raise ValueError(f"Hyperbolic std must be > 0, got {std}")
        self.d = int(dim)
        self.std = float(std)
        self.event_shape = (self.d + 1,)

    def __repr__(self) -> str:
        return f"Hyperbolic(dim={self.d}, std={self.std})"

    @property
    def dim(self) -> int:
        return self.d

    def origin(self, n: int, device=None, dtype=None) -> torch.Tensor:
        o = torch.zeros((n, self.d + 1), device=device, dtype=dtype)
        o[:, 0] = 1
        return o

    def proj(self, x: torch.Tensor) -> torch.Tensor:
        sp = x[..., 1:]
        return torch.cat([torch.sqrt(1 + sp.pow(2).sum(-1, keepdim=True)), sp], -1)

    def proj_tangent(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return v + minkowski(x, v, keepdim=True) * x

    def inner(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return minkowski(u, v)

    def exp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        n = _lnorm(v)
        return self.proj(torch.cosh(n) * x + sinhc(n) * v)

    def geodesic(self, x: torch.Tensor, v: torch.Tensor, s: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        n = _lnorm(v)
        sb = bexpand(s, v)
        sn = sb * n
        xs = self.proj(torch.cosh(sn) * x + sinhc(sn) * sb * v)
        dxs = n * torch.sinh(sn) * x + torch.cosh(sn) * v
        return xs, self.proj_tangent(xs, dxs)

    def dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 2 * torch.asinh(0.5 * _lnorm(x - y, keepdim=False))

    def log(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        diff = y - x
        half_sq = 0.5 * minkowski(diff, diff, keepdim=True).clamp_min(0)  # = -<x,y>_L - 1 >= 0
        u = diff - half_sq * x  # = y + <x, y>_L x, computed without cancellation
        d = 2 * torch.asinh(torch.sqrt(half_sq / 2))
        return u / sinhc(d)

    def random_base(self, n: int, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
        u = self.std * torch.randn((n, self.d), device=device, dtype=dtype, generator=generator)
        v = torch.cat([torch.zeros_like(u[:, :1]), u], -1)
        return self.exp(self.origin(n, device=u.device, dtype=u.dtype), v)

    def base_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        u = self.log(self.origin(x.shape[0], device=x.device, dtype=x.dtype), x)[..., 1:]
        r = u.norm(dim=-1)
        gauss = -0.5 * (u / self.std).pow(2).sum(-1) - self.d * math.log(self.std * math.sqrt(2 * math.pi))
        return gauss - (self.d - 1) * torch.log(sinhc(r))

    def on_manifold_error(self, x: torch.Tensor) -> torch.Tensor:
        err = (minkowski(x, x) + 1).abs() / (1 + x[..., 0].abs())
        return torch.where(x[..., 0] > 0, err, torch.full_like(err, float("inf")))
