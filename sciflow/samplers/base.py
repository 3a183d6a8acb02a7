"""Shared sampler types: the result record and the NFE-counting wrapper."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional

import torch


@dataclass
class SampleResult:
    """What every sampler returns.

    Attributes:
        x: final states, shape ``(B, *event_shape)`` (or a mapping of such tensors).
        nfe: number of network (vector-field) evaluations used.
        times: the time grid actually visited, shape ``(T,)``; ``None`` for adaptive solvers unless a
            trajectory was requested.
        trajectory: states at ``times``, stacked to ``(T, B, *event_shape)`` (mappings stack per
            component), or ``None`` when not requested.
        extra: sampler-specific results (e.g. log-likelihood terms, particle weights).
    """

    x: Any
    nfe: int
    times: Optional[torch.Tensor] = None
    trajectory: Any = None
    extra: dict = field(default_factory=dict)


class CountingField:
    """Wraps a field ``f(x, t)`` with ``t`` of shape ``(B,)`` and counts its evaluations."""

    def __init__(self, fn: Callable[[Any, torch.Tensor], Any]):
        self.fn = fn
        self.nfe = 0

    def __call__(self, x: Any, t: torch.Tensor) -> Any:
        self.nfe += 1
        return self.fn(x, t)


def time_grid(
    steps: Optional[int],
    t0: float,
    t1: float,
    grid: Optional[torch.Tensor],
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """An explicit grid ``(steps + 1,)`` from ``t0`` to ``t1`` (either direction), or the given one."""
    if grid is not None:
        grid = torch.as_tensor(grid, device=device, dtype=dtype)
        if grid.dim() != 1 or grid.numel() < 2:
            raise ValueError(f"time_grid must be a 1-D tensor with at least 2 times, got shape {tuple(grid.shape)}")
        d = grid.diff()
        if not ((d > 0).all() or (d < 0).all()):
            raise ValueError("time_grid must be strictly monotone")
        return grid
    if steps is None or isinstance(steps, bool) or int(steps) != steps or int(steps) < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return torch.linspace(t0, t1, int(steps) + 1, device=device, dtype=dtype)


def stack_trajectory(states: List[Any]) -> Any:
    from sciflow.tree import tree_map

    return tree_map(lambda *xs: torch.stack(xs, 0), *states)
