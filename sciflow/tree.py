"""Tiny helpers so samplers treat a tensor and a mapping of named tensors (product states) alike."""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch


def tree_map(fn: Callable[..., Any], *trees: Any) -> Any:
    """Apply ``fn`` leaf-wise to tensors or to mappings of tensors with identical keys."""
    first = trees[0]
    if isinstance(first, Mapping):
        keys = list(first.keys())
        for other in trees[1:]:
            if not isinstance(other, Mapping) or list(other.keys()) != keys:
                raise ValueError(f"state components disagree: {keys} vs {list(getattr(other, 'keys', lambda: [])())}")
        return {k: tree_map(fn, *(tr[k] for tr in trees)) for k in keys}
    return fn(*trees)


def batch_size(state: Any) -> int:
    """Leading dimension of a tensor or of the first component of a mapping."""
    if isinstance(state, Mapping):
        return batch_size(next(iter(state.values())))
    return state.shape[0]


def first_leaf(state: Any) -> torch.Tensor:
    """The first tensor of a state (to read device and dtype)."""
    if isinstance(state, Mapping):
        return first_leaf(next(iter(state.values())))
    return state


def index(state: Any, idx: torch.Tensor) -> Any:
    """Select batch rows ``idx`` of every component."""
    return tree_map(lambda x: x[idx], state)


def concat(states: list) -> Any:
    """Concatenate states along the batch dimension."""
    return tree_map(lambda *xs: torch.cat(xs, 0), *states)
