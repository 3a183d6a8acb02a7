"""Geodesic conditional paths on Riemannian manifolds (Chen & Lipman 2024, "Flow Matching on General
Geometries", Sec. 3.2, the simple-geometry case).

For x0 (source, t = 0) and x1 (data, t = 1) the conditional path follows the geodesic::

    x_t = exp_{x0}(kappa(t) log_{x0}(x1)),      kappa(0) = 0, kappa(1) = 1

with kappa = ``scheduler(t).alpha`` from the core schedulers (cond-OT gives kappa(t) = t, constant speed).
The target is its time derivative::

    u_t = d/dt x_t = kappa'(t) gamma'(kappa(t)),   gamma(s) = exp_{x0}(s log_{x0}(x1))

taken in closed form from ``space.geodesic`` (the parallel-transported initial velocity); spaces without
it fall back to u_t = kappa'(t) / (1 - kappa(t)) log_{x_t}(x1), which is the same vector for
kappa < 1. On Euclidean space this reduces to the affine cond-OT path.

The loss is measured in the manifold metric, ||P_{x_t} v_theta - u_t||^2_{g(x_t)}, where P_{x_t} projects
the network output onto the tangent space at x_t; the marginal velocity used by samplers is the
projected output. Only the "velocity" parameterisation is supported.

States may be tensors or mappings of tensors (product spaces) as long as the space's methods accept them.
"""
from __future__ import annotations

from typing import Any, Optional

import torch

from sciflow.paths.base import Path, PathSample
from sciflow.paths.schedulers import CondOTScheduler, Scheduler, build_scheduler
from sciflow.registry import register
from sciflow.tree import tree_map


def _bexp(s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return s.reshape(s.shape[0], *([1] * (like.dim() - 1))).to(like.dtype)


def _scale(v: Any, s: torch.Tensor) -> Any:
    return tree_map(lambda a: _bexp(s, a) * a, v)


def build_space(spec):
    """A space from an instance, a registered name or a ``{"name": ..., **kwargs}`` mapping."""
    from sciflow.registry import build_spec
    from sciflow.spaces.base import Space

    if spec is None or isinstance(spec, Space) or hasattr(spec, "exp"):
        return spec
    return build_spec("space", spec)


@register("path", "geodesic")
class GeodesicPath(Path):
    """Geodesic path x_t = exp_{x0}(kappa(t) log_{x0}(x1)) with metric-weighted velocity loss.

    Args:
        space: the manifold (a Space, a registered name like "sphere", or ``{"name": "sphere", "dim": 2}``).
            May be left out and bound later with :meth:`bind` (e.g. by the task that owns the space).
        scheduler: kappa(t) = alpha_t of a core scheduler (name, mapping or object); default cond-OT.
    """

    predictions = ("velocity",)

    def __init__(self, space=None, scheduler="cond_ot"):
        self.space = build_space(space)
        self.scheduler: Scheduler = build_scheduler(scheduler) if scheduler is not None else CondOTScheduler()

    def __repr__(self) -> str:
        return f"GeodesicPath(space={self.space!r}, scheduler={self.scheduler!r})"

    def bind(self, space) -> "GeodesicPath":
        """Set the space (if unset) and return self; raises if a different space is already bound."""
        space = build_space(space)
        if self.space is not None and self.space is not space and repr(self.space) != repr(space):
            raise ValueError(f"GeodesicPath is bound to {self.space!r} but the flow's space is {space!r}")
        self.space = space
        return self

    def _space(self):
        if self.space is None:
            raise ValueError("GeodesicPath has no space: pass space=... or call path.bind(space)")
        return self.space

    def sample(self, x0: Any, x1: Any, t: torch.Tensor) -> PathSample:
        """x_t and u_t for states x0, x1 ``(B, *event)`` (or mappings) and times t ``(B,)`` (t=0 source)."""
        space = self._space()
        sch = self.scheduler(t)
        kappa, dkappa = sch.alpha, sch.d_alpha
        v = space.log(x0, x1)
        if hasattr(space, "geodesic"):
            x_t, dgamma = space.geodesic(x0, v, kappa)
            u_t = _scale(dgamma, dkappa)
        else:
            x_t = space.exp(x0, _scale(v, kappa))
            rem = (1 - kappa).clamp_min(torch.finfo(t.dtype).eps)
            u_t = _scale(space.log(x_t, x1), dkappa / rem)
        return PathSample(x0=x0, x1=x1, t=t, x_t=x_t, dx_t=u_t)

    def loss(self, output: Any, sample: PathSample, prediction: str = "velocity") -> torch.Tensor:
        """||P_{x_t} output - u_t||^2 in the metric at x_t, shape ``(B,)``."""
        self.check_prediction(prediction)
        space = self._space()
        diff = tree_map(torch.sub, space.proj_tangent(sample.x_t, output), sample.dx_t)
        return space.inner(sample.x_t, diff, diff)

    def velocity(self, output: Any, x_t: Any, t: torch.Tensor, prediction: str = "velocity") -> Any:
        """The network output projected onto the tangent space at x_t."""
        self.check_prediction(prediction)
        return self._space().proj_tangent(x_t, output)
