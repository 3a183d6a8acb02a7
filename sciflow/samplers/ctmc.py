"""CTMC samplers for discrete flow matching on tokens (Gat et al., "Discrete Flow Matching", 2024).

Time runs on an explicit grid from t = 0 (source: all-mask or uniform tokens) to t = 1 (data). At each
grid time the network gives posterior logits p_{1|t}(x1^i | x_t) (one evaluation per step, NFE = steps),
and every position jumps independently with the mixture-path rates u^i(y) = kappa'/(1-kappa) q^i(y)
(q = posterior, or guided jump weights, see :mod:`sciflow.guidance.discrete`), with the posterior frozen
over the step and the scalar coefficient integrated exactly (Lambda = log((1-kappa_t)/(1-kappa_{t+h}))):

* unguided: x^i_{t+h} ~ (1 - w) delta(x^i_t) + w p_{1|t}(. | x_t) with w = (kappa_{t+h}-kappa_t)/(1-kappa_t)
  (the exact transition of the conditional path averaged over the posterior; exact for a single position
  or a factorised target with exact posteriors). With a masked source only masked positions move
  (their posterior is exactly delta at unmasked ones).
* guided (weights q not normalised): jump with probability 1 - exp(-Lambda sum_{y != x} q(y)) to
  y proportional to q(y) (first-order "tau-leaping" with exact coefficient integral).

The last step reaches kappa = 1 (Lambda = inf), so every position is unmasked/decided at t = 1.

Optional corrector (masked source only; Gat et al. 2024, Sec. 2.4): the forward rate is scaled by
(1 + beta_t) and unmasked tokens are re-masked with the backward rate beta_t kappa'_t / kappa_t; the
combination generates the same marginals, so the corrector refines samples at no extra NFE. We use
beta_t = corrector * t^a (1 - t)^b (a = b = 0.25 by default) and skip it on the final step.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from sciflow.guidance.cfg import null_condition
from sciflow.guidance.discrete import cfg_log_weights, classifier_log_ratios, classifier_log_weights
from sciflow.paths.discrete import MixturePath
from sciflow.registry import register
from sciflow.samplers.base import SampleResult, stack_trajectory, time_grid


def _gumbel_argmax(logq: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    u = torch.rand(logq.shape, device=logq.device, dtype=logq.dtype, generator=generator)
    return (logq - torch.log(-torch.log(u))).argmax(-1)


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape[0], *([1] * (x.dim() - 1)))


def mixture_jump(path: MixturePath, x: torch.Tensor, logq: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor,
                 normalised: bool = True, corrector: float = 0.0, corrector_exponents=(0.25, 0.25),
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One CTMC step of a mixture path from ``t`` to ``t_next`` (both ``(B,)``).

    Args:
        path: the :class:`~sciflow.paths.discrete.MixturePath`.
        x: tokens ``(B, *shape)`` at ``t``.
        logq: log jump weights over the V real tokens ``(B, *shape, V)``: normalised posterior
            log-probabilities (``normalised=True``) or guided, unnormalised weights.
        corrector: beta scale of the corrector (masked source only), 0 disables it.
        generator: random generator for the jumps (default: torch's global one).
    Returns:
        tokens at ``t_next``.
    """
    v = path.vocab_size
    if logq.shape != (*x.shape, v):
        raise ValueError(f"jump weights must have shape {(*x.shape, v)}, got {tuple(logq.shape)}")
    k_t, _ = path.kappa(t)
    k_n, _ = path.kappa(t_next)
    lam = _bcast(torch.log1p(-k_t) - torch.log1p(-k_n), x)  # integrated kappa'/(1-kappa), inf at t_next = 1
    final = bool((t_next >= 1).all())
    u = torch.rand(x.shape, device=x.device, dtype=logq.dtype, generator=generator)
    if path.source == "mask":
        masked = x == v
        mass = torch.logsumexp(logq, -1).exp()  # sum_y q(y): 1 when normalised
        beta = 0.0
        if corrector > 0 and not final:
            a, b = corrector_exponents
            beta = _bcast(corrector * t.pow(a) * (1 - t).pow(b), x)
        p_jump = -torch.expm1(-(1 + beta) * lam * mass)
        new = _gumbel_argmax(logq, generator)
        out = torch.where(masked & (u < p_jump), new, x)
        if corrector > 0 and not final:
            remask_int = beta * _bcast(torch.log(k_n) - torch.log(k_t), x)  # int beta kappa'/kappa
            p_remask = -torch.expm1(-remask_int)
            u2 = torch.rand(x.shape, device=x.device, dtype=logq.dtype, generator=generator)
            out = torch.where((~masked) & (u2 < p_remask), torch.full_like(x, v), out)
        return out
    if corrector > 0:
        raise ValueError("the corrector is implemented for the masked source only (it needs p_{0|t})")
    if normalised:
        w = -torch.expm1(-lam)  # (kappa_{t+h} - kappa_t) / (1 - kappa_t)
        new = _gumbel_argmax(logq, generator)
        return torch.where(u < w, new, x)
    cur = torch.nn.functional.one_hot(x, v).bool()
    logq_ex = logq.masked_fill(cur, float("-inf"))
    mass = torch.logsumexp(logq_ex, -1).exp()
    p_jump = -torch.expm1(-lam * mass)
    return torch.where(u < p_jump, _gumbel_argmax(logq_ex, generator), x)


def posterior_logits(flow, x, t, cond, scale):
    """Conditional and unconditional logits as needed for CFG: returns (logits_c, logits_u) where one may be
    ``None``. One batched network call."""
    if cond is None or scale == 1.0:
        return flow.predict(x, t, cond, 1.0), None
    if scale == 0.0:
        return None, flow.predict(x, t, null_condition(cond), 1.0)
    from sciflow.tree import tree_map

    cat = lambda a, b: torch.cat([a, b], 0)  # noqa: E731
    out = flow.predict(tree_map(cat, x, x), torch.cat([t, t]), tree_map(cat, cond, null_condition(cond)), 1.0)
    n = t.shape[0]
    return tree_map(lambda o: o[:n], out), tree_map(lambda o: o[n:], out)


def guided_log_weights(logits_c, logits_u, scale):
    """(log q, normalised?) from conditional/unconditional logits under CFG scale (rate mixing)."""
    if logits_u is None:
        return torch.log_softmax(logits_c, -1), True
    if logits_c is None:
        return torch.log_softmax(logits_u, -1), True
    return cfg_log_weights(torch.log_softmax(logits_c, -1), torch.log_softmax(logits_u, -1), scale), False


class CTMCSampler:
    """Registered as "ctmc": ``sampler(flow, x0, cond=None, guidance_scale=1.0) -> SampleResult``.

    Args:
        steps: number of steps on the uniform grid 0 -> 1 (NFE = steps).
        corrector: corrector strength beta (masked source only; 0 = off).
        classifier: optional ``f(x, t) -> (B, C)`` class log-probabilities of noisy states for classifier
            guidance towards ``cond`` labels; the flow's network is then called unconditionally and
            ``guidance_scale`` scales the classifier term (1 = exact conditional rates).
        classifier_mode: "exact" (evaluate every single-token neighbour) or "taylor" (gradient).
    """

    def __init__(self, steps: int = 100, corrector: float = 0.0, classifier: Optional[Callable] = None,
                 classifier_mode: str = "exact"):
        if int(steps) < 1:
            raise ValueError(f"steps must be a positive integer, got {steps}")
        if corrector < 0:
            raise ValueError(f"corrector must be >= 0, got {corrector}")
        self.steps, self.corrector = int(steps), float(corrector)
        self.classifier, self.classifier_mode = classifier, classifier_mode

    def __repr__(self) -> str:
        return f"CTMCSampler(steps={self.steps}, corrector={self.corrector})"

    def __call__(self, flow, x0, cond=None, guidance_scale: float = 1.0, return_trajectory: bool = False,
                 progress: bool = False, grid=None, generator: Optional[torch.Generator] = None) -> SampleResult:
        path = flow.path
        if not isinstance(path, MixturePath):
            raise TypeError(f"the 'ctmc' sampler needs a discrete MixturePath, got {type(path).__name__}; "
                            "use 'product' for product states or an ODE sampler for continuous ones")
        if not isinstance(x0, torch.Tensor) or x0.is_floating_point():
            raise TypeError("ctmc sampler: x0 must be a long tensor of token ids (B, *shape)")
        dtype = torch.get_default_dtype()
        ts = time_grid(None if grid is not None else self.steps, 0.0, 1.0, grid, x0.device, dtype)
        if not (float(ts[0]) >= 0 and float(ts[-1]) <= 1 and bool((ts.diff() > 0).all())):
            raise ValueError("ctmc sampler integrates forward in time on a grid inside [0, 1]")
        x, n, nfe, ncls = x0, x0.shape[0], 0, 0
        traj = [x0] if return_trajectory else None
        it = range(ts.numel() - 1)
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc="ctmc steps", leave=False)
        with torch.no_grad():
            for i in it:
                t, t_next = ts[i].expand(n), ts[i + 1].expand(n)
                if self.classifier is not None:
                    logp = torch.log_softmax(flow.predict(x, t, None, 1.0), -1)
                    nfe += 1
                    if guidance_scale == 0.0:
                        logq, normalised = logp, True
                    else:
                        ratio = classifier_log_ratios(x, t, cond, self.classifier, path.num_states,
                                                      path.vocab_size, self.classifier_mode)
                        ncls += 1
                        logq, normalised = classifier_log_weights(logp, ratio, guidance_scale), False
                else:
                    lc, lu = posterior_logits(flow, x, t, cond, guidance_scale)
                    nfe += 1
                    logq, normalised = guided_log_weights(lc, lu, guidance_scale)
                x = mixture_jump(path, x, logq, t, t_next, normalised=normalised, corrector=self.corrector,
                                 generator=generator)
                if traj is not None:
                    traj.append(x)
        extra = {"classifier_calls": ncls} if self.classifier is not None else {}
        return SampleResult(x=x, nfe=nfe, times=ts, trajectory=stack_trajectory(traj) if traj else None, extra=extra)


@register("sampler", "ctmc")
def ctmc(**kwargs) -> CTMCSampler:
    """CTMC (Euler / tau-leaping with exact mixture coefficient) sampler for discrete flows; see :class:`CTMCSampler`."""
    return CTMCSampler(**kwargs)
