"""Probability paths, schedulers and training-time distributions."""
from sciflow.paths.affine import AffinePath
from sciflow.paths.base import Path, PathSample, expand_like
from sciflow.paths.schedulers import (
    CondOTScheduler,
    CosineScheduler,
    PolynomialScheduler,
    Scheduler,
    SchedulerOutput,
    VPScheduler,
    build_scheduler,
)
from sciflow.paths.time import BetaTime, LogitNormalTime, TimeSampler, UniformTime, build_time_sampler
from sciflow.paths.interpolants import StochasticInterpolantPath, build_gamma, build_interpolant  # issue 5

__all__ = [
    "AffinePath", "Path", "PathSample", "expand_like",
    "Scheduler", "SchedulerOutput", "CondOTScheduler", "CosineScheduler", "PolynomialScheduler", "VPScheduler",
    "build_scheduler", "TimeSampler", "UniformTime", "LogitNormalTime", "BetaTime", "build_time_sampler",
]
__all__ += ["StochasticInterpolantPath", "build_gamma", "build_interpolant"]  # issue 5
from sciflow.paths.discrete import MixturePath  # noqa: E402
from sciflow.paths.dirichlet import DirichletPath, LinearSimplexPath, dirichlet_flow_coefficient  # noqa: E402
from sciflow.paths.product import ProductPath  # noqa: E402

__all__ += ["MixturePath", "DirichletPath", "LinearSimplexPath", "dirichlet_flow_coefficient", "ProductPath"]
from sciflow.paths.spectral import SpectralPath, SpectralPremetric  # noqa: E402  (issue 3)

__all__ += ["SpectralPath", "SpectralPremetric"]
