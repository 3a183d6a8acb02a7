"""Data-dependent couplings: the source sample x0 depends on the condition (Albergo, Goldstein, Boffi,
Ranganath & Vanden-Eijnden, "Stochastic interpolants with data-dependent couplings", ICML 2024).

Time convention: t = 0 is the source x0 (here: built from the condition), t = 1 is the target x1.

The coupling rho(x0, x1 | c) = rho(x1 | c) rho(x0 | c) draws the base point from the condition c
(previous state, low-resolution field, observed history) instead of from N(0, I). In sciflow this is a
*source*: a callable ``source(n, cond=None, device=None, dtype=None, generator=None) -> x0`` handed to
:class:`~sciflow.Flow` as ``source=``. ``Flow.loss`` calls it with the batch's conditions while training
and ``Flow.sample(cond=...)`` with the sampling conditions, so training and sampling use the same base.

Forecasting domains use them like this (x1 = next state, cond = current state)::

    src = NoisyConditionSource(scale=0.1)                      # x0 = x_prev + 0.1 * noise
    path = StochasticInterpolantPath("linear", {"name": "brownian", "scale": 0.2})
    flow = interpolant_flow(net, path, "drift_denoiser", source=src)   # net also sees cond
    flow.loss(x_next, cond=x_prev)                              # training
    flow.sample(cond=x_now, sampler="euler_maruyama", steps=50, epsilon=0.1)   # forecasting

For states whose condition has another shape, pick the matching builder: :class:`LastObservationSource`
(history ``(B, T, ...)`` -> its last frame), :class:`UpsampledSource` (low-resolution ``(B, C, h, w)``
-> ``(B, C, H, W)``), or :class:`ConditionSource` with any ``transform``. A mapping condition picks its
entry with ``key=``. All noise is drawn on the condition's device with the given generator.
:class:`CorruptionCoupling` covers the case where the degradation of x1 is known (x0 = corrupt(x1))
and training data carry no condition.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Tuple, Union

import torch

from sciflow.couplings.base import Coupling
from sciflow.registry import register


class ConditionSource:
    """x0 = transform(cond) + scale * N(0, I).

    Args:
        scale: standard deviation of the added Gaussian noise (>= 0; 0 = deterministic base).
        transform: ``cond -> base`` tensor ``(B, *event_shape)`` (default identity).
        key: entry of a mapping condition to use (``cond[key]``); ``None`` uses ``cond`` itself.
    """

    def __init__(self, scale: float = 0.0, transform: Optional[Callable[[Any], torch.Tensor]] = None,
                 key: Optional[str] = None):
        if not (isinstance(scale, (int, float)) and scale >= 0):
            raise ValueError(f"{type(self).__name__}: scale must be a number >= 0, got {scale!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"{type(self).__name__}: transform must be callable, got {type(transform).__name__}")
        self.scale = float(scale)
        self.transform = transform
        self.key = key

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale}, key={self.key!r})"

    def base(self, cond: Any) -> torch.Tensor:
        """The deterministic part transform(cond), ``(B, *event_shape)``."""
        return self.transform(cond) if self.transform is not None else cond

    def __call__(self, n: int, cond: Any = None, device=None, dtype=None,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        name = type(self).__name__
        if cond is None:
            raise ValueError(f"{name} builds x0 from the condition, but cond is None; pass cond= to loss()/sample()")
        if self.key is not None:
            if not isinstance(cond, Mapping) or self.key not in cond:
                raise ValueError(f"{name}: cond must be a mapping with key {self.key!r}, got "
                                 f"{sorted(cond) if isinstance(cond, Mapping) else type(cond).__name__}")
            cond = cond[self.key]
        elif isinstance(cond, Mapping):
            raise ValueError(f"{name}: cond is a mapping with keys {sorted(cond)}; say which entry to use with key=")
        x0 = self.base(cond)
        if not isinstance(x0, torch.Tensor) or not x0.is_floating_point():
            raise TypeError(f"{name}: the base built from cond must be a floating-point tensor, got "
                            f"{getattr(x0, 'dtype', type(x0).__name__)}")
        if x0.shape[0] != n:
            raise ValueError(f"{name}: asked for n={n} samples but the condition has batch size {x0.shape[0]}")
        x0 = x0.to(device=device if device is not None else x0.device, dtype=dtype if dtype is not None else x0.dtype)
        if self.scale > 0:
            x0 = x0 + self.scale * torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        return x0


@register("source", "noisy_condition")
class NoisyConditionSource(ConditionSource):
    """x0 = cond + scale * N(0, I): the condition has the state's shape (e.g. the previous state)."""

    def __init__(self, scale: float = 0.1, key: Optional[str] = None):
        super().__init__(scale=scale, key=key)


@register("source", "last_observation")
class LastObservationSource(ConditionSource):
    """x0 = history[:, -1] + scale * N(0, I) for an observed history ``(B, T, *event_shape)``.

    Args:
        scale: noise level; key: mapping entry holding the history; dim: the time axis of the history (1).
    """

    def __init__(self, scale: float = 0.1, key: Optional[str] = None, dim: int = 1):
        if dim < 1:
            raise ValueError(f"last_observation: dim must be >= 1 (dim 0 is the batch), got {dim}")
        self.dim = int(dim)
        super().__init__(scale=scale, transform=self._last, key=key)

    def _last(self, history: torch.Tensor) -> torch.Tensor:
        if not isinstance(history, torch.Tensor) or history.dim() <= self.dim:
            raise ValueError(f"last_observation: history must be a tensor with a time axis at dim {self.dim}, got "
                             f"{tuple(getattr(history, 'shape', ()))}")
        return history.select(self.dim, -1)


@register("source", "upsampled")
class UpsampledSource(ConditionSource):
    """x0 = interpolate(low_res, size) + scale * N(0, I) for gridded fields ``(B, C, h, w)`` (or 1-D/3-D).

    Args:
        size: spatial size of the state, e.g. ``(64, 64)``; or ``scale_factor``.
        mode: ``torch.nn.functional.interpolate`` mode ("bilinear", "nearest", "bicubic", ...).
        scale, key: noise level and mapping entry.
    """

    def __init__(self, size: Optional[Union[int, Sequence[int]]] = None, scale_factor: Optional[float] = None,
                 mode: str = "bilinear", scale: float = 0.1, key: Optional[str] = None):
        if (size is None) == (scale_factor is None):
            raise ValueError("upsampled source needs exactly one of size= or scale_factor=")
        self.size = tuple(size) if isinstance(size, (list, tuple)) else size
        self.scale_factor, self.mode = scale_factor, mode
        super().__init__(scale=scale, transform=self._up, key=key)

    def _up(self, low: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        if not isinstance(low, torch.Tensor) or low.dim() < 3:
            raise ValueError(f"upsampled source: the condition must be (B, C, *spatial), got "
                             f"{tuple(getattr(low, 'shape', ()))}")
        kw = {"align_corners": False} if self.mode in ("linear", "bilinear", "bicubic", "trilinear") else {}
        return F.interpolate(low, size=self.size, scale_factor=self.scale_factor, mode=self.mode, **kw)


@register("coupling", "corruption")
class CorruptionCoupling(Coupling):
    """Data-dependent coupling x0 = corrupt(x1) + scale * N(0, I) (the source draw is discarded).

    Use when the degradation is known (masking, blurring, downsampling + upsampling) and the model is
    trained to undo it; at sampling time pass the degraded observations as ``x0=``.
    """

    def __init__(self, corrupt: Callable[[torch.Tensor], torch.Tensor], scale: float = 0.0):
        if not callable(corrupt):
            raise TypeError(f"corruption coupling: corrupt must be callable, got {type(corrupt).__name__}")
        if not scale >= 0:
            raise ValueError(f"corruption coupling: scale must be >= 0, got {scale}")
        self.corrupt, self.scale = corrupt, float(scale)

    def __call__(self, x0, x1, cond=None, generator=None) -> Tuple[Any, Any, Any]:
        base = self.corrupt(x1)
        if not isinstance(base, torch.Tensor) or base.shape != x1.shape:
            raise ValueError(f"corrupt(x1) must return a tensor of shape {tuple(x1.shape)}, got "
                             f"{tuple(getattr(base, 'shape', ()))}")
        if self.scale > 0:
            base = base + self.scale * torch.randn(base.shape, device=base.device, dtype=base.dtype,
                                                   generator=generator)
        return base, x1, cond
