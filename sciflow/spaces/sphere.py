"""The unit sphere S^d embedded in R^{d+1}, with the round (induced) metric.

States have shape ``(B, d + 1)`` with unit norm; tangent vectors at x are ambient vectors v with
<x, v> = 0. Closed forms (e.g. Absil, Mahony & Sepulchre 2008, "Optimization Algorithms on Matrix
Manifolds", Ex. 5.4.1)::

    exp_x(v)  = cos|v| x + sin|v| v/|v|
    log_x(y)  = theta (y - <x,y> x) / |y - <x,y> x|,   theta = d(x, y) = 2 atan2(|x - y|, |x + y|)

The distance uses the atan2 form, accurate at small angles and near antipodes alike. At the cut
locus (y = -x) the log is not unique; a fixed tangent direction (the coordinate axis least aligned
with x, projected) of length pi is returned, so the result is finite and deterministic.

Base distribution: uniform with density 1 / vol(S^d), vol(S^d) = 2 pi^{(d+1)/2} / Gamma((d+1)/2)
(4 pi for S^2).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from sciflow.registry import register
from sciflow.spaces.manifold import Manifold, bexpand, safe_norm, sinc


@register("space", "sphere")
class Sphere(Manifold):
    """S^d in R^{d+1}.

    Args:
        dim: intrinsic dimension d >= 1 (states have d + 1 coordinates; d = 2 is the Earth's surface).
    """

    def __init__(self, dim: int = 2):
        if int(dim) < 1:
            raise ValueError(f"Sphere dim must be >= 1, got {dim}")
        self.d = int(dim)
        self.event_shape = (self.d + 1,)

    def __repr__(self) -> str:
        return f"Sphere(dim={self.d})"

    @property
    def dim(self) -> int:
        return self.d

    def volume(self) -> float:
        """Surface area of the unit S^d."""
        n = self.d + 1
        return 2 * math.pi ** (n / 2) / math.gamma(n / 2)

    # -- geometry --------------------------------------------------------------------------------
    def proj(self, x: torch.Tensor) -> torch.Tensor:
        return x / safe_norm(x, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)

    def proj_tangent(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return v - (x * v).sum(-1, keepdim=True) * x

    def inner(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (u * v).sum(-1)

    def geodesic(self, x: torch.Tensor, v: torch.Tensor, s: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        n = safe_norm(v, keepdim=True)
        sn = bexpand(s, v) * n
        c, si = torch.cos(sn), torch.sin(sn)
        xs = c * x + sinc(sn) * bexpand(s, v) * v
        dxs = -n * si * x + c * v
        xs = self.proj(xs)
        return xs, self.proj_tangent(xs, dxs)

    def exp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        n = safe_norm(v, keepdim=True)
        return self.proj(torch.cos(n) * x + sinc(n) * v)

    def dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 2 * torch.atan2(safe_norm(x - y), safe_norm(x + y))

    def _cut_direction(self, x: torch.Tensor) -> torch.Tensor:
        """A unit tangent vector at x (used only at the cut locus)."""
        k = x.abs().argmin(-1, keepdim=True)
        e = torch.zeros_like(x).scatter_(-1, k, 1.0)
        u = self.proj_tangent(x, e)
        return u / safe_norm(u, keepdim=True).clamp_min(1e-12)

    def log(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        theta = self.dist(x, y).unsqueeze(-1)
        c = (x * y).sum(-1, keepdim=True)
        u = y - c * x
        un = safe_norm(u, keepdim=True)
        # near x (theta <= pi/2): u / sinc(theta) = theta u / sin(theta), well conditioned
        near = u / sinc(torch.where(c >= 0, theta, torch.zeros_like(theta)))
        # far side: normalise u explicitly; at the cut point fall back to a fixed direction
        tiny = 10 * torch.finfo(x.dtype).eps
        ok = un > tiny
        direction = u / torch.where(ok, un, torch.ones_like(un))
        if not bool(ok.all()):  # exact cut points are rare: build the fallback direction only when needed
            direction = torch.where(ok, direction, self._cut_direction(x))
        far = theta * direction
        return torch.where(c >= 0, near, far)

    # -- base distribution -----------------------------------------------------------------------
    def random_base(self, n: int, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n`` uniform points, shape ``(n, d + 1)`` (normalised Gaussians)."""
        z = torch.randn((n, self.d + 1), device=device, dtype=dtype, generator=generator)
        return self.proj(z)

    def base_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """-log vol(S^d) for every row, shape ``(B,)``."""
        return torch.full(x.shape[:1], -math.log(self.volume()), device=x.device, dtype=x.dtype)

    def on_manifold_error(self, x: torch.Tensor) -> torch.Tensor:
        return (x.norm(dim=-1) - 1).abs()


def latlon_to_xyz(lat_deg: torch.Tensor, lon_deg: torch.Tensor) -> torch.Tensor:
    """Latitude/longitude in degrees -> unit vectors on S^2, shape ``(..., 3)`` (x towards lon 0, z north)."""
    lat, lon = torch.deg2rad(lat_deg), torch.deg2rad(lon_deg)
    return torch.stack([torch.cos(lat) * torch.cos(lon), torch.cos(lat) * torch.sin(lon), torch.sin(lat)], -1)


def xyz_to_latlon(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Unit vectors ``(..., 3)`` -> (latitude, longitude) in degrees, longitude in (-180, 180]."""
    lat = torch.rad2deg(torch.asin((x[..., 2] / x.norm(dim=-1)).clamp(-1, 1)))
    lon = torch.rad2deg(torch.atan2(x[..., 1], x[..., 0]))
    return lat, lon
