"""Samplers: every sampler is ``sampler(flow, x0, cond=None, guidance_scale=1.0, ...) -> SampleResult``."""
from sciflow.samplers.base import CountingField, SampleResult, time_grid
from sciflow.samplers.ode import ODESampler, integrate
from sciflow.samplers.sde import SDESampler, TorchSDESampler  # issue 5
from sciflow.samplers.particles import ParticleSampler  # issue 5

__all__ = ["CountingField", "SampleResult", "time_grid", "ODESampler", "integrate", "build_sampler"]
__all__ += ["SDESampler", "TorchSDESampler", "ParticleSampler"]  # issue 5


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
from sciflow.samplers.ctmc import CTMCSampler, mixture_jump  # noqa: E402
from sciflow.samplers.product import ProductSampler  # noqa: E402

__all__ += ["CTMCSampler", "mixture_jump", "ProductSampler"]
