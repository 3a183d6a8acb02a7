"""Affine Gaussian probability paths x_t = alpha_t x1 + sigma_t x0.

The conditional target is u_t = alpha'_t x1 + sigma'_t x0 (Lipman et al. 2023; Liu et al. 2023 for the
cond-OT / rectified-flow case). Three network parameterisations are supported, with exact conversions
between them at any t where the 2x2 system [[alpha, sigma], [alpha', sigma']] is invertible:

* ``velocity``: the network predicts u_t;
* ``x1``: the network predicts the data point E[x1 | x_t];
* ``noise``: the network predicts the source sample E[x0 | x_t] (epsilon-prediction when x0 ~ N(0, I)).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from sciflow.paths.base import Path, PathSample, expand_like
from sciflow.paths.schedulers import CondOTScheduler, Scheduler, build_scheduler
from sciflow.registry import register

PREDICTIONS = ("velocity", "x1", "noise")


@register("path", "affine")
class AffinePath(Path):
    """Affine path with a :class:`~sciflow.paths.schedulers.Scheduler`.

    Args:
        scheduler: a Scheduler, a registered name ("cond_ot", "vp", "cosine", "polynomial") or a mapping
            ``{"name": ..., **kwargs}``. Default cond-OT.
    """

    predictions = PREDICTIONS

    def __init__(self, scheduler="cond_ot"):
        self.scheduler: Scheduler = build_scheduler(scheduler) if scheduler is not None else CondOTScheduler()

    def __repr__(self) -> str:
        return f"AffinePath(scheduler={self.scheduler!r})"

    def _coefficients(self, t: torch.Tensor, like: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        s = self.scheduler(t)
        return tuple(expand_like(v, like) for v in (s.alpha, s.sigma, s.d_alpha, s.d_sigma))

    def sample(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> PathSample:
        """x_t and u_t for x0, x1 of shape ``(B, ...)`` and t of shape ``(B,)``."""
        if type(self.scheduler) is CondOTScheduler:
            # the most common path: x_t = x0 + t (x1 - x0), u_t = x1 - x0, in two fused kernels
            dx = x1 - x0
            return PathSample(x0=x0, x1=x1, t=t, x_t=torch.addcmul(x0, expand_like(t, x1), dx), dx_t=dx)
        a, s, da, ds = self._coefficients(t, x1)
        return PathSample(x0=x0, x1=x1, t=t, x_t=a * x1 + s * x0, dx_t=da * x1 + ds * x0)

    def target(self, sample: PathSample, prediction: str) -> torch.Tensor:
        """The regression target of the given parameterisation."""
        self.check_prediction(prediction)
        return {"velocity": sample.dx_t, "x1": sample.x1, "noise": sample.x0}[prediction]

    def loss(self, output: torch.Tensor, sample: PathSample, prediction: str,
             weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Mean squared error per example, shape ``(B,)``.

        ``weight`` (broadcastable to the states, e.g. a ``(B, N, 1, 1)`` mask of real agents) gives the
        weighted mean sum(w (output - target)^2) / sum(w) per example; an example whose weights are all
        zero contributes 0.
        """
        sq = (output - self.target(sample, prediction)).pow(2)
        if weight is None:
            return sq.flatten(1).mean(-1)
        w = torch.broadcast_to(weight.to(sq.dtype), sq.shape).flatten(1)
        return (w * sq.flatten(1)).sum(-1) / w.sum(-1).clamp_min(torch.finfo(sq.dtype).tiny)

    # -- exact conversions -----------------------------------------------------------------------
    def convert(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, source: str, dest: str) -> torch.Tensor:
        """Convert a prediction of kind ``source`` at (x_t, t) into kind ``dest``.

        All conversions go through the pair (x1, x0) that solves x_t = alpha x1 + sigma x0 together with
        the given prediction; they are exact up to floating point wherever the system is invertible
        (``x1`` -> others needs sigma_t != 0, ``noise`` -> others needs alpha_t != 0).
        """
        self.check_prediction(source)
        self.check_prediction(dest)
        if source == dest:
            return output
        a, s, da, ds = self._coefficients(t, x_t)
        if source == "x1":
            x1 = output
            x0 = (x_t - a * x1) / s
        elif source == "noise":
            x0 = output
            x1 = (x_t - s * x0) / a
        else:  # velocity: solve [[a, s], [da, ds]] [x1, x0]^T = [x_t, v]^T
            det = a * ds - s * da
            x1 = (ds * x_t - s * output) / det
            x0 = (a * output - da * x_t) / det
        if dest == "x1":
            return x1
        if dest == "noise":
            return x0
        return da * x1 + ds * x0

    def velocity(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, prediction: str) -> torch.Tensor:
        return self.convert(output, x_t, t, prediction, "velocity")
