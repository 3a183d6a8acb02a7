"""SE(3) as the product manifold SO(3) x R^3 (rigid frames), in one tensor ``[R | t]`` of shape ``(B, 3, 4)``.

``x[..., :3]`` is the rotation R (3x3) and ``x[..., 3]`` the translation t (3,). Tangent vectors use the
same layout, ``[R hat(w) | v]``. The metric is the product metric: SO(3) with 1/2 tr(U^T V)
(distance = rotation angle) plus ``trans_weight`` times the Euclidean one on translations, so::

    d((R, t), (S, u))^2 = angle(R^T S)^2 + trans_weight |u - t|^2

and geodesics move rotation and translation independently (the product structure used by frame-based
protein flows, e.g. Yim et al. 2023 "FrameFlow"; not the group exponential of SE(3)). Base: uniform
(or IGSO(3)) rotations times N(0, trans_std^2 I) translations; its log-density is w.r.t. the product
volume (8 pi^2 x Lebesgue; with ``trans_weight != 1`` Lebesgue is scaled by trans_weight^{3/2}).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from sciflow.registry import register
from sciflow.spaces.manifold import Manifold, bexpand
from sciflow.spaces.so3 import SO3


@register("space", "se3")
class SE3(Manifold):
    """R^3 x SO(3) frames ``(B, 3, 4)`` = ``[R | t]``.

    Args:
        trans_std: standard deviation of the Gaussian base on translations.
        trans_weight: weight of the translation part of the metric (> 0).
        rot_base, igso3_sigma: rotation base, as :class:`~sciflow.spaces.so3.SO3`.
    """

    event_shape = (3, 4)

    def __init__(self, trans_std: float = 1.0, trans_weight: float = 1.0, rot_base: str = "uniform",
                 igso3_sigma: float = 0.5):
        if not trans_std > 0 or not trans_weight > 0:
            raise ValueError(f"SE3 needs trans_std > 0 and trans_weight > 0, got {trans_std}, {trans_weight}")
        self.trans_std, self.trans_weight = float(trans_std), float(trans_weight)
        self.so3 = SO3(base=rot_base, igso3_sigma=igso3_sigma)

    def __repr__(self) -> str:
        return f"SE3(trans_std={self.trans_std}, trans_weight={self.trans_weight}, rot={self.so3!r})"

    @property
    def dim(self) -> int:
        return 6

    @staticmethod
    def split(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(B, 3, 4)`` -> rotations ``(B, 3, 3)`` and translations ``(B, 3)``."""
        return x[..., :3], x[..., 3]

    @staticmethod
    def join(r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Rotations ``(B, 3, 3)`` and translations ``(B, 3)`` -> ``(B, 3, 4)``."""
        return torch.cat([r, t.unsqueeze(-1)], -1)

    def proj(self, x: torch.Tensor) -> torch.Tensor:
        r, t = self.split(x)
        return self.join(self.so3.proj(r), t)

    def proj_tangent(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        r, _ = self.split(x)
        vr, vt = self.split(v)
        return self.join(self.so3.proj_tangent(r, vr), vt)

    def inner(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        r, _ = self.split(x)
        (ur, ut), (vr, vt) = self.split(u), self.split(v)
        return self.so3.inner(r, ur, vr) + self.trans_weight * (ut * vt).sum(-1)

    def exp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        (r, t), (vr, vt) = self.split(x), self.split(v)
        return self.join(self.so3.exp(r, vr), t + vt)

    def log(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        (r, t), (s, u) = self.split(x), self.split(y)
        return self.join(self.so3.log(r, s), u - t)

    def dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        (r, t), (s, u) = self.split(x), self.split(y)
        return (self.so3.dist(r, s).pow(2) + self.trans_weight * (u - t).pow(2).sum(-1)).sqrt()

    def geodesic(self, x: torch.Tensor, v: torch.Tensor, s: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        (r, t), (vr, vt) = self.split(x), self.split(v)
        rs, drs = self.so3.geodesic(r, vr, s)
        return self.join(rs, t + bexpand(s, vt) * vt), self.join(drs, vt)

    def random_base(self, n: int, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
        r = self.so3.random_base(n, device=device, dtype=dtype, generator=generator)
        t = self.trans_std * torch.randn((n, 3), device=device, dtype=r.dtype, generator=generator)
        return self.join(r, t)

    def base_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r, t = self.split(x)
        gauss = -0.5 * (t / self.trans_std).pow(2).sum(-1) - 3 * math.log(self.trans_std * math.sqrt(2 * math.pi))
        # density w.r.t. the Riemannian volume of the weighted translation metric
        return self.so3.base_log_prob(r) + gauss - 1.5 * math.log(self.trans_weight)

    def on_manifold_error(self, x: torch.Tensor) -> torch.Tensor:
        return self.so3.on_manifold_error(self.split(x)[0])
