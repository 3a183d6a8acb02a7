"""Use any geomstats manifold (SPD matrices, Grassmannians, Stiefel, ...) as a sciflow space.

Example::

    from geomstats.geometry.spd_matrices import SPDMatrices
    from sciflow.spaces.geomstats_adapter import GeomstatsSpace

    space = GeomstatsSpace(SPDMatrices(3))          # states (B, 3, 3)
    flow = sciflow.Flow(model, space=space, path=GeodesicPath(space))

geomstats (Miolane et al. 2020) is an optional dependency (the ``riemannian`` extra). geomstats 2.8
imports ``numpy.trapz``, which numpy 2.4 removed, so it needs ``numpy<2.4``; importing this adapter
with an incompatible numpy raises an ``ImportError`` that says so.

Backends: with ``GEOMSTATS_BACKEND=pytorch`` tensors are passed through and the maps are
differentiable; with the default numpy backend every call converts to numpy and back (slow, not
differentiable, fine for evaluation and oracles). The native spaces in :mod:`sciflow.spaces` are
much faster: use this adapter for manifolds sciflow does not implement.

The base distribution is the manifold's ``random_uniform`` (or ``random_point``); ``base_log_prob``
needs ``log_volume=`` (uniform on a compact manifold) or a ``base_log_prob=`` callable.
"""
from __future__ import annotations

import math
import os
from typing import Callable, Optional

import torch

from sciflow.spaces.manifold import Manifold

_IMPORT_ERROR: Optional[BaseException] = None


def import_geomstats():
    """Import geomstats or raise an ImportError explaining how to get a working install."""
    try:
        import geomstats  # noqa: F401
        import geomstats.backend as gs
    except Exception as err:  # geomstats raises ImportError (numpy.trapz) or AttributeError on numpy>=2.4
        import numpy

        hint = ""
        if "trapz" in str(err) or tuple(int(p) for p in numpy.__version__.split(".")[:2]) >= (2, 4):
            hint = (f" geomstats 2.8 needs numpy<2.4 (it imports numpy.trapz, removed in numpy 2.4; "
                    f"this environment has numpy {numpy.__version__}). Install the extra in a separate "
                    f"environment: pip install 'sciflow[riemannian]' 'numpy<2.4'.")
        raise ImportError(f"the geomstats adapter needs geomstats, which failed to import: {err}.{hint}") from err
    return gs


def geomstats_available() -> bool:
    """True if geomstats imports in this environment."""
    try:
        import_geomstats()
        return True
    except ImportError:
        return False


class GeomstatsSpace(Manifold):
    """Wrap a geomstats manifold (with its default metric) as a sciflow :class:`Manifold`.

    Args:
        manifold: a geomstats manifold instance with a ``metric`` (e.g. ``Hypersphere(2)``,
            ``SPDMatrices(3)``, ``SpecialOrthogonal(3)``).
        log_volume: log of the total volume, for a uniform ``base_log_prob`` on compact manifolds.
        base_log_prob: optional callable ``x -> (B,)`` log-density of the base distribution.
        orthogonal_projection: whether ``to_tangent`` is Euclidean-orthogonal in the ambient coordinates
            (used by the Hutchinson divergence; True for embedded spheres and matrix groups).
    """

    def __init__(self, manifold, log_volume: Optional[float] = None,
                 base_log_prob: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                 orthogonal_projection: bool = True):
        import_geomstats()
        if not hasattr(manifold, "metric"):
            raise TypeError(f"manifold must be a geomstats manifold with a metric, got {type(manifold).__name__}")
        self.manifold = manifold
        self.metric = manifold.metric
        self.event_shape = tuple(int(s) for s in manifold.shape)
        self.log_volume = log_volume
        self._base_log_prob = base_log_prob
        self.orthogonal_projection = bool(orthogonal_projection)
        self.torch_backend = os.environ.get("GEOMSTATS_BACKEND", "numpy") == "pytorch"

    def __repr__(self) -> str:
        return f"GeomstatsSpace({type(self.manifold).__name__}, shape={self.event_shape})"

    @property
    def dim(self) -> int:
        return int(self.manifold.dim)

    # -- conversion ------------------------------------------------------------------------------
    def _in(self, a: torch.Tensor):
        return a if self.torch_backend else a.detach().cpu().numpy()

    def _out(self, a, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(a).to(device=like.device, dtype=like.dtype)

    # -- geometry --------------------------------------------------------------------------------
    def exp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self._out(self.metric.exp(self._in(v), self._in(x)), x)

    def log(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._out(self.metric.log(self._in(y), self._in(x)), x)

    def proj(self, x: torch.Tensor) -> torch.Tensor:
        return self._out(self.manifold.projection(self._in(x)), x)

    def proj_tangent(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self._out(self.manifold.to_tangent(self._in(v), self._in(x)), v)

    def inner(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self._out(self.metric.inner_product(self._in(u), self._in(v), self._in(x)), u).reshape(x.shape[0])

    def dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._out(self.metric.dist(self._in(x), self._in(y)), x).reshape(x.shape[0])

    def random_base(self, n: int, device=None, dtype=None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Draws from geomstats' ``random_uniform`` (or ``random_point``). geomstats uses its own global
        RNG: ``generator`` only seeds it (numpy backend) when given."""
        if generator is not None:
            import numpy as np

            np.random.seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        draw = getattr(self.manifold, "random_uniform", None) or self.manifold.random_point
        out = torch.as_tensor(draw(n_samples=n)).reshape(n, *self.event_shape)
        return out.to(device=device, dtype=dtype if dtype is not None else torch.get_default_dtype())

    def base_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if self._base_log_prob is not None:
            return self._base_log_prob(x)
        if self.log_volume is None:
            raise NotImplementedError(f"{self!r} has no base log-density: pass log_volume= (uniform base on a "
                                      f"compact manifold) or base_log_prob=")
        return torch.full(x.shape[:1], -float(self.log_volume), device=x.device, dtype=x.dtype)

    def on_manifold_error(self, x: torch.Tensor) -> torch.Tensor:
        ok = torch.as_tensor(self.manifold.belongs(self._in(x), atol=self.atol)).reshape(-1)
        return torch.where(ok.to(x.device), 0.0, math.inf).to(x.dtype)
