"""The ``Path`` interface: how x0 and x1 are joined at time t, and what the network is trained on.

A path answers three questions for a :class:`sciflow.Flow`:

* ``sample(x0, x1, t)`` -> :class:`PathSample` with the interpolant x_t and its conditional target;
* ``loss(output, sample, prediction)`` -> per-example loss, shape ``(B,)``;
* ``velocity(output, x_t, t, prediction)`` -> the marginal velocity used by ODE samplers.

``prediction`` names the network parameterisation ("velocity", "x1", "noise", "logits", ...); each path
lists the ones it supports in ``predictions`` and raises a ``ValueError`` for others.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

import torch


@dataclass
class PathSample:
    """One draw from a conditional path. Tensors are batch first; ``t`` has shape ``(B,)``.

    Attributes:
        x0: source states (t = 0).
        x1: data states (t = 1).
        t: times in [0, 1].
        x_t: states on the conditional path at ``t``.
        dx_t: conditional target velocity d/dt x_t (``None`` for paths without one, e.g. discrete).
        extra: path-specific values (e.g. the Gaussian noise of a stochastic interpolant).
    """

    x0: Any
    x1: Any
    t: torch.Tensor
    x_t: Any
    dx_t: Any = None
    extra: Optional[dict] = None


class Path:
    """Abstract conditional probability path."""

    predictions: Tuple[str, ...] = ()

    def check_prediction(self, prediction: str) -> None:
        if prediction not in self.predictions:
            raise ValueError(
                f"prediction '{prediction}' is not supported by {type(self).__name__}; "
                f"choose one of {list(self.predictions)}"
            )

    def sample(self, x0: Any, x1: Any, t: torch.Tensor) -> PathSample:
        raise NotImplementedError

    def loss(self, output: Any, sample: PathSample, prediction: str) -> torch.Tensor:
        raise NotImplementedError

    def velocity(self, output: Any, x_t: Any, t: torch.Tensor, prediction: str) -> Any:
        raise NotImplementedError


def expand_like(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape times ``(B,)`` to ``(B, 1, ..., 1)`` so they broadcast against ``x`` of shape ``(B, ...)``."""
    return t.reshape(t.shape[0], *([1] * (x.dim() - 1)))
