"""Samplers: every sampler is ``sampler(flow, x0, cond=None, guidance_scale=1.0, return_trajectory=False,
progress=False, [generator=None]) -> SampleResult`` and reports its NFE.

ODE (fixed-step through the space's exponential map, adaptive via torchdiffeq), SDE (Euler-Maruyama,
stochastic Heun, torchsde), CTMC for discrete tokens, one joint loop for product states, and particle
samplers (SMC / best-of-N) with a reward.
"""
from sciflow.samplers.base import CountingField, SampleResult, time_grid
from sciflow.samplers.ctmc import CTMCSampler, mixture_jump
from sciflow.samplers.ode import ODESampler, integrate
from sciflow.samplers.particles import ParticleSampler
from sciflow.samplers.product import ProductSampler
from sciflow.samplers.sde import SDESampler, TorchSDESampler

__all__ = [
    "CountingField", "SampleResult", "time_grid", "ODESampler", "integrate", "build_sampler",
    "SDESampler", "TorchSDESampler", "ParticleSampler", "CTMCSampler", "mixture_jump", "ProductSampler",
]


def build_sampler(spec="euler", **overrides):
    """Build a sampler from a name (``"euler"``, ``"dopri5"``, ...), a mapping ``{"name": ..., **kw}``, or
    pass a callable through. ``overrides`` (e.g. ``steps=50``) are merged into the keyword arguments."""
    from sciflow.registry import build_spec

    if callable(spec) and not isinstance(spec, (str, dict)):
        if overrides:
            raise ValueError(
                f"options {sorted(overrides)} cannot be applied to an already built sampler {spec!r}; "
                f"set them when building it, or pass the sampler by name"
            )
        return spec
    return build_spec("sampler", spec, **overrides)
