"""Exact likelihoods of continuous normalising flows by the instantaneous change of variables.

For an ODE dx/dt = v(x, t) (t = 0 source, t = 1 data) the log-density of the pushed-forward
distribution obeys (Chen et al., 2018, "Neural Ordinary Differential Equations", Thm. 1)::

    d/dt log p_t(x_t) = -div v(x_t, t)      =>      log p_1(x_1) = log p_0(x_0) - int_0^1 div v(x_t, t) dt

:func:`log_prob` integrates the augmented state (x, a) *backward* from t = 1 (the data point) to t = 0
with da/dt = div v(x, t), a(1) = 0, so that a(0) = -int_0^1 div v dt and
``log p_1(x_1) = space.base_log_prob(x_0) + a(0)``.

The divergence is either exact (one vector-Jacobian product per event dimension; cost O(d) backward
passes) or Hutchinson's unbiased trace estimator E_eps[eps^T J eps] with Rademacher or Gaussian probes
held fixed over the whole integration (Grathwohl et al., 2019, "FFJORD").

Extension points for spaces other than R^d (e.g. embedded manifolds, where the Riemannian divergence
differs from the ambient one):

* pass ``divergence_fn=...`` to :func:`log_prob` (same signature as :func:`divergence`), or
* give the space a method ``space.divergence(fn, x, t, method=..., probes=..., create_graph=...)``
  returning ``(v, div)``; :func:`log_prob` uses it when present.

Fixed-step methods step the augmented state through the space's exponential map for ``x`` and a flat
step for the accumulated divergence, so manifold states work with fixed steps; adaptive torchdiffeq
methods ("dopri5", ...) pack ``x`` and the accumulator into one flat tensor and need a Euclidean space.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Tuple

import torch

from sciflow.samplers.ode import FIXED_STEP_METHODS, integrate

__all__ = ["divergence", "velocity_and_divergence", "make_probes", "log_prob", "bits_per_dim"]

DIVERGENCE_METHODS = ("exact", "hutchinson")
PROBE_TYPES = ("rademacher", "gaussian")

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_probes(x: torch.Tensor, n_probes: int = 1, kind: str = "rademacher",
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Hutchinson probe vectors shaped ``(n_probes, *x.shape)`` on x's device/dtype.

    Rademacher probes (entries +-1, equal probability) have the smallest variance among i.i.d. probes
    with E[eps eps^T] = I (Hutchinson, 1990); Gaussian probes N(0, I) are the alternative.
    """
    if int(n_probes) < 1:
        raise ValueError(f"n_probes must be a positive integer, got {n_probes}")
    shape = (int(n_probes), *x.shape)
    if kind == "rademacher":
        bits = torch.randint(0, 2, shape, device=x.device, generator=generator)
        return bits.to(x.dtype) * 2 - 1
    if kind == "gaussian":
        return torch.randn(shape, device=x.device, dtype=x.dtype, generator=generator)
    raise ValueError(f"probe kind must be one of {PROBE_TYPES}, got {kind!r}")


def velocity_and_divergence(fn: Field, x: torch.Tensor, t: torch.Tensor, method: str = "exact",
                            probes: Optional[torch.Tensor] = None,
                            create_graph: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """Evaluate ``v = fn(x, t)`` and its divergence over the event dimensions in one forward pass.

    Args:
        fn: field ``(x, t) -> v`` with ``x, v`` of shape ``(B, *event)`` and ``t`` of shape ``(B,)``
            (t = 0 source, t = 1 data). Rows must not interact (no batch norm in train mode), otherwise
            the divergence mixes examples.
        x: states ``(B, *event)``.
        t: times ``(B,)``.
        method: "exact" (trace of the Jacobian from one vector-Jacobian product per event dimension d;
            exact up to floating point, O(d) backward passes) or "hutchinson" (mean over the probes of
            eps^T (dv/dx) eps, an unbiased estimate).
        probes: ``(n_probes, B, *event)`` for "hutchinson" (see :func:`make_probes`); ignored by "exact".
        create_graph: keep the graph so the result can be differentiated (e.g. maximum-likelihood
            training); otherwise ``v`` and ``div`` are returned detached.

    Returns:
        ``(v, div)`` with ``v`` of shape ``(B, *event)`` and ``div`` of shape ``(B,)``.

    Works inside ``torch.no_grad()``: gradients are enabled locally.
    """
    if method not in DIVERGENCE_METHODS:
        raise ValueError(f"divergence method must be one of {DIVERGENCE_METHODS}, got {method!r}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor (mapping states are not supported yet), got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"x must have shape (batch, *event), got {tuple(x.shape)}")
    with torch.enable_grad():
        xg = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
        v = fn(xg, t)
        if not isinstance(v, torch.Tensor) or v.shape != x.shape:
            raise ValueError(f"field must return a tensor shaped like x {tuple(x.shape)}, "
                             f"got {getattr(v, 'shape', type(v).__name__)}")
        if method == "exact":
            div = _exact_trace(v, xg, create_graph)
        else:
            if probes is None:
                raise ValueError("hutchinson divergence needs probes (n_probes, B, *event); see make_probes")
            if probes.shape[1:] != x.shape:
                raise ValueError(f"probes must have shape (n_probes, {', '.join(map(str, x.shape))}), "
                                 f"got {tuple(probes.shape)}")
            div = _hutchinson_trace(v, xg, probes, create_graph)
    if not create_graph:
        v, div = v.detach(), div.detach()
    return v, div


def divergence(fn: Field, x: torch.Tensor, t: torch.Tensor, method: str = "exact",
               probes: Optional[torch.Tensor] = None, n_probes: int = 1,
               generator: Optional[torch.Generator] = None, create_graph: bool = False) -> torch.Tensor:
    """Divergence ``sum_i d v_i / d x_i`` of ``fn(x, t)`` over the event dimensions, shape ``(B,)``.

    Same as :func:`velocity_and_divergence` but returns only the divergence; for "hutchinson" without
    explicit ``probes``, ``n_probes`` Rademacher probes are drawn with ``generator``.
    """
    if method == "hutchinson" and probes is None:
        probes = make_probes(x, n_probes, "rademacher", generator)
    return velocity_and_divergence(fn, x, t, method, probes, create_graph)[1]


def _exact_trace(v: torch.Tensor, x: torch.Tensor, create_graph: bool) -> torch.Tensor:
    b = x.shape[0]
    vf = v.reshape(b, -1)
    d = vf.shape[1]
    div = torch.zeros(b, device=x.device, dtype=x.dtype)
    # One VJP per coordinate: row i of the Jacobian, of which we keep the diagonal entry. Rows of the
    # batch are independent, so summing v[:, i] over the batch gives every example's row at once.
    for i in range(d):
        (g,) = torch.autograd.grad(vf[:, i].sum(), x, retain_graph=True, create_graph=create_graph)
        div = div + g.reshape(b, -1)[:, i]
    return div


def _hutchinson_trace(v: torch.Tensor, x: torch.Tensor, probes: torch.Tensor, create_graph: bool) -> torch.Tensor:
    b = x.shape[0]
    total = torch.zeros(b, device=x.device, dtype=x.dtype)
    for eps in probes:  # loop over probes (typically 1), not over examples
        (g,) = torch.autograd.grad(v, x, grad_outputs=eps, retain_graph=True, create_graph=create_graph)
        total = total + (g * eps).reshape(b, -1).sum(-1)
    return total / probes.shape[0]


class _AugmentedSpace:
    """Steps the state {"x", "a"}: x through the base space's exp map, the accumulator ``a`` flat."""

    def __init__(self, space):
        self.space = space
        self.is_euclidean = bool(getattr(space, "is_euclidean", True)) if space is not None else True

    def exp(self, s, v):
        x = self.space.exp(s["x"], v["x"]) if self.space is not None else s["x"] + v["x"]
        return {"x": x, "a": s["a"] + v["a"]}

    def proj_tangent(self, s, v):
        vx = self.space.proj_tangent(s["x"], v["x"]) if self.space is not None else v["x"]
        return {"x": vx, "a": v["a"]}


def log_prob(flow, x1: torch.Tensor, cond: Any = None, *, steps: int = 100, method: str = "rk4",
             divergence: str = "exact", n_probes: int = 1, probe: str = "rademacher",
             generator: Optional[torch.Generator] = None, atol: float = 1e-5, rtol: float = 1e-5,
             guidance_scale: float = 1.0, divergence_fn: Optional[Callable] = None,
             base_log_prob: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
             return_x0: bool = False):
    """Model log-density of data ``x1`` in nats, shape ``(B,)``, by the instantaneous change of variables.

    Integrates the augmented ODE backward from t = 1 (data) to t = 0 (source) and adds the base
    log-density of the reached source point: ``log p_1(x1) = log p_0(x0) - int_0^1 div v(x_t, t) dt``.

    Args:
        flow: a :class:`~sciflow.flow.Flow` (anything with ``velocity(x, t, cond, guidance_scale)`` and,
            unless ``base_log_prob`` is given, ``space.base_log_prob``).
        x1: data ``(B, *event)``.
        cond: conditions ``(B, ...)`` or ``None``.
        steps: fixed steps over [0, 1] (NFE = steps x stages); ignored by adaptive methods.
        method: "euler", "midpoint", "heun", "rk4" or a torchdiffeq adaptive method ("dopri5", ...,
            Euclidean spaces only; honours ``atol``/``rtol``).
        divergence: "exact" or "hutchinson" (see :func:`velocity_and_divergence`).
        n_probes, probe: number and kind ("rademacher" or "gaussian") of Hutchinson probes, drawn once
            with ``generator`` and held fixed over the integration (FFJORD).
        guidance_scale: classifier-free guidance scale of the field whose density is computed.
        divergence_fn: optional replacement for :func:`velocity_and_divergence` with the same signature
            (e.g. a Riemannian divergence); otherwise ``flow.space.divergence`` is used if the space has
            one.
        base_log_prob: optional log-density of the source at t = 0 (default ``flow.space.base_log_prob``).
        return_x0: also return the source points x0 reached at t = 0.

    Returns:
        ``(B,)`` log-densities in nats w.r.t. the space's volume measure (Lebesgue on R^d), or
        ``(log_prob, x0)`` when ``return_x0``.
    """
    if not isinstance(x1, torch.Tensor):
        raise TypeError(f"x1 must be a torch.Tensor, got {type(x1).__name__}")
    if divergence not in DIVERGENCE_METHODS:
        raise ValueError(f"divergence must be one of {DIVERGENCE_METHODS}, got {divergence!r}")
    space = getattr(flow, "space", None)
    if space is not None and hasattr(space, "check"):
        space.check(x1, "x1")
    if base_log_prob is None:
        if space is None:
            raise ValueError("log_prob needs flow.space.base_log_prob or an explicit base_log_prob callable")
        base_log_prob = space.base_log_prob
    if divergence_fn is None:
        divergence_fn = getattr(space, "divergence", None) or velocity_and_divergence
    probes = make_probes(x1, n_probes, probe, generator) if divergence == "hutchinson" else None
    b = x1.shape[0]

    def vel(x, t):
        return flow.velocity(x, t, cond=cond, guidance_scale=guidance_scale)

    def aug_field(x, t):
        v, div = divergence_fn(vel, x, t, method=divergence, probes=probes, create_graph=False)
        return v, div

    if method in FIXED_STEP_METHODS:
        state0 = {"x": x1, "a": x1.new_zeros(b)}

        def field(s, t):
            v, div = aug_field(s["x"], t)
            return {"x": v, "a": div}

        res = integrate(field, state0, method=method, steps=steps, t0=1.0, t1=0.0, space=_AugmentedSpace(space))
        x0, acc = res.x["x"], res.x["a"]
    else:
        if space is not None and not getattr(space, "is_euclidean", False):
            raise ValueError(f"adaptive method '{method}' needs a Euclidean space; use a fixed-step method "
                             f"(euler, midpoint, heun, rk4) on {space!r}")
        event = x1.shape[1:]
        # Pack (x, a) into one (B, d + 1) tensor so torchdiffeq controls the error of both.
        packed0 = torch.cat([x1.reshape(b, -1), x1.new_zeros(b, 1)], 1)

        def field(p, t):
            v, div = aug_field(p[:, :-1].reshape(b, *event), t)
            return torch.cat([v.reshape(b, -1), div[:, None]], 1)

        res = integrate(field, packed0, method=method, t0=1.0, t1=0.0, atol=atol, rtol=rtol)
        x0, acc = res.x[:, :-1].reshape(b, *event), res.x[:, -1]
    with torch.no_grad():
        lp = base_log_prob(x0) + acc
    return (lp, x0) if return_x0 else lp


def bits_per_dim(log_prob: torch.Tensor, dim: int, data_scale: Optional[float] = None) -> torch.Tensor:
    """Convert log-densities (nats) to bits per dimension: ``-log_prob / (dim * ln 2)``.

    Args:
        log_prob: log-densities in nats, any shape.
        dim: number of data dimensions per example (e.g. C * H * W).
        data_scale: if the model saw discrete data divided by ``data_scale`` (e.g. 256 for uniformly
            dequantised 8-bit pixels mapped to [0, 1)), ``log2(data_scale)`` is added so the result is
            the bpd of the discrete data (Theis et al., 2016).
    """
    if int(dim) < 1:
        raise ValueError(f"dim must be a positive integer, got {dim}")
    bpd = -log_prob / (int(dim) * math.log(2.0))
    if data_scale is not None:
        if data_scale <= 0:
            raise ValueError(f"data_scale must be positive, got {data_scale}")
        bpd = bpd + math.log2(data_scale)
    return bpd
