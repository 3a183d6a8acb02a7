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


@register("time_sampler", "beta")
class BetaTime(TimeSampler):
    """t ~ Beta(a, b); a = b < 1 is U-shaped. Uses Gamma draws through ``torch.distributions``, which
    read the global RNG (``generator`` is accepted for interface symmetry and ignored: torch offers no
    seeded Gamma sampler); seeding with :func:`sciflow.seed_everything` makes it reproducible."""

    def __init__(self, a: float = 0.5, b: float = 0.5):
        if a <= 0 or b <= 0:
            raise ValueError(f"beta time sampler needs a, b > 0, got a={a}, b={b}")
        self.a, self.b = float(a), float(b)

    def __call__(self, n, device=None, dtype=None, generator=None):
        dtype = dtype or torch.get_default_dtype()
        a = torch.full((n,), self.a, device=device, dtype=dtype)
        b = torch.full((n,), self.b, device=device, dtype=dtype)
        return torch.distributions.Beta(a, b).sample()


def build_time_sampler(spec) -> TimeSampler:
    """Build from a name, a ``{"name": ..., **kwargs}`` mapping, or pass an instance through."""
    from sciflow.registry import build_spec

    return spec if isinstance(spec, TimeSampler) else build_spec("time_sampler", spec)
