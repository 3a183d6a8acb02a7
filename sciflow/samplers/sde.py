"""SDE samplers for stochastic interpolants and affine Gaussian paths: Euler-Maruyama, stochastic Heun,
and an adapter that runs the same SDE through ``torchsde.sdeint``.

Time convention: t = 0 is the source, t = 1 is data.

For a diffusion level epsilon(t) >= 0 chosen at sampling time, the SDEs

    forward  (t: 0 -> 1):  dX = [b(t, X) + eps(t) s(t, X)] dt + sqrt(2 eps(t)) dW
    backward (t: 1 -> 0):  dX = [b(t, X) - eps(t) s(t, X)] dt + sqrt(2 eps(t)) dW   (reverse time)

have the same time marginals as the probability-flow ODE dX = b dt (Albergo, Boffi & Vanden-Eijnden,
"Stochastic Interpolants", Thm 2.8; for an affine path b is the velocity and 2 eps = g^2 in the
notation of Kim et al., "Inference-time scaling for flow models", 2025). eps = 0 is the ODE.

**Where b and s come from.** Each step evaluates the flow's network once and turns the output into
(b, s) with :func:`sciflow.paths.conversions.drift_and_score`: a path either offers
``path.drift_and_score(output, x_t, t, prediction)`` (stochastic interpolants with a two-field
prediction such as "drift_score"/"drift_denoiser") or is a core :class:`~sciflow.paths.affine.AffinePath`
with a standard Gaussian source, whose score -E[x0 | x_t] / sigma_t is converted in closed form (no
retraining). Alternatively ``score_flow=`` takes a second flow trained with prediction "score" or
"denoiser" on the same path (two networks: 2 NFE per step).

**End points.** The score may be singular at t = 0 or t = 1 (sigma_1 = 0 for affine paths, gamma = 0
for Brownian interpolants). The samplers never evaluate the score there: an evaluation at t in {0, 1}
uses eps = 0 (a deterministic drift evaluation). With ``denoise_final=True`` (default) the last step is a
noise-free probability-flow step (for affine cond-OT paths, x + (1 - t) v = E[x1 | x_t], Tweedie's
denoiser). With an Euler-Maruyama forward run, the first step starts at t = 0 and so is deterministic too
unless the path has a finite score there (it is then still taken with eps = 0: the effect on the result is
O(step size)).

NFE is the number of network evaluations (a classifier-free-guided evaluation counts once, as in the
ODE samplers).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Union

import torch

from sciflow.paths.conversions import drift_and_score
from sciflow.registry import register
from sciflow.samplers.base import SampleResult, stack_trajectory, time_grid

Epsilon = Union[float, int, Callable[[torch.Tensor], Any]]


def resolve_epsilon(epsilon: Epsilon) -> Callable[[torch.Tensor], torch.Tensor]:
    """Turn a constant or a callable ``eps(t)`` (t of shape ``(B,)``) into a function returning ``(B,)``."""
    if isinstance(epsilon, bool):
        raise TypeError("epsilon must be a number >= 0 or a callable eps(t), got a bool")
    if isinstance(epsilon, (int, float)):
        if not (epsilon >= 0 and math.isfinite(epsilon)):
            raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon}")
        value = float(epsilon)
        return lambda t: torch.full_like(t, value)
    if callable(epsilon):
        def fn(t: torch.Tensor) -> torch.Tensor:
            e = epsilon(t)
            e = torch.as_tensor(e, device=t.device, dtype=t.dtype)
            e = e.expand_as(t) if e.dim() == 0 else e
            if e.shape != t.shape:
                raise ValueError(f"epsilon(t) must return a scalar or a tensor of shape {tuple(t.shape)}, "
                                 f"got {tuple(e.shape)}")
            if (e < 0).any() or not torch.isfinite(e).all():
                raise ValueError("epsilon(t) must be finite and >= 0")
            return e
        return fn
    raise TypeError(f"epsilon must be a number >= 0 or a callable eps(t), got {type(epsilon).__name__}")


class SDEField:
    """Evaluates (b, s) of a flow at (x, t) and counts network evaluations.

    Args:
        flow: a :class:`~sciflow.Flow` whose path supports drift and score (see module docstring).
        cond, guidance_scale: passed to ``flow.predict``.
        score_flow: optional second flow supplying the score (prediction "score" or "denoiser").
    """

    def __init__(self, flow, cond=None, guidance_scale: float = 1.0, score_flow=None):
        self.flow, self.cond, self.guidance_scale, self.score_flow = flow, cond, guidance_scale, score_flow
        self.nfe = 0

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.flow.velocity(x, t, cond=self.cond, guidance_scale=self.guidance_scale)

    def drift_score(self, x: torch.Tensor, t: torch.Tensor):
        flow = self.flow
        if self.score_flow is not None:
            b = self.drift(x, t)
            sf = self.score_flow
            out = sf.predict(x, t, self.cond, self.guidance_scale)
            self.nfe += 1
            return b, drift_and_score(sf.path, out, x, t, sf.prediction)[1]
        if getattr(flow, "source", None) is not None and not callable(getattr(flow.path, "drift_and_score", None)):
            # the closed-form affine score -E[x0 | x_t] / sigma_t holds for x0 ~ N(0, I) only
            raise ValueError(f"SDE sampling converts the affine path's prediction into a score assuming a "
                             f"standard Gaussian source, but this flow has a custom source ({flow.source!r}); "
                             f"use an ODE sampler, or pass a score_flow trained for the score")
        out = flow.predict(x, t, self.cond, self.guidance_scale)
        self.nfe += 1
        b, s = drift_and_score(flow.path, out, x, t, flow.prediction)
        if b is None:
            raise ValueError(f"prediction '{flow.prediction}' gives no drift; sample with a drift flow and pass this "
                             f"one as score_flow=")
        return b, s

    def sde_drift(self, x: torch.Tensor, t: torch.Tensor, eps: Optional[torch.Tensor], direction: float):
        """b + direction * eps * s (eps ``(B,)`` or None for the pure drift)."""
        if eps is None:
            return self.drift(x, t)
        b, s = self.drift_score(x, t)
        e = eps.reshape(-1, *([1] * (x.dim() - 1)))
        return b + direction * e * s


def _is_endpoint(t: float) -> bool:
    return t <= 0.0 or t >= 1.0


class _BaseSDESampler:
    def __init__(self, steps: int = 100, epsilon: Epsilon = 1.0, t0: float = 0.0, t1: float = 1.0,
                 denoise_final: bool = True, score_flow=None, seed: Optional[int] = None,
                 generator: Optional[torch.Generator] = None):
        if steps is None or int(steps) < 1:
            raise ValueError(f"steps must be a positive integer, got {steps}")
        if t0 == t1 or not (0.0 <= t0 <= 1.0 and 0.0 <= t1 <= 1.0):
            raise ValueError(f"t0 and t1 must be distinct times in [0, 1], got t0={t0}, t1={t1}")
        self.steps, self.t0, self.t1 = int(steps), float(t0), float(t1)
        self.epsilon = epsilon
        self._eps = resolve_epsilon(epsilon)
        self._eps_const = float(epsilon) if isinstance(epsilon, (int, float)) else None
        self.denoise_final = bool(denoise_final)
        self.score_flow = score_flow
        self.seed = seed
        self.generator = generator

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(steps={self.steps}, epsilon={self.epsilon!r}, t0={self.t0}, t1={self.t1}, "
                f"denoise_final={self.denoise_final})")

    def _generator(self, device, generator: Optional[torch.Generator] = None) -> Optional[torch.Generator]:
        """The call's generator, else the sampler's own, else one seeded by ``seed``, else None (global RNG)."""
        if generator is not None:
            return generator
        if self.generator is not None:
            return self.generator
        if self.seed is not None:
            g = torch.Generator(device=device)
            g.manual_seed(int(self.seed))
            return g
        return None

    def _eps_at(self, t: torch.Tensor, t_value: float, deterministic: bool) -> Optional[torch.Tensor]:
        """eps at a time (None = no score, no noise): endpoints and deterministic steps give None."""
        if deterministic or _is_endpoint(t_value) or self._eps_const == 0.0:
            return None
        e = self._eps(t)
        if self._eps_const is not None:
            return e  # constant > 0: no device sync needed
        return None if not bool((e > 0).any()) else e


def _check_state(x0) -> None:
    if not isinstance(x0, torch.Tensor):
        raise TypeError(f"SDE samplers work on tensor states (Euclidean), got {type(x0).__name__}")
    if not x0.is_floating_point():
        raise TypeError(f"x0 must be a floating-point tensor, got dtype {x0.dtype}")


class SDESampler(_BaseSDESampler):
    """Fixed-step SDE sampler: ``method`` "euler_maruyama" (1 NFE/step) or "heun" (stochastic Heun, 2 NFE/step).

    Args:
        method: "euler_maruyama" or "heun".
        steps: number of steps on a uniform grid from ``t0`` to ``t1``.
        epsilon: diffusion level eps(t) >= 0, a constant or a callable ``eps(t) -> (B,)``; 0 gives the ODE.
        t0, t1: start and end time; ``t1 < t0`` runs the backward SDE (data -> source).
        denoise_final: take the last step without noise (probability-flow step), see module docstring.
        score_flow: optional second flow providing the score.
        seed / generator: randomness of the Brownian increments (default: the global torch RNG); a
            ``generator`` passed to the call (``flow.sample(..., generator=g)``) takes precedence.
    """

    def __init__(self, method: str = "euler_maruyama", **kwargs):
        if method not in ("euler_maruyama", "heun"):
            raise ValueError(f"SDE method must be 'euler_maruyama' or 'heun', got {method!r}")
        super().__init__(**kwargs)
        self.method = method

    def __call__(self, flow, x0, cond=None, guidance_scale: float = 1.0, return_trajectory: bool = False,
                 progress: bool = False, grid=None, generator: Optional[torch.Generator] = None) -> SampleResult:
        _check_state(x0)
        field = SDEField(flow, cond, guidance_scale, self.score_flow)
        ts = time_grid(self.steps, self.t0, self.t1, grid, x0.device, x0.dtype)
        gen = self._generator(x0.device, generator)
        n = x0.shape[0]
        x = x0
        traj = [x0] if return_trajectory else None
        t_list = ts.tolist()
        it = range(len(t_list) - 1)
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc=f"sde {self.method}", leave=False)
        last = len(t_list) - 2
        for i in it:
            x = self.step(field, x, ts[i].expand(n), ts[i + 1].expand(n), t_list[i], t_list[i + 1],
                          deterministic=self.denoise_final and i == last, generator=gen)
            if traj is not None:
                traj.append(x)
        return SampleResult(x=x, nfe=field.nfe, times=ts, trajectory=stack_trajectory(traj) if traj else None,
                            extra={"epsilon": self.epsilon, "method": self.method})

    def step(self, field: SDEField, x, t, t_next, t_value: float, t_next_value: float, deterministic: bool,
             generator: Optional[torch.Generator] = None):
        """One step from ``t`` to ``t_next`` (tensors ``(B,)``; floats for the end-point checks)."""
        h = t_next_value - t_value
        direction = 1.0 if h > 0 else -1.0
        eps = self._eps_at(t, t_value, deterministic)
        f1 = field.sde_drift(x, t, eps, direction)
        if eps is not None:
            xi = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
            noise = (2 * eps * abs(h)).sqrt().reshape(-1, *([1] * (x.dim() - 1))) * xi
        else:
            noise = None
        if self.method == "euler_maruyama":
            x_new = x + h * f1
            return x_new + noise if noise is not None else x_new
        x_pred = x + h * f1
        if noise is not None:
            x_pred = x_pred + noise
        eps2 = self._eps_at(t_next, t_next_value, deterministic)
        f2 = field.sde_drift(x_pred, t_next, eps2, direction)
        x_new = x + 0.5 * h * (f1 + f2)
        return x_new + noise if noise is not None else x_new


class TorchSDESampler(_BaseSDESampler):
    """The same SDE integrated by ``torchsde.sdeint`` (fixed step = the uniform grid spacing).

    Args:
        method: a torchsde method: "euler" (Ito Euler-Maruyama), "srk" (order-1.5 strong for additive
            noise), "milstein", or Stratonovich "heun", "midpoint", "euler_heun", "reversible_heun"
            (the noise is additive, so the Ito and Stratonovich SDEs coincide).
        other arguments as :class:`SDESampler`.

    The backward SDE is integrated in reversed time tau = t0 - t (torchsde needs increasing times).
    """

    _STRATONOVICH = ("heun", "midpoint", "euler_heun", "reversible_heun")

    def __init__(self, method: str = "euler", **kwargs):
        allowed = ("euler", "srk", "milstein") + self._STRATONOVICH
        if method not in allowed:
            raise ValueError(f"torchsde method must be one of {list(allowed)}, got {method!r}")
        super().__init__(**kwargs)
        self.method = method

    def __call__(self, flow, x0, cond=None, guidance_scale: float = 1.0, return_trajectory: bool = False,
                 progress: bool = False, generator: Optional[torch.Generator] = None) -> SampleResult:
        try:
            import torchsde
        except ImportError as err:  # pragma: no cover
            raise ImportError("the 'torchsde' sampler needs torchsde: pip install torchsde") from err
        _check_state(x0)
        field = SDEField(flow, cond, guidance_scale, self.score_flow)
        ts = time_grid(self.steps, self.t0, self.t1, None, x0.device, x0.dtype)
        direction = 1.0 if self.t1 > self.t0 else -1.0
        span = abs(self.t1 - self.t0)
        taus = (ts - self.t0).abs()
        shape = x0.shape
        n = shape[0]
        sampler = self
        sde_type = "stratonovich" if self.method in self._STRATONOVICH else "ito"

        class _Adapter(torch.nn.Module):
            noise_type = "diagonal"

            def __init__(self):
                super().__init__()
                self.sde_type = sde_type

            def _t(self, tau):
                tv = sampler.t0 + direction * float(tau)
                return torch.full((n,), tv, device=x0.device, dtype=x0.dtype), tv

            def f(self, tau, y):
                t, tv = self._t(tau)
                eps = sampler._eps_at(t, tv, False)
                return (direction * field.sde_drift(y.reshape(shape), t, eps, direction)).reshape(n, -1)

            def g(self, tau, y):
                t, tv = self._t(tau)
                eps = sampler._eps_at(t, tv, False)
                if eps is None:
                    return torch.zeros_like(y)
                return (2 * eps).sqrt().reshape(n, 1).expand_as(y)

        sde_taus = taus[:-1] if self.denoise_final else taus
        seed = self.seed
        if seed is None or generator is not None:
            gen = generator if generator is not None else self.generator
            seed = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=gen, device=gen.device if gen else None))
        y0 = x0.reshape(n, -1)
        if sde_taus.numel() >= 2:
            bm = torchsde.BrownianInterval(t0=0.0, t1=span, size=tuple(y0.shape), dtype=y0.dtype, device=y0.device,
                                           entropy=seed,
                                           levy_area_approximation="space-time" if self.method == "srk" else "none")
            ys = torchsde.sdeint(_Adapter(), y0, sde_taus, bm=bm, method=self.method, dt=span / self.steps,
                                 adaptive=False)
        else:  # one step with denoise_final: only the final deterministic step
            ys = y0.unsqueeze(0)
        x = ys[-1].reshape(shape)
        traj = [y.reshape(shape) for y in ys] if return_trajectory else None
        if self.denoise_final:
            h = float(ts[-1] - ts[-2])
            x = x + h * field.drift(x, ts[-2].expand(n))
            if traj is not None:
                traj.append(x)
        return SampleResult(x=x, nfe=field.nfe, times=ts, trajectory=torch.stack(traj) if traj else None,
                            extra={"epsilon": self.epsilon, "method": f"torchsde:{self.method}"})


@register("sampler", "euler_maruyama")
def euler_maruyama(**kwargs) -> SDESampler:
    """Euler-Maruyama SDE sampler; keyword arguments as :class:`SDESampler` (steps, epsilon, t0, t1, ...)."""
    return SDESampler(method="euler_maruyama", **kwargs)


@register("sampler", "sde_heun")
def sde_heun(**kwargs) -> SDESampler:
    """Stochastic Heun SDE sampler (2 NFE per step); keyword arguments as :class:`SDESampler`."""
    return SDESampler(method="heun", **kwargs)


@register("sampler", "torchsde")
def torchsde_sampler(**kwargs) -> TorchSDESampler:
    """The SDE through ``torchsde.sdeint``; keyword arguments as :class:`TorchSDESampler` (method="euler", ...)."""
    return TorchSDESampler(**kwargs)
