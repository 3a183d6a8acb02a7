"""Classifier-free guidance (Ho & Salimans, 2022) for flows.

Training drops the condition with probability ``p`` (replaced by the null condition); sampling mixes the
conditional and unconditional fields, v = v_uncond + w (v_cond - v_uncond), so w = 0 is unconditional,
w = 1 conditional and w > 1 sharpens toward the condition. For affine Gaussian paths the same linear
mix applies to velocity, x1 and noise predictions (the conversions are affine in the prediction).
"""
from __future__ import annotations

from typing import Any, Optional

import torch

from sciflow.tree import tree_map


def null_condition(cond: Any) -> Any:
    """The "no condition" value matching ``cond``: label -1 for integer tensors, an all-NaN row for floats."""

    def null(c: torch.Tensor) -> torch.Tensor:
        if c.is_floating_point():
            return torch.full_like(c, float("nan"))
        return torch.full_like(c, -1)

    return tree_map(null, cond)


def drop_condition(cond: Any, p: float, generator: Optional[torch.Generator] = None) -> Any:
    """Replace each example's condition by the null condition with probability ``p``.

    For a mapping of condition components one mask is drawn per example and applied to every component,
    so the all-null condition used at sampling time is seen with probability ``p`` in training.
    """
    if cond is None or p <= 0:
        return cond
    from sciflow.tree import batch_size, first_leaf

    ref = first_leaf(cond)
    dropped = torch.rand(batch_size(cond), device=ref.device, generator=generator) < p

    def drop(c: torch.Tensor) -> torch.Tensor:
        mask = dropped.reshape(-1, *([1] * (c.dim() - 1)))
        return torch.where(mask, null_condition(c), c)

    return tree_map(drop, cond)


def guided(fn, x: Any, t: torch.Tensor, cond: Any, scale: float) -> Any:
    """Evaluate ``fn(x, t, cond)`` with classifier-free guidance in one batched call.

    Args:
        fn: network-like callable ``(x, t, cond) -> output`` (any prediction type that mixes linearly).
        scale: guidance scale w; 1 returns the conditional output, 0 the unconditional one.
    """
    if cond is None or scale == 1.0:
        return fn(x, t, cond)
    if scale == 0.0:
        return fn(x, t, null_condition(cond))
    cat = lambda a, b: torch.cat([a, b], 0)  # noqa: E731
    out = fn(tree_map(cat, x, x), torch.cat([t, t]), tree_map(cat, cond, null_condition(cond)))
    n = t.shape[0]
    return tree_map(lambda o: o[n:] + scale * (o[:n] - o[n:]), out)
