"""``Flow``: space + path + coupling + network parameterisation, with ``loss`` and ``sample``.

Example::

    import sciflow
    flow = sciflow.Flow(sciflow.nn.MLP(2), space=sciflow.spaces.Euclidean(2))
    loss = flow.loss(x1)                         # x1: (B, 2) data, scalar loss
    out = flow.sample(512, sampler="midpoint", steps=20)
    out.x, out.nfe                               # (512, 2) samples, 40 network evaluations

Time convention: t = 0 is the source (noise, prior, or previous state), t = 1 is data.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import nn

from sciflow.couplings import build_coupling
from sciflow.guidance.cfg import drop_condition, guided
from sciflow.paths.affine import AffinePath
from sciflow.paths.base import Path
from sciflow.paths.time import UniformTime, build_time_sampler
from sciflow.samplers import SampleResult, build_sampler
from sciflow.spaces.base import Space
from sciflow.spaces.euclidean import Euclidean
from sciflow.tree import batch_size, first_leaf

SourceFn = Callable[..., Any]


def _accepts(fn: Any, name: str) -> bool:
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class Flow(nn.Module):
    """A flow-matching model.

    Args:
        model: network ``model(x, t, cond=None)`` returning the ``prediction`` for states x
            ``(B, *event_shape)`` and times t ``(B,)``.
        space: where states live (required unless ``source`` is given).
        path: conditional probability path (default: affine cond-OT).
        coupling: pairing of source and data minibatches, a name, mapping or object (default independent).
        time_sampler: training-time distribution (default uniform).
        prediction: what the network predicts, one of ``path.predictions`` ("velocity", "x1", "noise", ...).
        cond_dropout: probability of dropping the condition while training (classifier-free guidance).
        source: optional ``source(n, cond=None, device=None, dtype=None, generator=None) -> x0`` for
            data-dependent sources (x0 = previous state, observed history, ...). Default: the space's base.
        t_eps: training times are drawn in [t_eps, 1 - t_eps] and ODE samplers integrate over
            [t_eps, 1 - t_eps] by default. ``None`` (default) picks 0 for velocity prediction and 1e-3 for
            the x1 and noise predictions of affine paths, whose conversion to a velocity divides by
            sigma_1 = 0 or alpha_0 = 0 at the end points.
    """

    def __init__(self, model: nn.Module, space: Optional[Space] = None, path: Optional[Path] = None,
                 coupling: Any = None, time_sampler: Any = None, prediction: str = "velocity",
                 cond_dropout: float = 0.0, source: Optional[SourceFn] = None, t_eps: Optional[float] = None):
        super().__init__()
        if space is None and source is None:
            raise ValueError("Flow needs a space (for its base distribution) or a source function")
        if not 0.0 <= cond_dropout < 1.0:
            raise ValueError(f"cond_dropout must be in [0, 1), got {cond_dropout}")
        self.model = model
        self.space = space
        self.path = path if path is not None else AffinePath()
        if space is not None and hasattr(self.path, "bind"):
            self.path.bind(space)  # paths that need the geometry (geodesic, spectral) take the flow's space
        self.path.check_prediction(prediction)
        self.prediction = prediction
        self.coupling = build_coupling(coupling)
        self.time_sampler = build_time_sampler(time_sampler) if time_sampler is not None else UniformTime()
        self.cond_dropout = float(cond_dropout)
        self.source = source
        if t_eps is None:
            t_eps = 1e-3 if self.singular_ends else 0.0
        if not 0.0 <= t_eps < 0.5:
            raise ValueError(f"t_eps must be in [0, 0.5), got {t_eps}")
        self.t_eps = float(t_eps)

    @property
    def singular_ends(self) -> tuple:
        """Flow times at which this parameterisation's velocity divides by zero: t = 1 for x1-prediction
        (v = (x1_hat - x_t) / sigma_t with sigma_1 = 0), t = 0 for noise prediction (alpha_0 = 0); none for
        velocity prediction. The default ``t_eps`` keeps training and sampling off these points, and ODE
        samplers take their last step towards such an end point without evaluating it."""
        return {"x1": (1.0,), "noise": (0.0,)}.get(self.prediction, ())

    def time_interval(self) -> tuple:
        """The default integration interval (t_start, t_end) of ODE samplers: [t_eps, 1 - t_eps]."""
        return (self.t_eps, 1.0 - self.t_eps)

    def extra_repr(self) -> str:
        return (f"space={self.space!r}, path={self.path!r}, coupling={self.coupling!r}, "
                f"prediction={self.prediction!r}, cond_dropout={self.cond_dropout}")

    # -- source ----------------------------------------------------------------------------------
    def sample_source(self, n: int, cond: Any = None, device=None, dtype=None,
                      generator: Optional[torch.Generator] = None, temperature: float = 1.0) -> Any:
        """Draw ``n`` source states x0 (t = 0).

        ``temperature`` multiplies the source noise (1 = the trained source): the N(0, I) base of a
        Euclidean space is scaled by it; a ``source`` function must take a ``temperature`` argument and
        decide what it scales (e.g. only the noise around a data-dependent mean). Other spaces' bases
        (uniform on a sphere, a Dirichlet simplex, ...) have no temperature and raise.
        """
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        scaled = temperature != 1.0
        if self.source is not None:
            if scaled and not _accepts(self.source, "temperature"):
                raise TypeError(f"flow.source {self.source!r} takes no temperature argument; give it "
                                f"temperature=... (what its noise is multiplied by) to sample with temperature")
            extra = {"temperature": temperature} if scaled else {}  # sources without the argument stay valid
            return self.source(n, cond=cond, device=device, dtype=dtype, generator=generator, **extra)
        if scaled and not isinstance(self.space, Euclidean):
            raise ValueError(f"temperature needs a Gaussian source; the base of {self.space!r} has none")
        x0 = self.space.random_base(n, device=device, dtype=dtype, generator=generator)
        return temperature * x0 if scaled else x0

    # -- training --------------------------------------------------------------------------------
    def loss_per_example(self, x1: Any, cond: Any = None, x0: Any = None,
                         generator: Optional[torch.Generator] = None, weight: Any = None) -> torch.Tensor:
        """Per-example flow-matching loss, shape ``(B,)``, for data ``x1`` and optional ``cond``.

        ``weight`` (optional, broadcastable to ``x1``, e.g. a mask of real vs padded elements) turns the
        per-example mean over elements into the weighted mean sum(w * l) / sum(w); paths that support it
        take a ``weight`` argument in their ``loss``.
        """
        ref = first_leaf(x1)
        n = batch_size(x1)
        if x0 is None:
            x0 = self.sample_source(n, cond=cond, device=ref.device, dtype=ref.dtype, generator=generator)
        x0, x1, cond = self.coupling(x0, x1, cond, generator=generator)
        t_dtype = ref.dtype if ref.is_floating_point() else torch.get_default_dtype()  # token data is long
        t = self.time_sampler(n, device=ref.device, dtype=t_dtype, generator=generator)
        if self.t_eps > 0:
            t = t * (1 - 2 * self.t_eps) + self.t_eps
        sample = self.path.sample(x0, x1, t)
        if self.training and self.cond_dropout > 0:
            cond = drop_condition(cond, self.cond_dropout, generator=generator)
        output = self.model(sample.x_t, t, cond) if cond is not None else self.model(sample.x_t, t)
        if weight is None:
            return self.path.loss(output, sample, self.prediction)
        if not _accepts(self.path.loss, "weight"):
            raise TypeError(f"{type(self.path).__name__}.loss does not support per-element weights")
        return self.path.loss(output, sample, self.prediction, weight=weight)

    def loss(self, x1: Any, cond: Any = None, x0: Any = None,
             generator: Optional[torch.Generator] = None, weight: Any = None) -> torch.Tensor:
        """Scalar flow-matching loss (mean over the batch); ``weight`` as in :meth:`loss_per_example`."""
        return self.loss_per_example(x1, cond=cond, x0=x0, generator=generator, weight=weight).mean()

    # -- fields ----------------------------------------------------------------------------------
    def predict(self, x: Any, t: torch.Tensor, cond: Any = None, guidance_scale: float = 1.0) -> Any:
        """The network's raw prediction at (x, t), with classifier-free guidance when ``cond`` is given."""
        def call(x_, t_, c_):
            return self.model(x_, t_, c_) if c_ is not None else self.model(x_, t_)

        return guided(call, x, t, cond, guidance_scale)

    def velocity(self, x: Any, t: torch.Tensor, cond: Any = None, guidance_scale: float = 1.0) -> Any:
        """Marginal velocity field v(x, t) for ODE samplers; ``t`` has shape ``(B,)``."""
        return self.path.velocity(self.predict(x, t, cond, guidance_scale), x, t, self.prediction)

    # -- sampling --------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: Optional[int] = None, cond: Any = None, x0: Any = None, sampler: Any = "euler",
               steps: Optional[int] = None, guidance_scale: float = 1.0, return_trajectory: bool = False,
               generator: Optional[torch.Generator] = None, device=None, dtype=None,
               progress: bool = False, temperature: float = 1.0, **sampler_kwargs) -> SampleResult:
        """Draw samples by integrating from the source (t = 0) to data (t = 1).

        Args:
            n: number of samples (defaults to the batch size of ``cond`` or ``x0``).
            cond: conditions ``(n, ...)`` or ``None``.
            x0: source states to start from (default: drawn from the source).
            sampler: a registered name ("euler", "midpoint", "heun", "rk4", "dopri5", ...), a mapping
                ``{"name": ..., **kwargs}`` or a sampler object.
            steps: number of steps for fixed-step samplers.
            guidance_scale: classifier-free guidance scale w (1 = plain conditional).
            generator, device, dtype: for drawing x0 (and the sampler's own noise when the sampler accepts
                a ``generator`` argument); default device/dtype are the model's.
            temperature: multiplies the source noise when x0 is drawn here (see :meth:`sample_source`).

        Returns:
            :class:`~sciflow.samplers.SampleResult` (``.x`` samples, ``.nfe``, optional ``.trajectory``).
        """
        if n is None:
            if x0 is not None:
                n = batch_size(x0)
            elif cond is not None:
                n = batch_size(cond)
            else:
                raise ValueError("sample() needs n, cond or x0 to know how many samples to draw")
        if cond is not None and batch_size(cond) != n:
            raise ValueError(f"cond has batch size {batch_size(cond)} but n={n}")
        if x0 is None:
            p = next(self.parameters(), None)
            device = device if device is not None else (p.device if p is not None else None)
            dtype = dtype if dtype is not None else (p.dtype if p is not None else None)
            x0 = self.sample_source(n, cond=cond, device=device, dtype=dtype, generator=generator,
                                    temperature=temperature)
        elif temperature != 1.0:
            raise ValueError("temperature scales the source noise; it cannot apply to a given x0")
        if steps is not None:
            sampler_kwargs["steps"] = steps
        sampler_obj = build_sampler(sampler, **sampler_kwargs)
        extra = {}
        if generator is not None and _accepts(sampler_obj, "generator"):
            extra["generator"] = generator  # stochastic samplers (SDE, CTMC) draw their noise from it
        return sampler_obj(self, x0, cond=cond, guidance_scale=guidance_scale,
                           return_trajectory=return_trajectory, progress=progress, **extra)

    def log_prob(self, x1: torch.Tensor, cond: Any = None, **kwargs) -> torch.Tensor:
        """Model log-density of data ``x1`` (nats, shape ``(B,)``) by the change of variables;
        see :func:`sciflow.likelihood.log_prob` for the options."""
        from sciflow.likelihood import log_prob

        return log_prob(self, x1, cond=cond, **kwargs)
