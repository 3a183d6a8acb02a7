"""Shared machinery of the Riemannian spaces: a ``Manifold`` base class and numerically safe helpers.

A :class:`Manifold` adds three things to :class:`~sciflow.spaces.base.Space`:

* ``geodesic(x, v, s) -> (gamma(s), gamma'(s))`` for gamma(s) = exp_x(s v): the point *and* its time
  derivative in closed form, used by :class:`sciflow.paths.geodesic.GeodesicPath` for exact targets;
* ``divergence(fn, x, t, ...) -> (v, div)``: the Riemannian divergence of a tangent vector field, the hook
  :func:`sciflow.likelihood.log_prob` calls (exact and Hutchinson);
* ``check`` that also verifies that states lie on the manifold.

Riemannian divergence of an embedded manifold (Chen & Lipman 2024, "Flow Matching on General
Geometries", Sec. 3; Rozen et al. 2021): for M embedded in R^D with tangent projection P_x and a tangent
field v extended to a neighbourhood, div_M v(x) = tr(P_x J_v(x)), with J_v the ambient Jacobian. Only
tangential derivatives enter, so the extension off M does not matter. The identity holds for any
induced metric (Euclidean, scaled Frobenius, Minkowski): the Levi-Civita connection is the projected
ambient derivative, and a constant rescaling of a factor's metric does not change the divergence.

* exact: sum_i (row i of J) . (column i of P), one vector-Jacobian product per ambient coordinate;
* Hutchinson: E[z^T J z] with tangent probes z = P eps when P is Euclidean-orthogonal
  (``orthogonal_projection = True``), else E[eps^T J P eps]; probes are held fixed over an integration.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch

from sciflow.spaces.base import Space


def sinc(x: torch.Tensor) -> torch.Tensor:
    """sin(x)/x with the removable singularity at 0 handled (Taylor branch, gradient-safe)."""
    small = x.abs() < 1e-2
    xs = torch.where(small, torch.ones_like(x), x)
    x2 = x * x
    return torch.where(small, 1 - x2 / 6 + x2 * x2 / 120, torch.sin(xs) / xs)


def sinhc(x: torch.Tensor) -> torch.Tensor:
    """sinh(x)/x with the removable singularity at 0 handled (Taylor branch, gradient-safe)."""
    small = x.abs() < 1e-2
    xs = torch.where(small, torch.ones_like(x), x)
    x2 = x * x
    return torch.where(small, 1 + x2 / 6 + x2 * x2 / 120, torch.sinh(xs) / xs)


def safe_norm(v: torch.Tensor, dim=-1, keepdim: bool = False, eps: float = 0.0) -> torch.Tensor:
    """Euclidean norm whose gradient is 0 (not NaN) at v = 0."""
    sq = v.pow(2).sum(dim=dim, keepdim=keepdim)
    pos = sq > eps
    return torch.where(pos, torch.where(pos, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


def bexpand(s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape per-example scalars ``(B,)`` to broadcast against ``like`` ``(B, ...)``."""
    return s.reshape(s.shape[0], *([1] * (like.dim() - 1)))


class Manifold(Space):
    """Base class of the Riemannian spaces (sphere, torus, SO(3), SE(3), hyperbolic).

    Subclasses implement exp/log/proj/proj_tangent/inner and the base distribution; they should
    override :meth:`geodesic` with a closed form (the default uses exp and log).
    """

    #: True when ``proj_tangent`` is the Euclidean-orthogonal projection in ambient coordinates.
    orthogonal_projection: bool = True
    #: absolute tolerance of the on-manifold check in :meth:`check`.
    atol: float = 1e-4

    @property
    def dim(self) -> int:
        """Intrinsic dimension of the manifold."""
        raise NotImplementedError

    # -- geodesics -------------------------------------------------------------------------------
    def geodesic(self, x: torch.Tensor, v: torch.Tensor, s: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """gamma(s) = exp_x(s v) and its derivative d gamma / ds for per-example ``s`` of shape ``(B,)``.

        Default: gamma'(s) = log_{gamma(s)}(x_end) / (1 - s) with x_end = exp_x(v), valid for s < 1 while
        exp_x(v) stays inside the injectivity radius; subclasses give closed forms valid for every s.
        """
        xs = self.exp(x, bexpand(s, v) * v)
        xe = self.exp(x, v)
        rem = (1 - s).clamp_min(torch.finfo(v.dtype).eps)
        return xs, self.log(xs, xe) / bexpand(rem, v)

    def on_manifold_error(self, x: torch.Tensor) -> torch.Tensor:
        """Per-example violation of the manifold constraint, shape ``(B,)`` (0 on the manifold)."""
        return torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)

    def check(self, x: torch.Tensor, name: str = "x") -> None:
        super().check(x, name)
        err = self.on_manifold_error(x)
        bad = err > self.atol
        if bad.any():
            rows = bad.nonzero().flatten()[:5].tolist()
            raise ValueError(f"{name} is not on {self!r}: constraint violated by up to {err.max().item():.3g} "
                             f"(first bad rows: {rows}); use space.proj(x) to project ambient points")

    # -- divergence (hook used by sciflow.likelihood.log_prob) ----------------------------------
    def divergence(self, fn: Callable, x: torch.Tensor, t: torch.Tensor, method: str = "exact",
                   probes: Optional[torch.Tensor] = None, create_graph: bool = False
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Riemannian divergence of the tangent field ``fn(x, t)`` at ``x`` (see the module docstring).

        Args:
            fn: field ``(x, t) -> v`` with ``x, v`` of shape ``(B, *event)``, ``t`` of shape ``(B,)``
                (t = 0 source, t = 1 data). Its output is projected to the tangent space first.
            x: points on the manifold ``(B, *event)``.
            method: "exact" (one VJP per ambient coordinate) or "hutchinson" (needs ``probes``).
            probes: ``(n_probes, B, *event)`` ambient probes (Rademacher or Gaussian, E[eps eps^T] = I).
            create_graph: keep the graph for differentiating through the result.

        Returns:
            ``(v, div)``: the projected field ``(B, *event)`` and its divergence ``(B,)``.
        """
        if method not in ("exact", "hutchinson"):
            raise ValueError(f"divergence method must be 'exact' or 'hutchinson', got {method!r}")
        b = x.shape[0]
        with torch.enable_grad():
            xg = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
            v = self.proj_tangent(xg, fn(xg, t))
            if v.shape != x.shape:
                raise ValueError(f"field must return a tensor shaped like x {tuple(x.shape)}, got {tuple(v.shape)}")
            xd = x.detach()
            if method == "exact":
                vf = v.reshape(b, -1)
                d = vf.shape[1]
                div = torch.zeros(b, device=x.device, dtype=x.dtype)
                eye = torch.eye(d, device=x.device, dtype=x.dtype)
                for i in range(d):
                    (g,) = torch.autograd.grad(vf[:, i].sum(), xg, retain_graph=True, create_graph=create_graph)
                    col = self.proj_tangent(xd, eye[i].expand(b, d).reshape(x.shape)).reshape(b, d)
                    div = div + (g.reshape(b, d) * col).sum(-1)
            else:
                if probes is None:
                    raise ValueError("hutchinson divergence needs probes (n_probes, B, *event)")
                if tuple(probes.shape[1:]) != tuple(x.shape):
                    raise ValueError(f"probes must have shape (n_probes, {', '.join(map(str, x.shape))}), "
                                     f"got {tuple(probes.shape)}")
                div = torch.zeros(b, device=x.device, dtype=x.dtype)
                for eps in probes:
                    z = self.proj_tangent(xd, eps)
                    left = z if self.orthogonal_projection else eps
                    (g,) = torch.autograd.grad(v, xg, grad_outputs=left, retain_graph=True,
                                               create_graph=create_graph)
                    div = div + (g * z).reshape(b, -1).sum(-1)
                div = div / probes.shape[0]
        if not create_graph:
            v, div = v.detach(), div.detach()
        return v, div
