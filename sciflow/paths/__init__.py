"""Probability paths, schedulers and training-time distributions.

A path answers: how are x0 (t = 0, source) and x1 (t = 1, data) joined at time t, what does the network
regress, and what velocity does a sampler integrate (see :class:`Path`).
"""
from sciflow.paths.affine import AffinePath
from sciflow.paths.base import Path, PathSample, expand_like
from sciflow.paths.dirichlet import DirichletPath, LinearSimplexPath, dirichlet_flow_coefficient
from sciflow.paths.discrete import MixturePath
from sciflow.paths.geodesic import GeodesicPath
from sciflow.paths.interpolants import StochasticInterpolantPath, build_gamma, build_interpolant
from sciflow.paths.product import ProductPath
from sciflow.paths.schedulers import (
    CondOTScheduler,
    CosineScheduler,
    PolynomialScheduler,
    Scheduler,
    SchedulerOutput,
    VPScheduler,
    build_scheduler,
)
from sciflow.paths.spectral import SpectralPath, SpectralPremetric
from sciflow.paths.time import BetaTime, LogitNormalTime, TimeSampler, UniformTime, build_time_sampler

__all__ = [
    "Path", "PathSample", "expand_like", "AffinePath", "GeodesicPath", "SpectralPath", "SpectralPremetric",
    "StochasticInterpolantPath", "build_gamma", "build_interpolant", "MixturePath", "DirichletPath",
    "LinearSimplexPath", "dirichlet_flow_coefficient", "ProductPath",
    "Scheduler", "SchedulerOutput", "CondOTScheduler", "CosineScheduler", "PolynomialScheduler", "VPScheduler",
    "build_scheduler", "TimeSampler", "UniformTime", "LogitNormalTime", "BetaTime", "build_time_sampler",
]
