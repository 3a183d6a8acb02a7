"""Condition-aware minibatch OT: never pair a source sample across conditions.

For conditional generation p(x1 | c) the source x0 carries no condition of its own: in a batch
``(x0_i, x1_i, c_i)`` the source sample in slot i is *given* the condition ``c_i`` of its slot. An
unconstrained OT coupling would pair x0 slots with data of other conditions and teach the network a
transport that ignores c. This coupling permutes x0 only among slots that share a condition, solving
OT inside each group (Tong et al., 2024, Sec. 5; Isobe et al., 2024, "Extended flow matching").

* Discrete conditions (integer tensor ``(B,)``): OT is solved separately inside every class (a loop over
  the distinct classes, not over examples). No pair ever crosses classes.
* Continuous conditions (float tensor ``(B, ...)``): the cost gets a penalty
  ``cond_weight * |c_i - c_j|^2``, with ``cond_weight`` by default ``100 * mean(C) / mean(D)`` (C the
  state cost, D the condition cost), so pairs with distant conditions are strongly discouraged.

The coupling returns ``(x0[perm], x1, cond)``: x1 and cond keep their order, so the condition stays with
its data point and x0 takes the condition of the x1 it is paired with.
"""
from __future__ import annotations

from typing import Optional

import torch

from sciflow.couplings.base import Coupling
from sciflow.couplings.ot import (
    ASSIGNMENT_METHODS, _solver_cost, assignment, ot_plan, sample_from_plan, sq_euclidean_cost,
)
from sciflow.registry import register

__all__ = ["ConditionalOTCoupling"]


@register("coupling", "conditional_ot")
class ConditionalOTCoupling(Coupling):
    """Minibatch OT within condition groups.

    Args:
        method: "exact" (default), "sparse", "auction" or "sinkhorn" (see :mod:`sciflow.couplings.ot`).
        cond_weight: penalty weight for continuous conditions (``None``: automatic, see module docstring).
        sample: with "sinkhorn", draw partners from the plan (default) instead of the per-column argmax.
        **solver_kwargs: passed to the solver (e.g. ``epsilon`` for Sinkhorn, ``tol`` for the auction).
    """

    def __init__(self, method: str = "exact", cond_weight: Optional[float] = None, sample: bool = True,
                 **solver_kwargs):
        if method not in ASSIGNMENT_METHODS + ("sinkhorn",):
            raise ValueError(f"conditional_ot method must be one of {ASSIGNMENT_METHODS + ('sinkhorn',)}, "
                             f"got {method!r}")
        if cond_weight is not None and cond_weight < 0:
            raise ValueError(f"cond_weight must be non-negative, got {cond_weight}")
        self.method, self.cond_weight, self.sample, self.solver_kwargs = method, cond_weight, sample, solver_kwargs

    def __repr__(self) -> str:
        return f"ConditionalOTCoupling(method={self.method!r}, cond_weight={self.cond_weight})"

    def _rows(self, cost: torch.Tensor, generator) -> torch.Tensor:
        """x0 row for every x1 column of a square cost."""
        if self.method == "sinkhorn":
            plan = ot_plan(cost, "sinkhorn", **self.solver_kwargs)
            return sample_from_plan(plan, generator) if self.sample else plan.argmax(0)
        return assignment(cost.T, self.method, **self.solver_kwargs)

    def __call__(self, x0, x1, cond=None, generator=None):
        if not isinstance(x0, torch.Tensor) or not isinstance(x1, torch.Tensor):
            raise TypeError("conditional_ot needs tensor states x0, x1 of shape (B, ...)")
        n = x1.shape[0]
        if x0.shape[0] != n:
            raise ValueError(f"conditional_ot needs equal batch sizes (x0 slot i takes cond[i]); "
                             f"got x0 batch {x0.shape[0]} and x1 batch {n}")
        if cond is None:
            raise ValueError("conditional_ot needs cond; use 'exact_ot' for unconditional data")
        if not isinstance(cond, torch.Tensor) or cond.shape[0] != n:
            raise ValueError(f"cond must be a tensor with batch size {n}, got {getattr(cond, 'shape', type(cond))}")
        if cond.is_floating_point():
            rows = self._continuous(x0, x1, cond, generator)
        elif cond.dim() == 1:
            rows = self._discrete(x0, x1, cond, generator)
        else:
            raise ValueError(f"discrete cond must have shape (B,), got {tuple(cond.shape)}; "
                             f"pass float conditions for the continuous penalty")
        return x0[rows], x1, cond

    def _discrete(self, x0, x1, cond, generator):
        rows = torch.arange(x1.shape[0], device=x1.device)
        classes, inverse = torch.unique(cond, return_inverse=True)
        for k in range(classes.numel()):  # loop over distinct classes, not examples
            idx = (inverse == k).nonzero().squeeze(1)
            if idx.numel() < 2:
                continue
            a, b = x0[idx], x1[idx]
            cost = _solver_cost(a, b) if self.method == "sparse" else sq_euclidean_cost(a, b)
            rows[idx] = idx[self._rows(cost, generator)]
        return rows

    def _continuous(self, x0, x1, cond, generator):
        cost = sq_euclidean_cost(x0, x1)
        c = cond.reshape(cond.shape[0], -1).to(cost.dtype)
        if not torch.isfinite(c).all():
            raise ValueError("continuous cond contains NaN/inf (null conditions are not allowed here)")
        dc = sq_euclidean_cost(c, c)
        weight = self.cond_weight
        if weight is None:
            mean_dc = float(dc.mean())
            weight = 100.0 * float(cost.mean()) / mean_dc if mean_dc > 0 else 0.0
        return self._rows(cost + weight * dc, generator)
