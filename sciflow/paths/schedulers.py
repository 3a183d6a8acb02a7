"""Schedulers (alpha_t, sigma_t) for affine Gaussian paths x_t = alpha_t x1 + sigma_t x0.

Convention everywhere in sciflow: t = 0 is the source (noise), t = 1 is data, so a scheduler satisfies
alpha_0 = 0, sigma_0 = 1 and alpha_1 = 1, sigma_1 = 0 (VP approaches these only in the limit).
Derivatives are closed form; ``tests/paths`` checks them against finite differences.

References: Lipman et al., "Flow Matching for Generative Modeling" (2023) for cond-OT and VP in this
time convention; Nichol & Dhariwal (2021) for the cosine schedule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sciflow.registry import register


@dataclass
class SchedulerOutput:
    """Scheduler values at times ``t``; every field has the shape of ``t``."""

    alpha: torch.Tensor
    sigma: torch.Tensor
    d_alpha: torch.Tensor
    d_sigma: torch.Tensor


class Scheduler:
    """Maps times ``t`` of shape ``(B,)`` in [0, 1] to :class:`SchedulerOutput`."""

    def __call__(self, t: torch.Tensor) -> SchedulerOutput:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


@register("scheduler", "cond_ot")
class CondOTScheduler(Scheduler):
    """Linear (conditional optimal-transport) schedule: alpha_t = t, sigma_t = 1 - t."""

    def __call__(self, t: torch.Tensor) -> SchedulerOutput:
        return SchedulerOutput(alpha=t, sigma=1 - t, d_alpha=torch.ones_like(t), d_sigma=-torch.ones_like(t))


@register("scheduler", "polynomial")
class PolynomialScheduler(Scheduler):
    """alpha_t = t^n, sigma_t = 1 - t^n (n = 1 is cond-OT)."""

    def __init__(self, n: float = 2.0):
        if n <= 0:
            raise ValueError(f"polynomial scheduler needs n > 0, got n={n}")
        self.n = float(n)

    def __call__(self, t: torch.Tensor) -> SchedulerOutput:
        n = self.n
        a = t.pow(n)
        da = n * t.pow(n - 1)
        return SchedulerOutput(alpha=a, sigma=1 - a, d_alpha=da, d_sigma=-da)


@register("scheduler", "cosine")
class CosineScheduler(Scheduler):
    """Variance-preserving trigonometric schedule: alpha_t = sin(pi t / 2), sigma_t = cos(pi t / 2)."""

    def __call__(self, t: torch.Tensor) -> SchedulerOutput:
        h = 0.5 * math.pi
        return SchedulerOutput(
            alpha=torch.sin(h * t), sigma=torch.cos(h * t), d_alpha=h * torch.cos(h * t), d_sigma=-h * torch.sin(h * t)
        )


@register("scheduler", "vp")
class VPScheduler(Scheduler):
    """Variance-preserving diffusion schedule of Song et al. (2021) in flow time (t=0 noise).

    With s = 1 - t and T(s) = 0.5 s^2 (beta_max - beta_min) + s beta_min:
    alpha_t = exp(-T/2), sigma_t = sqrt(1 - exp(-T)). sigma_1 = 0 and alpha_0 = exp(-T(1)/2) ~ 0.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        if not 0 <= beta_min < beta_max:
            raise ValueError(f"VP scheduler needs 0 <= beta_min < beta_max, got {beta_min}, {beta_max}")
        self.beta_min = float(beta_min)
        self.beta_max = float(beta_max)

    def __call__(self, t: torch.Tensor) -> SchedulerOutput:
        s = 1 - t
        big_t = 0.5 * s**2 * (self.beta_max - self.beta_min) + s * self.beta_min
        d_big_t = -(s * (self.beta_max - self.beta_min) + self.beta_min)  # dT/dt
        alpha = torch.exp(-0.5 * big_t)
        one_minus = -torch.expm1(-big_t)  # 1 - exp(-T), accurate for small T
        sigma = one_minus.sqrt()
        d_alpha = -0.5 * d_big_t * alpha
        d_sigma = 0.5 * d_big_t * torch.exp(-big_t) / sigma
        return SchedulerOutput(alpha=alpha, sigma=sigma, d_alpha=d_alpha, d_sigma=d_sigma)


def build_scheduler(spec) -> Scheduler:
    """Build a scheduler from a name, a ``{"name": ..., **kwargs}`` mapping, or pass an instance through."""
    from sciflow.registry import build_spec

    return spec if isinstance(spec, Scheduler) else build_spec("scheduler", spec)
