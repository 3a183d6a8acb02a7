"""Stochastic interpolants x_t = I(t, x0, x1) + gamma(t) z (Albergo, Boffi & Vanden-Eijnden, 2023).

Time convention: t = 0 is the source x0 (noise, prior, or a previous state), t = 1 is data x1.

Every interpolant here is affine in the end points, I(t, x0, x1) = a(t) x0 + b(t) x1, with
a(0) = 1, b(0) = 0, a(1) = 0, b(1) = 1 (the mirror interpolant, I = x1, is the exception), and the latent
noise z ~ N(0, I) is independent of (x0, x1). The coupling of (x0, x1) may be anything: independent,
minibatch OT, entropic OT (Schrodinger bridge), or data-dependent (x0 = previous state + noise).

Marginal fields (paper, Sec. 2-3), with dI = a'(t) x0 + b'(t) x1:

* drift      b(t, x) = E[dI + gamma'(t) z | x_t = x]    (the probability-flow ODE velocity);
* velocity   v(t, x) = E[dI | x_t = x]                  (so b = v + gamma' eta);
* denoiser   eta(t, x) = E[zeta | x_t = x]              (zeta = z, or x0 for a Gaussian-source interpolant);
* score      s(t, x) = grad log rho_t(x) = -eta(t, x) / g(t), g = gamma (or a(t) for a Gaussian source).

Generative SDEs for any diffusion level epsilon(t) >= 0 chosen at sampling time (paper, Thm 2.8):
forward dX = [b + eps s] dt + sqrt(2 eps) dW (t: 0 -> 1); backward dX = [b - eps s] dt + sqrt(2 eps) dW
(t: 1 -> 0). They are sampled by :mod:`sciflow.samplers.sde`; eps = 0 is the ODE, sampled by the core
ODE samplers through :meth:`StochasticInterpolantPath.velocity`.

**One network, several fields.** A :class:`~sciflow.Flow` has one network and one ``prediction``. The
two-field predictions ("drift_score", "drift_denoiser", "velocity_denoiser") make the network return
both fields, either as a mapping ``{"drift": ..., "score": ...}`` (keys = the two words of the prediction)
or as one tensor whose dimension 1 holds the two fields concatenated (first field first), e.g. an
``MLP(2 * d)`` on a ``d``-dimensional state. The single-field predictions "score" / "denoiser" train a
separate score network that a sampler takes as ``score_flow=``; "drift" alone gives the ODE only.

**Objectives** (per example, averaged over state dimensions; the paper's quadratic forms):

* drift:    |b|^2 - 2 (dI + gamma' z) . b       (= |b - dI - gamma' z|^2 minus a network-free constant)
* score:    |s|^2 + 2 zeta . s / g              (= |s + zeta / g|^2 minus a constant)
* denoiser: |eta - zeta|^2,  velocity: |v - dI|^2.

The drift and score objectives may be negative; their minimisers are the exact fields. With
``antithetic=True`` each (x0, x1, t) is evaluated at x_t^+ = I + gamma z and x_t^- = I - gamma z and the
two losses are averaged, which cancels the gamma'(t) z and z / gamma terms that blow up at the end
points (paper, Sec. 6.1). The network then has to evaluate both states: wrap it in
:class:`AntitheticModel` (or build the flow with :func:`interpolant_flow`, which does it for you).

**End points.** The Brownian gamma(t) = sqrt(t (1 - t)) has an infinite derivative at t = 0 and 1: train
with ``Flow(t_eps=1e-3)`` (``interpolant_flow`` sets it), and prefer "drift_*" predictions, whose drift
is finite everywhere ("velocity_denoiser" needs b = v + gamma' eta and is refused for such gammas).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from torch import nn

from sciflow.paths.base import Path, PathSample, expand_like
from sciflow.registry import register

_PI = math.pi


def _autograd_derivative(fn: Callable[[torch.Tensor], torch.Tensor], t: torch.Tensor) -> torch.Tensor:
    """d fn / dt elementwise, for a user function without a closed-form derivative."""
    with torch.enable_grad():
        tt = t.detach().requires_grad_(True)
        y = fn(tt)
        if not isinstance(y, torch.Tensor) or y.shape != tt.shape:
            raise ValueError(f"a user-defined schedule must map t of shape {tuple(tt.shape)} to a tensor of the "
                             f"same shape, got {getattr(y, 'shape', type(y).__name__)}")
        (d,) = torch.autograd.grad(y.sum(), tt, allow_unused=True)
    return torch.zeros_like(t) if d is None else d.detach()


# ---------------------------------------------------------------------------------------------------
# Interpolants I(t, x0, x1) = a(t) x0 + b(t) x1
# ---------------------------------------------------------------------------------------------------
class Interpolant:
    """Deterministic part I(t, x0, x1) = a(t) x0 + b(t) x1 of a stochastic interpolant.

    ``coefficients(t)`` returns ``(a, b, a', b')``, each of the shape of ``t`` ``(B,)``.
    ``gaussian_source`` is True for one-sided interpolants, whose x0 ~ N(0, I) plays the role of the noise.
    """

    gaussian_source: bool = False

    def coefficients(self, t: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


@register("interpolant", "linear")
class LinearInterpolant(Interpolant):
    """I = (1 - t) x0 + t x1."""

    def coefficients(self, t):
        one = torch.ones_like(t)
        return 1 - t, t, -one, one


@register("interpolant", "trigonometric")
class TrigonometricInterpolant(Interpolant):
    """I = cos(pi t / 2) x0 + sin(pi t / 2) x1 (variance preserving for independent unit-variance ends)."""

    def coefficients(self, t):
        c, s = torch.cos(0.5 * _PI * t), torch.sin(0.5 * _PI * t)
        return c, s, -0.5 * _PI * s, 0.5 * _PI * c


@register("interpolant", "encoder_decoder")
class EncoderDecoderInterpolant(Interpolant):
    """I = cos^2(pi t) (1[t < 1/2] x0 + 1[t >= 1/2] x1): x0 is encoded into pure noise at t = 1/2 and
    decoded into x1 (paper, Sec. 3.4); use it with ``gamma="sin2"`` (gamma = sin^2(pi t))."""

    def coefficients(self, t):
        c2 = torch.cos(_PI * t).pow(2)
        dc2 = -_PI * torch.sin(2 * _PI * t)
        first = t < 0.5
        zero = torch.zeros_like(t)
        return (torch.where(first, c2, zero), torch.where(first, zero, c2),
                torch.where(first, dc2, zero), torch.where(first, zero, dc2))


@register("interpolant", "one_sided")
class OneSidedInterpolant(Interpolant):
    """One-sided interpolant x_t = a(t) x0 + b(t) x1 with a Gaussian base x0 ~ N(0, I) (paper, Sec. 3.2).

    The Gaussian x0 is the noise, so gamma must be zero. ``schedule="linear"``: a = 1 - t, b = t (the
    cond-OT affine path); ``schedule="trigonometric"``: a = cos(pi t / 2), b = sin(pi t / 2) (the VP
    interpolant used for inference-time scaling by Kim et al.).
    """

    gaussian_source = True

    def __init__(self, schedule: str = "linear"):
        if schedule not in ("linear", "trigonometric"):
            raise ValueError(f"one_sided interpolant: schedule must be 'linear' or 'trigonometric', got {schedule!r}")
        self.schedule = schedule
        self._base = LinearInterpolant() if schedule == "linear" else TrigonometricInterpolant()

    def __repr__(self) -> str:
        return f"OneSidedInterpolant(schedule={self.schedule!r})"

    def coefficients(self, t):
        return self._base.coefficients(t)


@register("interpolant", "mirror")
class MirrorInterpolant(Interpolant):
    """I = x1: the interpolant joins a data point to itself, x_t = x1 + gamma(t) z (paper, Sec. 3.3).

    With a non-zero gamma this is a denoising path from data to data; sampling starts from data x0.
    """

    def coefficients(self, t):
        zero = torch.zeros_like(t)
        return zero, torch.ones_like(t), zero, zero


@register("interpolant", "custom")
class CustomInterpolant(Interpolant):
    """User-defined I = a(t) x0 + b(t) x1 from callables ``a(t)``, ``b(t)`` on tensors ``(B,)``.

    Derivatives ``da``, ``db`` are optional (torch autograd otherwise). ``gaussian_source`` marks a
    one-sided interpolant with x0 ~ N(0, I).
    """

    def __init__(self, a: Callable, b: Callable, da: Optional[Callable] = None, db: Optional[Callable] = None,
                 gaussian_source: bool = False):
        for name, fn in (("a", a), ("b", b), ("da", da), ("db", db)):
            if fn is not None and not callable(fn):
                raise TypeError(f"custom interpolant: {name} must be callable, got {type(fn).__name__}")
        self.a, self.b, self.da, self.db = a, b, da, db
        self.gaussian_source = bool(gaussian_source)

    def coefficients(self, t):
        da = self.da(t) if self.da is not None else _autograd_derivative(self.a, t)
        db = self.db(t) if self.db is not None else _autograd_derivative(self.b, t)
        return self.a(t), self.b(t), da, db


# ---------------------------------------------------------------------------------------------------
# Noise levels gamma(t)
# ---------------------------------------------------------------------------------------------------
class Gamma:
    """Noise level gamma(t) >= 0 of the latent z.

    ``__call__(t)`` returns ``(gamma, gamma')`` of the shape of ``t``. ``singular_derivative`` is True when
    gamma' is infinite at an end point (Brownian); ``gamma_dot_gamma(t)`` = gamma gamma' is always finite.
    """

    singular_derivative: bool = False

    def __call__(self, t: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def gamma_dot_gamma(self, t: torch.Tensor) -> torch.Tensor:
        g, dg = self(t)
        return g * dg

    @property
    def is_zero(self) -> bool:
        return False

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


@register("gamma", "brownian")
class BrownianGamma(Gamma):
    """gamma(t) = scale sqrt(t (1 - t)): a Brownian bridge of variance scale^2 (scale = sigma of SB-CFM).

    gamma'(t) = scale (1 - 2t) / (2 sqrt(t (1 - t))) is infinite at t = 0, 1; gamma gamma' = scale^2 (1 - 2t) / 2.
    """

    singular_derivative = True

    def __init__(self, scale: float = 1.0):
        if not scale > 0:
            raise ValueError(f"brownian gamma: scale must be > 0, got {scale} (use gamma='zero' for no noise)")
        self.scale = float(scale)

    def __call__(self, t):
        r = (t * (1 - t)).sqrt()
        return self.scale * r, self.scale * (1 - 2 * t) / (2 * r)

    def gamma_dot_gamma(self, t):
        return self.scale ** 2 * (1 - 2 * t) / 2


register("gamma", "scaled")(BrownianGamma)


@register("gamma", "sin2")
class Sin2Gamma(Gamma):
    """gamma(t) = scale sin^2(pi t) (smooth; pairs with the encoder-decoder interpolant)."""

    def __init__(self, scale: float = 1.0):
        if not scale > 0:
            raise ValueError(f"sin2 gamma: scale must be > 0, got {scale}")
        self.scale = float(scale)

    def __call__(self, t):
        return self.scale * torch.sin(_PI * t).pow(2), self.scale * _PI * torch.sin(2 * _PI * t)


@register("gamma", "zero")
class ZeroGamma(Gamma):
    """gamma = 0: a deterministic interpolant (flow matching)."""

    def __call__(self, t):
        zero = torch.zeros_like(t)
        return zero, zero

    @property
    def is_zero(self) -> bool:
        return True


@register("gamma", "custom")
class CustomGamma(Gamma):
    """User-defined gamma from a callable ``fn(t)`` on tensors ``(B,)`` (derivative ``dfn`` or autograd).

    Set ``singular_derivative=True`` if gamma' is infinite at an end point.
    """

    def __init__(self, fn: Callable, dfn: Optional[Callable] = None, singular_derivative: bool = False):
        if not callable(fn) or (dfn is not None and not callable(dfn)):
            raise TypeError("custom gamma: fn (and dfn if given) must be callable")
        self.fn, self.dfn = fn, dfn
        self.singular_derivative = bool(singular_derivative)

    def __call__(self, t):
        g = self.fn(t)
        dg = self.dfn(t) if self.dfn is not None else _autograd_derivative(self.fn, t)
        return g, dg


def _build(kind: str, spec: Any, base: type, default_cls: type):
    from sciflow.registry import build

    if spec is None:
        return default_cls()
    if isinstance(spec, base):
        return spec
    if isinstance(spec, str):
        return build(kind, spec)
    if isinstance(spec, dict):
        spec = dict(spec)
        if "name" not in spec:
            raise ValueError(f"a {kind} mapping needs a 'name', got keys {sorted(spec)}")
        return build(kind, spec.pop("name"), **spec)
    if callable(spec):
        return CustomGamma(spec) if kind == "gamma" else spec
    raise TypeError(f"{kind} must be a name, a mapping, a callable or a {base.__name__}, got {type(spec).__name__}")


def build_interpolant(spec: Any = "linear") -> Interpolant:
    """Interpolant from a name ("linear", "trigonometric", "encoder_decoder", "one_sided", "mirror"), a mapping
    ``{"name": ..., **kw}`` or an instance."""
    return _build("interpolant", spec, Interpolant, LinearInterpolant)


def build_gamma(spec: Any = "brownian") -> Gamma:
    """Gamma from a name ("brownian"/"scaled", "sin2", "zero"), a mapping, a callable ``gamma(t)`` or an instance."""
    return _build("gamma", spec, Gamma, BrownianGamma)


# ---------------------------------------------------------------------------------------------------
# The path
# ---------------------------------------------------------------------------------------------------
PREDICTIONS = ("drift", "drift_score", "drift_denoiser", "velocity_denoiser", "score", "denoiser")
_FIELDS = {
    "drift": ("drift",), "score": ("score",), "denoiser": ("denoiser",),
    "drift_score": ("drift", "score"), "drift_denoiser": ("drift", "denoiser"),
    "velocity_denoiser": ("velocity", "denoiser"),
}


class AntitheticModel(nn.Module):
    """Wraps a network so it can evaluate antithetic pairs.

    Given states ``x`` of batch ``2B`` with times ``t`` of batch ``B`` (the stacked pair [x^+; x^-] that a
    path with ``antithetic=True`` produces while training), it evaluates the network once on the doubled
    batch with ``t`` and ``cond`` repeated. Any other call is passed through unchanged.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any = None) -> Any:
        from sciflow.tree import tree_map

        if isinstance(x, torch.Tensor) and t.dim() == 1 and x.shape[0] == 2 * t.shape[0] != 0:
            t = torch.cat([t, t])
            if cond is not None:
                cond = tree_map(lambda c: torch.cat([c, c]), cond)
        return self.net(x, t, cond) if cond is not None else self.net(x, t)


class MultiFieldModel(nn.Module):
    """One model made of named sub-networks, returning ``{name: net(x, t, cond)}``.

    Example for prediction "drift_score" on 2-D states::

        model = MultiFieldModel(drift=MLP(2), score=MLP(2))

    (A single network may instead return the two fields concatenated along dimension 1.)
    """

    def __init__(self, **nets: nn.Module):
        super().__init__()
        if not nets:
            raise ValueError("MultiFieldModel needs at least one named network, e.g. drift=MLP(2), score=MLP(2)")
        self.nets = nn.ModuleDict(nets)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any = None) -> Dict[str, torch.Tensor]:
        return {k: (net(x, t, cond) if cond is not None else net(x, t)) for k, net in self.nets.items()}


@register("path", "interpolant")
class StochasticInterpolantPath(Path):
    """Stochastic interpolant path x_t = a(t) x0 + b(t) x1 + gamma(t) z, z ~ N(0, I).

    Args:
        interpolant: an :class:`Interpolant`, a name ("linear", "trigonometric", "encoder_decoder",
            "one_sided", "mirror") or a mapping ``{"name": ..., **kw}``.
        gamma: a :class:`Gamma`, a name ("brownian"/"scaled", "sin2", "zero"), a mapping (e.g.
            ``{"name": "brownian", "scale": 0.5}``) or a callable ``gamma(t)``. Default Brownian
            sqrt(t (1 - t)); forced to "zero"-compatible checks for one-sided interpolants.
        antithetic: evaluate the network at I + gamma z and I - gamma z while training (see module doc;
            the network must be wrapped in :class:`AntitheticModel`).

    Predictions: "drift", "drift_score", "drift_denoiser", "velocity_denoiser", "score", "denoiser"
    (see the module docstring for the fields and how a network returns two of them).
    """

    predictions = PREDICTIONS

    def __init__(self, interpolant: Any = "linear", gamma: Any = "brownian", antithetic: bool = False):
        self.interpolant = build_interpolant(interpolant)
        if gamma is None and self.interpolant.gaussian_source:
            gamma = "zero"
        self.gamma = build_gamma(gamma)
        if self.interpolant.gaussian_source and not self.gamma.is_zero:
            raise ValueError("gamma must be 'zero' for a one-sided (Gaussian-source) interpolant: its x0 ~ N(0, I) "
                             f"is the noise; got gamma={self.gamma!r}")
        self.antithetic = bool(antithetic)
        if self.antithetic and self.gamma.is_zero:
            raise ValueError("antithetic=True needs a non-zero gamma (it flips the sign of gamma z)")

    def __repr__(self) -> str:
        return (f"StochasticInterpolantPath(interpolant={self.interpolant!r}, gamma={self.gamma!r}, "
                f"antithetic={self.antithetic})")

    # -- schedule ------------------------------------------------------------------------------------
    def coefficients(self, t: torch.Tensor) -> Dict[str, torch.Tensor]:
        """a, b, a', b', gamma, gamma' and the score scale g (gamma, or a for a Gaussian source), shape of t."""
        a, b, da, db = self.interpolant.coefficients(t)
        g, dg = self.gamma(t)
        scale = a if self.interpolant.gaussian_source else g
        return {"a": a, "b": b, "da": da, "db": db, "gamma": g, "dgamma": dg, "g": scale}

    def noise_scale(self, t: torch.Tensor) -> torch.Tensor:
        """g(t) with score = -E[zeta | x_t] / g(t): gamma(t), or a(t) for a Gaussian-source interpolant."""
        return self.coefficients(t)["g"]

    def check_prediction(self, prediction: str) -> None:
        super().check_prediction(prediction)
        if prediction == "velocity_denoiser" and self.gamma.singular_derivative:
            raise ValueError(f"prediction 'velocity_denoiser' needs a finite gamma'(t) for the drift b = v + gamma' eta; "
                             f"{self.gamma!r} has an infinite derivative at t = 0, 1. Use 'drift_denoiser' or "
                             f"'drift_score'")
        if prediction in ("score", "denoiser", "drift_score", "drift_denoiser", "velocity_denoiser") \
                and self.gamma.is_zero and not self.interpolant.gaussian_source:
            raise ValueError(f"prediction '{prediction}' needs noise: gamma is zero and x0 is not Gaussian, so the "
                             f"score does not exist; use gamma='brownian' or a one_sided interpolant")

    # -- training ------------------------------------------------------------------------------------
    def sample(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> PathSample:
        """x_t, the conditional drift target dI + gamma' z, and z in ``extra``.

        x0, x1: ``(B, ...)``; t: ``(B,)`` in [0, 1] (t = 0 source). z is drawn with the global torch RNG.
        With ``antithetic=True``, ``x_t`` stacks [I + gamma z; I - gamma z], shape ``(2B, ...)``.
        """
        if not isinstance(x1, torch.Tensor) or not isinstance(x0, torch.Tensor):
            raise TypeError("StochasticInterpolantPath works on tensor states; use one path per component of a "
                            "multi-part state")
        if x0.shape != x1.shape:
            raise ValueError(f"x0 has shape {tuple(x0.shape)} but x1 has {tuple(x1.shape)}; they must match")
        c = {k: expand_like(v, x1) for k, v in self.coefficients(t).items()}
        interp = c["a"] * x0 + c["b"] * x1
        d_interp = c["da"] * x0 + c["db"] * x1
        if self.interpolant.gaussian_source:
            z = x0
            x_t, dx_t = interp, d_interp
        else:
            z = torch.randn_like(x1)
            x_t = interp + c["gamma"] * z
            dx_t = d_interp + c["dgamma"] * z if not self.gamma.is_zero else d_interp
        extra = {"z": z, "d_interp": d_interp, "interp": interp}
        if self.antithetic:
            x_t = torch.cat([x_t, interp - c["gamma"] * z], 0)
        return PathSample(x0=x0, x1=x1, t=t, x_t=x_t, dx_t=dx_t, extra=extra)

    def split_output(self, output: Any, like: torch.Tensor, prediction: str) -> Dict[str, torch.Tensor]:
        """The named fields of a network output (mapping, or fields concatenated along dim 1)."""
        names = _FIELDS[prediction]
        if isinstance(output, dict):
            missing = [k for k in names if k not in output]
            if missing:
                raise ValueError(f"prediction '{prediction}': the network's mapping lacks {missing}; got keys "
                                 f"{sorted(output)}")
            return {k: output[k] for k in names}
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"network output must be a tensor or a mapping, got {type(output).__name__}")
        if len(names) == 1:
            fields = {names[0]: output}
        else:
            if output.dim() < 2 or output.shape[1] != 2 * like.shape[1]:
                raise ValueError(f"prediction '{prediction}' expects the fields {names} concatenated along dim 1: "
                                 f"shape (B, {2 * like.shape[1]}, ...) for states {tuple(like.shape)}, "
                                 f"got {tuple(output.shape)}")
            first, second = output.chunk(2, dim=1)
            fields = {names[0]: first, names[1]: second}
        for k, v in fields.items():
            if v.shape[1:] != like.shape[1:]:
                raise ValueError(f"field '{k}' has shape {tuple(v.shape)}; expected (B, {tuple(like.shape[1:])})")
        return fields

    def _field_losses(self, fields, sample: PathSample, x_t_sign: float, c) -> torch.Tensor:
        ex = sample.extra
        z = ex["z"] * x_t_sign
        total = 0.0
        for name, out in fields.items():
            if name == "drift":
                target = ex["d_interp"] if self.gamma.is_zero else ex["d_interp"] + c["dgamma"] * z
                term = out.pow(2) - 2 * target * out
            elif name == "score":
                term = out.pow(2) + 2 * z * out / c["g"]
            elif name == "denoiser":
                term = (out - z).pow(2)
            else:  # velocity
                term = (out - ex["d_interp"]).pow(2)
            total = total + term.flatten(1).mean(-1)
        return total

    def loss(self, output: Any, sample: PathSample, prediction: str) -> torch.Tensor:
        """Per-example objective ``(B,)`` (sum over the prediction's fields; see module docstring)."""
        self.check_prediction(prediction)
        if sample.extra is None or "z" not in sample.extra:
            raise ValueError("StochasticInterpolantPath.loss needs a PathSample made by its own sample()")
        t, x1 = sample.t, sample.x1
        c = {k: expand_like(v, x1) for k, v in self.coefficients(t).items()}
        needs_dgamma = any(f == "drift" for f in _FIELDS[prediction]) and not self.gamma.is_zero
        needs_g = any(f == "score" for f in _FIELDS[prediction])
        if (needs_dgamma and not torch.isfinite(c["dgamma"]).all()) or (needs_g and (c["g"] == 0).any()):
            raise ValueError(f"training time t hit an end point where {self.gamma!r} has an infinite derivative or a "
                             f"zero noise scale; build the Flow with t_eps > 0 (e.g. Flow(..., t_eps=1e-3)) or use "
                             f"sciflow.paths.interpolants.interpolant_flow")
        n = x1.shape[0]
        if self.antithetic:
            fields = self.split_output(output, x1, prediction)
            lead = next(iter(fields.values())).shape[0]
            if lead != 2 * n:
                raise ValueError(f"antithetic=True: the network must return 2B = {2 * n} rows for the stacked pair "
                                 f"[x+; x-], got {lead}; wrap it in AntitheticModel (or use interpolant_flow)")
            out_plus = {k: v[:n] for k, v in fields.items()}
            out_minus = {k: v[n:] for k, v in fields.items()}
            return 0.5 * (self._field_losses(out_plus, sample, 1.0, c) + self._field_losses(out_minus, sample, -1.0, c))
        return self._field_losses(self.split_output(output, x1, prediction), sample, 1.0, c)

    # -- marginal fields -----------------------------------------------------------------------------
    def drift_and_score(self, output: Any, x_t: torch.Tensor, t: torch.Tensor,
                        prediction: str) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """(drift b, score s) at (x_t, t) from the network output; either is ``None`` if the prediction
        does not determine it ("score"/"denoiser" give no drift). The score is -eta / g(t) for denoisers,
        singular where g(t) = 0 (samplers never evaluate it at t = 0 or 1)."""
        self.check_prediction(prediction)
        if prediction == "drift":
            raise ValueError("prediction 'drift' gives the drift only, so an SDE has no score: train with "
                             "'drift_score' or 'drift_denoiser', or pass score_flow= to the SDE sampler")
        f = self.split_output(output, x_t, prediction)
        c = {k: expand_like(v, x_t) for k, v in self.coefficients(t).items()}
        score = f["score"] if "score" in f else -f["denoiser"] / c["g"]
        if "drift" in f:
            drift = f["drift"]
        elif "velocity" in f:
            drift = f["velocity"] if self.gamma.is_zero else f["velocity"] + c["dgamma"] * f["denoiser"]
        else:
            drift = None
        return drift, score

    def velocity(self, output: Any, x_t: torch.Tensor, t: torch.Tensor, prediction: str) -> torch.Tensor:
        """The probability-flow ODE velocity, i.e. the drift b(t, x)."""
        self.check_prediction(prediction)
        if prediction in ("score", "denoiser"):
            raise ValueError(f"prediction '{prediction}' gives no drift, so there is no ODE velocity; use this flow as "
                             f"score_flow= of an SDE sampler next to a drift flow")
        if prediction == "drift":
            return self.split_output(output, x_t, prediction)["drift"]
        return self.drift_and_score(output, x_t, t, prediction)[0]


def interpolant_flow(model: nn.Module, path: StochasticInterpolantPath, prediction: str = "drift_denoiser",
                     t_eps: Optional[float] = None, **flow_kwargs: Any):
    """Build a :class:`~sciflow.Flow` for a stochastic interpolant with the right defaults.

    Wraps ``model`` in :class:`AntitheticModel` when ``path.antithetic`` and sets ``t_eps = 1e-3`` when
    gamma' is infinite at the end points (Brownian gamma) or the interpolant is Gaussian-source with a
    score/denoiser field (singular at t = 1). Other keyword arguments go to ``Flow`` (space, coupling,
    source, time_sampler, cond_dropout, ...).
    """
    from sciflow.flow import Flow

    if not isinstance(path, StochasticInterpolantPath):
        raise TypeError(f"interpolant_flow needs a StochasticInterpolantPath, got {type(path).__name__}")
    if t_eps is None:
        singular = path.gamma.singular_derivative or path.interpolant.gaussian_source
        t_eps = 1e-3 if singular else 0.0
    if path.antithetic and not isinstance(model, AntitheticModel):
        model = AntitheticModel(model)
    return Flow(model, path=path, prediction=prediction, t_eps=t_eps, **flow_kwargs)
