"""ODE samplers: fixed-step Euler, midpoint, Heun, RK4 and adaptive solvers through torchdiffeq.

Fixed-step methods take steps through the space's exponential map, x <- exp_x(dt * v), with later
stages' velocities projected to the tangent space at the step's base point. On Euclidean space this
is exactly the textbook scheme; on manifolds it is the standard "RK in the tangent space" scheme
(Crouch-Grossman style first/second order; RK4 loses its order on curved spaces but stays on the
manifold). States may be tensors or mappings of named tensors (product spaces).

Time runs from ``t0`` to ``t1`` in either direction; t = 0 is the source, t = 1 is data.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from sciflow.registry import register
from sciflow.samplers.base import CountingField, SampleResult, stack_trajectory, time_grid
from sciflow.spaces.base import Space
from sciflow.tree import batch_size, first_leaf, tree_map


class _EuclideanOps:
    """Stand-in for a space when none is given: flat steps."""

    is_euclidean = True

    @staticmethod
    def exp(x, v):
        return tree_map(torch.add, x, v)

    @staticmethod
    def proj_tangent(x, v):
        return v


def _scale(v: Any, h: Any) -> Any:
    return tree_map(lambda a: a * h, v)


def _combine(vs, weights):
    def f(*leaves):
        out = leaves[0] * weights[0]
        for leaf, w in zip(leaves[1:], weights[1:]):
            out = out + leaf * w
        return out

    return tree_map(f, *vs)


def _step(method: str, field: Callable, space, x: Any, t: torch.Tensor, h: torch.Tensor) -> Any:
    """One step of size ``h`` (scalar tensor, may be negative) from time ``t`` (shape (B,))."""
    exp, proj = space.exp, space.proj_tangent
    if method == "euler":
        return exp(x, _scale(field(x, t), h))
    if method == "midpoint":
        k1 = field(x, t)
        k2 = proj(x, field(exp(x, _scale(k1, h / 2)), t + h / 2))
        return exp(x, _scale(k2, h))
    if method == "heun":
        k1 = field(x, t)
        k2 = proj(x, field(exp(x, _scale(k1, h)), t + h))
        return exp(x, _scale(_combine([k1, k2], [0.5, 0.5]), h))
    if method == "rk4":
        k1 = field(x, t)
        k2 = proj(x, field(exp(x, _scale(k1, h / 2)), t + h / 2))
        k3 = proj(x, field(exp(x, _scale(k2, h / 2)), t + h / 2))
        k4 = proj(x, field(exp(x, _scale(k3, h)), t + h))
        return exp(x, _scale(_combine([k1, k2, k3, k4], [1 / 6, 1 / 3, 1 / 3, 1 / 6]), h))
    raise ValueError(f"unknown fixed-step method '{method}'; choose euler, midpoint, heun or rk4")


FIXED_STEP_METHODS = ("euler", "midpoint", "heun", "rk4")


def integrate(
    field: Callable[[Any, torch.Tensor], Any],
    x0: Any,
    *,
    method: str = "euler",
    steps: Optional[int] = 100,
    t0: float = 0.0,
    t1: float = 1.0,
    grid: Optional[torch.Tensor] = None,
    space: Optional[Space] = None,
    return_trajectory: bool = False,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    progress: bool = False,
    last_step_midpoint: bool = False,
) -> SampleResult:
    """Integrate dx/dt = field(x, t) from ``t0`` to ``t1``.

    Args:
        field: callable ``(x, t) -> v`` with x of shape ``(B, *event)`` (or a mapping) and t of shape ``(B,)``.
        x0: initial states at ``t0``.
        method: "euler", "midpoint", "heun", "rk4" (fixed steps) or any torchdiffeq adaptive method
            ("dopri5", "dopri8", "bosh3", ...), which ignore ``steps`` and honour ``atol``/``rtol``.
        steps: number of fixed steps; the NFE is steps x stages (1, 2, 2, 4).
        t0, t1: start and end time; ``t1 < t0`` integrates backward (data -> source).
        grid: explicit monotone time grid ``(T,)``; overrides ``steps``, ``t0``, ``t1``.
        space: the state space, whose ``exp``/``proj_tangent`` are used for steps (default flat).
        return_trajectory: keep the states at every grid time (adaptive: at ``grid`` or just endpoints).
        progress: show a tqdm progress bar over steps.
        last_step_midpoint: take the last fixed step with the midpoint rule, which never evaluates the
            field at the step's end, instead of Heun/RK4, whose last stage lands on ``t1``. For fields that
            are singular at ``t1`` (x1-prediction: v = (x1_hat - x) / (1 - t)), a stage at t1 = 1 - t_eps
            multiplies the network's error by 1 / t_eps; skipping it is the final-step practice of Karras
            et al. (EDM, 2022).

    Returns:
        :class:`SampleResult` with the final state, NFE, grid and optional trajectory.
    """
    counted = CountingField(field)
    ref = first_leaf(x0)
    n = batch_size(x0)
    space = space if space is not None else _EuclideanOps()
    if method in FIXED_STEP_METHODS:
        ts = time_grid(steps, t0, t1, grid, ref.device, ref.dtype)
        x = x0
        traj = [x0] if return_trajectory else None
        it = range(ts.numel() - 1)
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc=f"{method} steps", leave=False)
        last = ts.numel() - 2
        for i in it:
            t = ts[i].expand(n)
            m = "midpoint" if last_step_midpoint and i == last and method in ("heun", "rk4") else method
            x = _step(m, counted, space, x, t, ts[i + 1] - ts[i])
            if traj is not None:
                traj.append(x)
        return SampleResult(
            x=x, nfe=counted.nfe, times=ts, trajectory=stack_trajectory(traj) if traj is not None else None
        )
    return _integrate_adaptive(counted, x0, method, t0, t1, grid, space, return_trajectory, atol, rtol)


def _integrate_adaptive(counted, x0, method, t0, t1, grid, space, return_trajectory, atol, rtol) -> SampleResult:
    try:
        from torchdiffeq import odeint
    except ImportError as err:  # pragma: no cover - torchdiffeq is a core dependency
        raise ImportError("adaptive ODE methods need torchdiffeq: pip install torchdiffeq") from err
    if not isinstance(x0, torch.Tensor) or not getattr(space, "is_euclidean", False):
        raise ValueError(
            f"adaptive method '{method}' integrates Euclidean tensor states only; "
            f"use a fixed-step method (euler, midpoint, heun, rk4) on {space!r}"
        )
    n = x0.shape[0]
    ts = (
        torch.as_tensor(grid, device=x0.device, dtype=x0.dtype)
        if grid is not None
        else torch.tensor([t0, t1], device=x0.device, dtype=x0.dtype)
    )

    def rhs(t, x):
        return counted(x, t.expand(n))

    xs = odeint(rhs, x0, ts, method=method, atol=atol, rtol=rtol)
    return SampleResult(x=xs[-1], nfe=counted.nfe, times=ts, trajectory=xs if return_trajectory else None)


class ODESampler:
    """A registered ODE sampler: ``sampler(flow, x0, cond=None, guidance_scale=1.0) -> SampleResult``.

    Args:
        method: integration method, see :func:`integrate`.
        steps: fixed steps (ignored by adaptive methods).
        atol, rtol: tolerances for adaptive methods.
        t0, t1: integration interval; ``None`` (default) takes the flow's ``time_interval()``, which is
            [0, 1] (source -> data) unless the parameterisation is singular at an end point.
    """

    def __init__(self, method: str = "euler", steps: int = 100, atol: float = 1e-5, rtol: float = 1e-5,
                 t0: Optional[float] = None, t1: Optional[float] = None):
        self.method, self.steps, self.atol, self.rtol, self.t0, self.t1 = method, steps, atol, rtol, t0, t1

    def __repr__(self) -> str:
        return f"ODESampler(method={self.method!r}, steps={self.steps})"

    def __call__(self, flow, x0, cond=None, guidance_scale: float = 1.0, return_trajectory: bool = False,
                 grid=None, progress: bool = False) -> SampleResult:
        def field(x, t):
            return flow.velocity(x, t, cond=cond, guidance_scale=guidance_scale)

        lo, hi = flow.time_interval() if hasattr(flow, "time_interval") else (0.0, 1.0)
        t0 = lo if self.t0 is None else self.t0
        t1 = hi if self.t1 is None else self.t1
        # e.g. an x1-predicting flow's velocity (x1_hat - x) / sigma_t blows up towards t = 1
        singular_end = (1.0 if t1 > t0 else 0.0) in getattr(flow, "singular_ends", ())
        return integrate(
            field, x0, method=self.method, steps=self.steps, t0=t0, t1=t1, grid=grid, space=flow.space,
            return_trajectory=return_trajectory, atol=self.atol, rtol=self.rtol, progress=progress,
            last_step_midpoint=singular_end,
        )


def _factory(method: str):
    def make(**kwargs) -> ODESampler:
        return ODESampler(method=method, **kwargs)

    make.__doc__ = f"ODE sampler using the {method} method; keyword arguments as :class:`ODESampler`."
    return make


for _m in FIXED_STEP_METHODS + ("dopri5", "dopri8", "bosh3", "adaptive_heun"):
    register("sampler", _m)(_factory(_m))
