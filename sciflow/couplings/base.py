"""The ``Coupling`` interface: which source sample x0 goes with which data sample x1.

A coupling takes a minibatch ``x0 (B, ...)``, ``x1 (B, ...)`` and optional conditions ``cond`` aligned
with ``x1`` and returns re-paired ``(x0, x1, cond)`` of the same batch size. Conditions always stay with
their data point.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import torch

from sciflow.registry import register


class Coupling:
    """Abstract minibatch coupling."""

    def __call__(self, x0: Any, x1: Any, cond: Optional[Any] = None,
                 generator: Optional[torch.Generator] = None) -> Tuple[Any, Any, Optional[Any]]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@register("coupling", "independent")
class IndependentCoupling(Coupling):
    """Pairs x0 and x1 as drawn: the product coupling q(x0) q(x1)."""

    def __call__(self, x0, x1, cond=None, generator=None):
        return x0, x1, cond
