"""sciflow: flow matching for scientific data.

Public API: :class:`Flow`, the sub-packages ``spaces``, ``paths``, ``couplings``, ``samplers``,
``guidance``, ``nn``, ``metrics``, ``datasets``, and :func:`seed_everything`.
Time convention: t = 0 is the source (noise/prior/previous state), t = 1 is data.
"""
from sciflow import couplings, guidance, nn, paths, samplers, spaces
from sciflow.flow import Flow
from sciflow.registry import register
from sciflow.samplers import SampleResult, integrate

__version__ = "0.1.0"

_LAZY_SUBMODULES = ("training", "likelihood", "metrics", "datasets", "config", "registry", "tasks", "benchmarking")


def __getattr__(name):
    # heavier sub-packages (Lightning, POT) load on first use, so `import sciflow` stays fast
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"sciflow.{name}")
    raise AttributeError(f"module 'sciflow' has no attribute '{name}'")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) for reproducible runs."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


__all__ = ["Flow", "SampleResult", "integrate", "register", "seed_everything",
           "couplings", "guidance", "nn", "paths", "samplers", "spaces"]
