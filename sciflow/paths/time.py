"""Training-time distributions over t in [0, 1] (t = 0 source, t = 1 data).

Logit-normal follows Esser et al., "Scaling Rectified Flow Transformers" (2024); the U-shaped Beta(a, a)
with a < 1 puts weight near both ends.
"""
from __future__ import annotations

from typing import Optional

import torch

from sciflow.registry import register


class TimeSampler:
    """Draws ``n`` training times, shape ``(n,)``, in [0, 1]."""

    def __call__(
        self,
        n: int,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in vars(self).items())})"


@register("time_sampler", "uniform")
class UniformTime(TimeSampler):
    """t ~ U[0, 1)."""

    def __call__(self, n, device=None, dtype=None, generator=None):
        return torch.rand(n, device=device, dtype=dtype, generator=generator)


@register("time_sampler", "logit_normal")
class LogitNormalTime(TimeSampler):
    """t = sigmoid(m + s z), z ~ N(0, 1)."""

    def __init__(self, mean: float = 0.0, std: float = 1.0):
        if std <= 0:
            raise ValueError(f"logit_normal time sampler needs std > 0, got {std}")
        self.mean, self.std = float(mean), float(std)

    def __call__(self, n, device=None, dtype=None, generator=None):
        z = torch.randn(n, device=device, dtype=dtype, generator=generator)
        return torch.sigmoid(self.mean + self.std * z)


def gamma_sample(shape: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Gamma(shape, 1) draws, one per element of ``shape`` (any positive floats), from ``generator``.

    Marsaglia & Tsang, "A simple method for generating gamma variables" (ACM TOMS 2000): for alpha >= 1,
    d = alpha - 1/3, c = 1 / sqrt(9 d); propose v = (1 + c x)^3 with x ~ N(0, 1) and accept d v when
    log u < x^2 / 2 + d - d v + d log v; alpha < 1 uses Gamma(alpha) = Gamma(alpha + 1) U^(1 / alpha).
    Written here because torch's Gamma sampler reads only the global RNG; rejected elements are re-drawn
    together, so the loop runs a few rounds (acceptance > 95 %), never once per element.
    """
    small = shape < 1
    alpha = torch.where(small, shape + 1, shape)
    d = alpha - 1.0 / 3.0
    c = torch.rsqrt(9.0 * d)
    out = torch.empty_like(alpha)
    pending = torch.ones_like(alpha, dtype=torch.bool)
    while bool(pending.any()):
        x = torch.randn(alpha.shape, device=alpha.device, dtype=alpha.dtype, generator=generator)
        u = torch.rand(alpha.shape, device=alpha.device, dtype=alpha.dtype, generator=generator)
        v = (1 + c * x) ** 3
        ok = (v > 0) & (torch.log(u) < 0.5 * x * x + d - d * v + d * torch.log(v.clamp_min(1e-30)))
        take = pending & ok
        out = torch.where(take, d * v, out)
        pending = pending & ~ok
    boost = torch.rand(alpha.shape, device=alpha.device, dtype=alpha.dtype, generator=generator)
    return torch.where(small, out * boost ** (1.0 / shape), out)


@register("time_sampler", "beta")
class BetaTime(TimeSampler):
    """t ~ Beta(a, b) = X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b) (:func:`gamma_sample`, driven by
    ``generator``); a = b < 1 is U-shaped."""

    def __init__(self, a: float = 0.5, b: float = 0.5):
        if a <= 0 or b <= 0:
            raise ValueError(f"beta time sampler needs a, b > 0, got a={a}, b={b}")
        self.a, self.b = float(a), float(b)

    def __call__(self, n, device=None, dtype=None, generator=None):
        dtype = dtype or torch.get_default_dtype()
        shape = torch.tensor([self.a, self.b], device=device, dtype=dtype).repeat(n, 1)  # (n, 2)
        g = gamma_sample(shape, generator)
        return g[:, 0] / (g[:, 0] + g[:, 1])


def build_time_sampler(spec) -> TimeSampler:
    """Build from a name, a ``{"name": ..., **kwargs}`` mapping, or pass an instance through."""
    from sciflow.registry import build_spec

    return spec if isinstance(spec, TimeSampler) else build_spec("time_sampler", spec)
