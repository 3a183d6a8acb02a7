"""The rotation group SO(3) as 3x3 matrices, with the bi-invariant metric <U, V>_R = 1/2 tr(U^T V).

States are rotation matrices ``(B, 3, 3)``; a tangent vector at R is V = R hat(w) with w in R^3 (the
body angular velocity). With this metric the geodesic distance is the rotation angle of R^T S, in
[0, pi], and vol(SO(3)) = 8 pi^2. Closed forms (Rodrigues)::

    exp_R(R hat(w)) = R (I + sinc(theta) hat(w) + 1/2 sinc^2(theta/2) hat(w)^2),  theta = |w|
    log_R(S)        = R hat(w),  w = theta axis(R^T S)

The matrix logarithm uses theta = atan2(|a|, (tr Q - 1)/2) with a = vee(Q - Q^T)/2 = sin(theta) axis,
which is accurate at small angles; for theta > 2 pi / 3 the axis is read from the symmetric part
(Q + Q^T)/2 - cos(theta) I = (1 - cos theta) axis axis^T (the column with the largest diagonal entry),
with the sign of ``a``; this stays accurate up to theta = pi, where either sign is a valid log (cut
locus). (1 - cos theta)/theta^2 is evaluated as sinc^2(theta/2)/2 to avoid cancellation.

Base distributions: uniform (Haar; density 1 / (8 pi^2)) or isotropic Gaussian IGSO(3) with scale
sigma, the heat kernel of Brownian motion (generator Delta/2) at time sigma^2, whose density w.r.t.
the normalised Haar measure depends only on the angle omega::

    f_sigma(omega) = sum_{l>=0} (2l+1) exp(-l(l+1) sigma^2/2) sin((l+1/2) omega) / sin(omega/2)

(Nikolayev & Savyolova 1997; Leach et al. 2022). For small sigma the rotation vector is ~N(0, sigma^2 I).
We evaluate the truncated series in the cosine form f = sum_k c_k cos(k omega) (no 0/0 at omega = 0)
and, where it has underflowed below 1e-5 of its peak (tails of small sigma), the small-sigma
asymptotic form (2 pi sigma^2)^{-3/2} exp(-omega^2/(2 sigma^2)) 8 pi^2 omega^2/(2 (1 - cos omega)).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from sciflow.registry import register
from sciflow.spaces.manifold import Manifold, bexpand, safe_norm, sinc


def hat(w: torch.Tensor) -> torch.Tensor:
    """R^3 ``(..., 3)`` -> skew-symmetric matrices ``(..., 3, 3)``."""
    z = torch.zeros_like(w[..., 0])
    return torch.stack([
        torch.stack([z, -w[..., 2], w[..., 1]], -1),
        torch.stack([w[..., 2], z, -w[..., 0]], -1),
        torch.stack([-w[..., 1], w[..., 0], z], -1),
    ], -2)


def vee(m: torch.Tensor) -> torch.Tensor:
    """Skew part of ``(..., 3, 3)`` matrices -> R^3 ``(..., 3)`` (vee(hat(w)) = w)."""
    return 0.5 * torch.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1)


def skew(m: torch.Tensor) -> torch.Tensor:
    return 0.5 * (m - m.transpose(-1, -2))


def exp_so3(w: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: rotation vectors ``(..., 3)`` -> rotation matrices ``(..., 3, 3)``."""
    theta = safe_norm(w)[..., None, None]
    k = hat(w)
    eye = torch.eye(3, device=w.device, dtype=w.dtype).expand(k.shape)
    return eye + sinc(theta) * k + 0.5 * sinc(theta / 2).pow(2) * (k @ k)


def angle_so3(q: torch.Tensor) -> torch.Tensor:
    """Rotation angle in [0, pi] of rotation matrices ``(..., 3, 3)``."""
    a = vee(q)
    cos = 0.5 * (q.diagonal(dim1=-2, dim2=-1).sum(-1) - 1)
    return torch.atan2(safe_norm(a), cos)


def log_so3(q: torch.Tensor) -> torch.Tensor:
    """Principal logarithm: rotation matrices ``(..., 3, 3)`` -> rotation vectors ``(..., 3)`` (|w| <= pi)."""
    a = vee(q)  # sin(theta) * axis
    cos = 0.5 * (q.diagonal(dim1=-2, dim2=-1).sum(-1) - 1)
    theta = torch.atan2(safe_norm(a), cos)
    far = cos < -0.5
    # small/medium angles: w = theta / sin(theta) * a
    w_near = a / sinc(torch.where(far, torch.zeros_like(theta), theta)).unsqueeze(-1)
    # large angles: axis from the symmetric part
    sym = 0.5 * (q + q.transpose(-1, -2))
    one_minus = (1 - cos).clamp_min(1.0)[..., None, None]  # >= 1.5 on this branch; clamp only guards the other
    b = (sym - cos[..., None, None] * torch.eye(3, device=q.device, dtype=q.dtype)) / one_minus  # axis axis^T
    diag = b.diagonal(dim1=-2, dim2=-1)
    i = diag.argmax(-1, keepdim=True)
    col = torch.gather(b, -1, i.unsqueeze(-2).expand(*b.shape[:-1], 1)).squeeze(-1)  # column i = axis * axis_i
    axis = col / safe_norm(col, keepdim=True).clamp_min(1e-12)
    sign = torch.where((axis * a).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(q.dtype)
    w_far = theta.unsqueeze(-1) * sign * axis
    return torch.where(far.unsqueeze(-1), w_far, w_near)


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(..., 4)`` (w, x, y, z) -> rotation matrices ``(..., 3, 3)``."""
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def random_rotations(n: int, device=None, dtype=None, generator=None) -> torch.Tensor:
    """``n`` Haar-uniform rotations ``(n, 3, 3)`` (normalised Gaussian quaternions)."""
    q = torch.randn((n, 4), device=device, dtype=dtype, generator=generator)
    return quaternion_to_matrix(q / q.norm(dim=-1, keepdim=True))


class IGSO3:
    """Isotropic Gaussian on SO(3) centred at the identity (see the module docstring for the density).

    Args:
        sigma: scale (radians) > 0; the rotation vector is ~N(0, sigma^2 I) for small sigma.
        l_max: series truncation (default ceil(8 / sigma) + 10, relative truncation error ~exp(-32)).
        grid: number of angles of the tabulated inverse CDF used for sampling.
    """

    def __init__(self, sigma: float = 0.5, l_max: Optional[int] = None, grid: int = 4096):
        if not sigma > 0:
            raise ValueError(f"IGSO3 sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)
        self.l_max = int(l_max) if l_max is not None else int(math.ceil(8 / self.sigma)) + 10
        self.grid = int(grid)

    def __repr__(self) -> str:
        return f"IGSO3(sigma={self.sigma}, l_max={self.l_max})"

    def _coeffs(self, device, dtype) -> torch.Tensor:
        ell = torch.arange(self.l_max + 1, device=device, dtype=dtype)
        a = (2 * ell + 1) * torch.exp(-ell * (ell + 1) * self.sigma ** 2 / 2)
        c = a.flip(0).cumsum(0).flip(0)  # suffix sums sum_{l >= k} a_l
        return torch.cat([c[:1], 2 * c[1:]])  # f(omega) = sum_k c_k cos(k omega)

    def density(self, omega: torch.Tensor) -> torch.Tensor:
        """Truncated series f(omega) w.r.t. the normalised Haar measure, shape of ``omega``."""
        c = self._coeffs(omega.device, omega.dtype)
        k = torch.arange(c.numel(), device=omega.device, dtype=omega.dtype)
        return (torch.cos(omega.unsqueeze(-1) * k) * c).sum(-1)

    def log_density(self, omega: torch.Tensor) -> torch.Tensor:
        """log f(omega) w.r.t. the normalised Haar measure (series; asymptotic form in underflowed tails)."""
        f = self.density(omega)
        peak = self._coeffs(omega.device, omega.dtype).sum()
        ok = f > 1e-5 * peak
        s2 = self.sigma ** 2
        om = omega.clamp_min(1e-6)
        asym = (-1.5 * math.log(2 * math.pi * s2) - om ** 2 / (2 * s2) + math.log(8 * math.pi ** 2)
                + 2 * torch.log(om) - math.log(2.0) - torch.log(1 - torch.cos(om)))
        return torch.where(ok, torch.log(torch.where(ok, f, torch.ones_like(f))), asym)

    def log_prob(self, r: torch.Tensor) -> torch.Tensor:
        """Log-density w.r.t. the volume of SO(3) with dist = angle (vol 8 pi^2), shape ``(B,)``."""
        return self.log_density(angle_so3(r)) - math.log(8 * math.pi ** 2)

    def sample(self, n: int, device=None, dtype=None, generator=None) -> torch.Tensor:
        """``n`` rotations ``(n, 3, 3)``: uniform axis, angle by inverse CDF of f(omega)(1 - cos omega)/pi."""
        dtype = dtype if dtype is not None else torch.get_default_dtype()
        om = torch.linspace(0, math.pi, self.grid, device=device, dtype=dtype)
        pdf = (self.density(om) * (1 - torch.cos(om)) / math.pi).clamp_min(0)
        cdf = torch.cat([pdf.new_zeros(1), torch.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * (om[1:] - om[:-1]), 0)])
        cdf = cdf / cdf[-1]
        u = torch.rand(n, device=device, dtype=dtype, generator=generator)
        idx = torch.searchsorted(cdf, u).clamp(1, self.grid - 1)
        c0, c1 = cdf[idx - 1], cdf[idx]
        frac = (u - c0) / (c1 - c0).clamp_min(torch.finfo(dtype).tiny)
        omega = om[idx - 1] + frac * (om[idx] - om[idx - 1])
        axis = torch.randn((n, 3), device=device, dtype=dtype, generator=generator)
        axis = axis / axis.norm(dim=-1, keepdim=True)
        return exp_so3(omega.unsqueeze(-1) * axis)


@register("space", "so3")
class SO3(Manifold):
    """SO(3) as rotation matrices ``(B, 3, 3)`` with metric 1/2 tr(U^T V) (distance = rotation angle).

    Args:
        base: "uniform" (Haar) or "igso3" (isotropic Gaussian at the identity).
        igso3_sigma: IGSO(3) scale when ``base="igso3"``.
    """

    event_shape = (3, 3)

    def __init__(self, base: str = "uniform", igso3_sigma: float = 0.5):
        if base not in ("uniform", "igso3"):
            raise ValueError(f"SO3 base must be 'uniform' or 'igso3', got {base!r}")
        self.base = base
        self.igso3 = IGSO3(igso3_sigma) if base == "igso3" else None

    def __repr__(self) -> str:
        return f"SO3(base={self.base!r})" if self.igso3 is None else f"SO3(base={self.igso3!r})"

    @property
    def dim(self) -> int:
        return 3

    def volume(self) -> float:
        return 8 * math.pi ** 2

    def proj(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest rotation (SVD, with the determinant fixed to +1)."""
        u, _, vh = torch.linalg.svd(x)
        d = torch.det(u @ vh)
        fix = torch.ones_like(x[..., 0])
        fix = torch.cat([fix[..., :2], d.unsqueeze(-1)], -1)
        return (u * fix.unsqueeze(-2)) @ vh

    def proj_tangent(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return x @ skew(x.transpose(-1, -2) @ v)

    def inner(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return 0.5 * (u * v).sum((-1, -2))

    def exp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return x @ exp_so3(vee(x.transpose(-1, -2) @ v))

    def log(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x @ hat(log_so3(x.transpose(-1, -2) @ y))

    def dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return angle_so3(x.transpose(-1, -2) @ y)

    def geodesic(self, x: torch.Tensor, v: torch.Tensor, s: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        omega = skew(x.transpose(-1, -2) @ v)
        xs = x @ exp_so3(bexpand(s, vee(omega)) * vee(omega))
        return xs, xs @ omega

    def random_base(self, n: int, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if self.igso3 is not None:
            return self.igso3.sample(n, device=device, dtype=dtype, generator=generator)
        return random_rotations(n, device=device, dtype=dtype, generator=generator)

    def base_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if self.igso3 is not None:
            return self.igso3.log_prob(x)
        return torch.full(x.shape[:1], -math.log(self.volume()), device=x.device, dtype=x.dtype)

    def on_manifold_error(self, x: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(3, device=x.device, dtype=x.dtype)
        orth = (x.transpose(-1, -2) @ x - eye).abs().flatten(1).amax(-1)
        return torch.maximum(orth, (torch.det(x) - 1).abs())
