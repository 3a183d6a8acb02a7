"""Drift and score from a trained model, without retraining.

Time convention: t = 0 is the source, t = 1 is data.

**The protocol SDE samplers use.** :func:`drift_and_score` returns ``(b, s)``, the probability-flow drift
b(t, x) (= the ODE velocity) and the score s(t, x) = grad_x log p_t(x) of the marginal at time t, from a
network output. A path takes part by offering a method
``path.drift_and_score(output, x_t, t, prediction) -> (drift or None, score or None)``
(:class:`~sciflow.paths.interpolants.StochasticInterpolantPath` does). Affine Gaussian paths of the core
(:class:`~sciflow.paths.affine.AffinePath`) are handled here in closed form, so any core model trained with
velocity, x1 or noise prediction can be sampled with an SDE as it is.

**Affine Gaussian paths.** For x_t = alpha_t x1 + sigma_t x0 with x0 ~ N(0, I) independent of x1,
Tweedie's formula gives the score s = -E[x0 | x_t] / sigma_t; E[x0 | x_t] is the model's "noise"
prediction, which :meth:`AffinePath.convert` obtains exactly from velocity or x1 predictions. Inverting,
v = (alpha'/alpha) x + (alpha' sigma^2 / alpha - sigma' sigma) s (used by Kim et al., "Inference-time scaling
for flow models", 2025, for the SDE conversion; Albergo et al. 2023, Sec. 4 for the interpolant view).
This needs a *standard Gaussian* source; with a data-dependent source there is no closed-form score.
The score is singular at t = 1 (sigma_1 = 0): samplers never evaluate it there.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import torch

from sciflow.paths.affine import AffinePath
from sciflow.paths.base import expand_like


def _affine_coefficients(path: AffinePath, t: torch.Tensor, like: torch.Tensor):
    s = path.scheduler(t)
    return tuple(expand_like(v, like) for v in (s.alpha, s.sigma, s.d_alpha, s.d_sigma))


def affine_score(path: AffinePath, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                 prediction: str) -> torch.Tensor:
    """Score -E[x0 | x_t] / sigma_t of an affine Gaussian path (x0 ~ N(0, I)), shape of ``x_t``."""
    _, sigma, _, _ = _affine_coefficients(path, t, x_t)
    noise = path.convert(output, x_t, t, prediction, "noise")
    return -noise / sigma


def affine_drift_and_score(path: AffinePath, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                           prediction: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """(velocity, score) at (x_t, t) from a velocity / x1 / noise prediction on an affine Gaussian path."""
    return (path.convert(output, x_t, t, prediction, "velocity"),
            affine_score(path, output, x_t, t, prediction))


def affine_velocity_from_score(path: AffinePath, score: torch.Tensor, x_t: torch.Tensor,
                               t: torch.Tensor) -> torch.Tensor:
    """v = (alpha'/alpha) x + (alpha' sigma^2 / alpha - sigma' sigma) s (needs alpha_t != 0, i.e. t > 0)."""
    a, s, da, ds = _affine_coefficients(path, t, x_t)
    return (da / a) * x_t + (da * s * s / a - ds * s) * score


def affine_noise_from_score(path: AffinePath, score: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """E[x0 | x_t] = -sigma_t s (the noise prediction)."""
    _, s, _, _ = _affine_coefficients(path, t, score)
    return -s * score


def drift_and_score(path: Any, output: Any, x_t: Any, t: torch.Tensor,
                    prediction: str) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """(drift, score) from a network output for any path that supports it (see module docstring)."""
    method = getattr(path, "drift_and_score", None)
    if callable(method):
        return method(output, x_t, t, prediction)
    if isinstance(path, AffinePath):
        return affine_drift_and_score(path, output, x_t, t, prediction)
    raise TypeError(f"{type(path).__name__} offers no score: SDE sampling needs a path with a method "
                    f"drift_and_score(output, x_t, t, prediction) (e.g. StochasticInterpolantPath) or an "
                    f"AffinePath with a standard Gaussian source")
