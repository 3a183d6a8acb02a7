"""The ``Space`` interface: where states live.

A space works on batched tensors of shape ``(B, *event_shape)`` and is differentiable in torch on any
device. Euclidean space is the trivial case; manifolds (sphere, torus, SO(3), ...) and discrete spaces
implement the same methods, so paths and samplers never special-case them.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch


class Space:
    """Abstract state space with batched geometry.

    Attributes:
        event_shape: shape of one state, e.g. ``(2,)`` for points in R^2, ``(3, 3)`` for SO(3).
    """

    event_shape: Tuple[int, ...] = ()
    #: True when ``exp(x, v) == x + v`` so samplers can skip projections.
    is_euclidean: bool = False
    #: True for spaces of categorical tokens, which have no tangent vectors.
    is_discrete: bool = False

    # -- geometry --------------------------------------------------------------------------------
    def exp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Exponential map: follow the geodesic from ``x`` with initial velocity ``v`` for unit time."""
        raise NotImplementedError

    def log(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Logarithm map: the tangent vector at ``x`` whose exponential is ``y``."""
        raise NotImplementedError

    def proj(self, x: torch.Tensor) -> torch.Tensor:
        """Project ambient coordinates onto the space."""
        return x

    def proj_tangent(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Project an ambient vector ``v`` onto the tangent space at ``x``."""
        return v

    def inner(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Metric inner product <u, v>_x, shape ``(B,)``."""
        return (u * v).flatten(1).sum(-1)

    def dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Geodesic distance, shape ``(B,)``."""
        v = self.log(x, y)
        return self.inner(x, v, v).clamp_min(0).sqrt()

    # -- base distribution -----------------------------------------------------------------------
    def random_base(
        self,
        n: int,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        """Draw ``n`` states from the base (source, t=0) distribution, shape ``(n, *event_shape)``."""
        raise NotImplementedError

    def base_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density of the base distribution w.r.t. the space's volume measure, shape ``(B,)``."""
        raise NotImplementedError

    # -- checks ----------------------------------------------------------------------------------
    def check(self, x: torch.Tensor, name: str = "x") -> None:
        """Raise a ``ValueError`` naming ``name`` if ``x`` is not a batch of finite states of this space."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if tuple(x.shape[1:]) != tuple(self.event_shape):
            raise ValueError(
                f"{name} has shape {tuple(x.shape)}; expected (batch, {', '.join(map(str, self.event_shape))}) "
                f"for {self!r}"
            )
        if x.is_floating_point() and not torch.isfinite(x).all():
            bad = (~torch.isfinite(x)).flatten(1).any(1).nonzero().flatten()[:5].tolist()
            raise ValueError(f"{name} contains NaN or inf values (first bad rows: {bad})")
