"""The probability simplex Delta^{K-1} = {x in R^K : x >= 0, sum x = 1}, batched over positions.

Used by Dirichlet flow matching and linear flow matching on the simplex (Stark et al., "Dirichlet Flow
Matching with Applications to DNA Sequence Design", 2024). A state has shape ``(B, *shape, K)``: one
point of the simplex per position (e.g. ``shape=(L,)`` for a sequence of L categorical variables).

Geometry: the flat (Euclidean) metric of the affine hull. Tangent vectors sum to zero over the last
axis. ``exp(x, v) = proj(x + v)`` where ``proj`` is the Euclidean projection onto the closed simplex
(Held et al. 1974; Duchi et al. 2008); it is the identity whenever the Euler step ``x + v`` stays on
the simplex, so it is a first-order retraction that only acts when a step would leave the simplex.
The base distribution is the uniform one, Dirichlet(1, ..., 1).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch

from sciflow.registry import register
from sciflow.spaces.base import Space


def project_to_simplex(x: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of every row ``x[..., :]`` onto the probability simplex (sort-based, exact).

    For y = proj(x): y_i = max(x_i - tau, 0) with tau chosen so that sum y = 1.
    """
    k = x.shape[-1]
    u, _ = torch.sort(x, dim=-1, descending=True)
    css = u.cumsum(-1) - 1
    ind = torch.arange(1, k + 1, device=x.device, dtype=x.dtype)
    cond = (u - css / ind) > 0
    rho = cond.to(torch.long).cumsum(-1).argmax(-1, keepdim=True)  # last index where cond holds
    tau = css.gather(-1, rho) / (rho + 1).to(x.dtype)
    return (x - tau).clamp_min(0)


@register("space", "simplex")
class Simplex(Space):
    """Points of Delta^{K-1} at each position.

    Args:
        dim: number of categories K (>= 2).
        shape: leading event shape (positions), e.g. ``()`` for one categorical variable or ``(L,)``.
        atol: tolerance of :meth:`check` for the sum-to-one constraint and non-negativity.
    """

    def __init__(self, dim: int, shape: Union[int, Sequence[int]] = (), atol: float = 1e-4):
        if int(dim) < 2:
            raise ValueError(f"Simplex dim (number of categories K) must be >= 2, got {dim}")
        self.dim = int(dim)
        lead = (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)
        self.event_shape = (*lead, self.dim)
        self.atol = float(atol)

    def __repr__(self) -> str:
        return f"Simplex(dim={self.dim}, shape={self.event_shape[:-1]})"

    def exp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Retraction ``proj(x + v)`` (identity on steps that stay on the simplex)."""
        return project_to_simplex(x + v)

    def log(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y - x

    def proj(self, x: torch.Tensor) -> torch.Tensor:
        return project_to_simplex(x)

    def proj_tangent(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Remove the component along (1, ..., 1): tangent vectors sum to zero."""
        return v - v.mean(-1, keepdim=True)

    def random_base(self, n: int, device=None, dtype=None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Uniform Dirichlet(1, ..., 1) draws as normalised Exp(1) variables, shape ``(n, *shape, K)``."""
        dtype = dtype if dtype is not None and dtype.is_floating_point else torch.get_default_dtype()
        u = torch.rand((n, *self.event_shape), device=device, dtype=dtype, generator=generator)
        e = -torch.log1p(-u)  # Exp(1), finite because u < 1
        return e / e.sum(-1, keepdim=True)

    def base_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log Dirichlet(1)(x) = log Gamma(K) per position (Lebesgue measure on the first K-1 coordinates)."""
        npos = math.prod(self.event_shape[:-1])
        return torch.full((x.shape[0],), npos * math.lgamma(self.dim), device=x.device, dtype=x.dtype)

    def check(self, x: torch.Tensor, name: str = "x") -> None:
        super().check(x, name)
        if not x.is_floating_point():
            raise TypeError(f"{name} must be floating point simplex coordinates, got dtype {x.dtype}")
        if (x < -self.atol).any():
            raise ValueError(f"{name} has negative coordinates (min {float(x.min()):.3g}); expected points of the simplex")
        err = (x.sum(-1) - 1).abs().max()
        if err > self.atol:
            raise ValueError(f"{name} rows do not sum to 1 over the last axis (max error {float(err):.3g})")
