"""Guidance for categorical flows: discrete (CTMC) flow matching and Dirichlet / linear simplex FM.

Why not :func:`sciflow.guidance.cfg.guided`? ``Flow.predict`` mixes raw network outputs linearly,
o = o_u + w (o_c - o_u). That is exact for affine Gaussian paths, but for categorical flows the network
outputs *logits*, and the papers mix other quantities:

**Discrete flow matching (CTMC rates).** Guidance for CTMCs (Nisonoff et al., "Unlocking Guidance for
Discrete State-Space Diffusion and Flow Models", 2024; used with the mixture paths of Gat et al. 2024)
tilts the *rates*: classifier-free guidance uses the geometric mixture

    R^w(x -> y) = R_c(x -> y)^w R_u(x -> y)^(1-w),    y != x,

and classifier guidance the Bayes ratio

    R^w(x -> y) = R(x -> y) [p(c | y, t) / p(c | x, t)]^w,

exact at w = 1 (the rate of the conditional process). For a mixture path R(x -> y) = c_t p_{1|t}(y | x)
per position, so the guided jump weights are q(y) = p_c(y)^w p_u(y)^(1-w) (unnormalised!) or
q(y) = p(y) ratio(y)^w. Mixing logits linearly and re-normalising (what ``Flow.predict`` would do) gives
q / sum(q): the same jump *targets*, but the wrong total jump rate when w is not 0 or 1, so the CTMC
sampler (:mod:`sciflow.samplers.ctmc`) uses the functions here. Single-token ratios p(c | y) / p(c | x)
are either evaluated exactly (one classifier call per neighbour: L x V sequences per state) or with the
first-order Taylor approximation of Nisonoff et al. (one gradient w.r.t. the one-hot input).

**Dirichlet FM (probability vectors).** Stark et al. (2024, Sec. 3.3) show that the marginal score of
the Dirichlet path is linear in the posterior probabilities: s(x) = (alpha_t - 1) p(x1 | x) / x on the
tangent space. Classifier-free guidance on scores, s_w = w s_c + (1 - w) s_u, therefore equals the linear
mix of probability vectors p_w = w p_c + (1 - w) p_u (and hence of velocities, which are linear in p).
Classifier guidance adds w grad_x log p(c | x) to the score, i.e.

    p_w = p + w x * (g - <x, g>) / (alpha_t - 1),   g = grad_x log p(c | x, t),

(the <x, g> term fixes sum p_w = 1 and removes the normal component of g). At t = 0 (alpha = 1) the
score carries no information about x1 and the map is singular, so classifier guidance is applied for
t > 0 only. For linear simplex FM the velocity is also linear in p, so CFG mixes p the same way.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F


def cfg_log_weights(logp_cond: torch.Tensor, logp_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """log q = w log p_c + (1 - w) log p_u: log of the guided (unnormalised) jump weights.

    Args:
        logp_cond, logp_uncond: normalised posterior log-probabilities ``(B, *shape, V)``.
        scale: guidance scale w (0: unconditional, 1: conditional).
    """
    if scale == 1.0:
        return logp_cond
    if scale == 0.0:
        return logp_uncond
    return scale * logp_cond + (1 - scale) * logp_uncond


def classifier_log_ratios(x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
                          log_classifier: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                          num_states: int, vocab_size: int, mode: str = "exact") -> torch.Tensor:
    """log p(c | x with position i set to y, t) - log p(c | x, t) for every position i and real token y.

    Args:
        x: current tokens ``(B, L)`` (long; may hold the mask id ``vocab_size``).
        t: times ``(B,)``.
        cond: class labels ``(B,)`` (long).
        log_classifier: ``f(x, t) -> (B, C)`` log-probabilities of the classes of a noisy state. In
            ``"exact"`` mode it receives token ids ``(N, L)``; in ``"taylor"`` mode it receives one-hot
            float states ``(B, L, num_states)`` and must be differentiable in them.
        num_states: ids a position can hold (V + 1 with a mask token).
        vocab_size: V, the real tokens a jump can go to.
        mode: "exact" (B * L * V classifier evaluations in one batch) or "taylor" (one gradient).

    Returns:
        ``(B, L, V)`` log ratios (0 where y equals the current token).
    """
    if x.dim() != 2:
        raise ValueError(f"classifier guidance expects token states (B, L), got shape {tuple(x.shape)}")
    if cond is None:
        raise ValueError("classifier guidance needs cond (class labels (B,)) to guide towards")
    b, length = x.shape
    if mode == "exact":
        with torch.no_grad():
            base = log_classifier(x, t).gather(-1, cond.view(b, 1)).squeeze(-1)  # (B,)
            eye = torch.eye(length, dtype=torch.bool, device=x.device)
            tok = torch.arange(vocab_size, device=x.device)
            # nb[b, i, y, :] = x[b] with position i set to token y
            nb = torch.where(eye.view(1, length, 1, length), tok.view(1, 1, vocab_size, 1), x.view(b, 1, 1, length))
            flat = nb.reshape(b * length * vocab_size, length)
            tt = t.repeat_interleave(length * vocab_size)
            cc = cond.repeat_interleave(length * vocab_size)
            lp = log_classifier(flat, tt).gather(-1, cc.view(-1, 1)).view(b, length, vocab_size)
        return lp - base.view(b, 1, 1)
    if mode == "taylor":
        with torch.enable_grad():
            oh = F.one_hot(x, num_states).to(t.dtype).requires_grad_(True)
            lp = log_classifier(oh, t).gather(-1, cond.view(b, 1)).sum()
            (g,) = torch.autograd.grad(lp, oh)
        g = g.detach()
        cur = g.gather(-1, x.unsqueeze(-1))
        return (g - cur)[..., :vocab_size]
    raise ValueError(f"classifier guidance mode must be 'exact' or 'taylor', got {mode!r}")


def classifier_log_weights(logp: torch.Tensor, log_ratio: torch.Tensor, scale: float) -> torch.Tensor:
    """log q = log p + w * log ratio (the Bayes-tilted jump weights; exact conditional rates at w = 1)."""
    return logp + scale * log_ratio


def simplex_cfg_probs(p_cond: torch.Tensor, p_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """p_w = w p_c + (1 - w) p_u (Dirichlet / linear simplex FM classifier-free guidance; may leave the
    simplex for w > 1, which is fine: the velocity stays tangent and the space's retraction keeps states
    on the simplex)."""
    if scale == 1.0:
        return p_cond
    if scale == 0.0:
        return p_uncond
    return scale * p_cond + (1 - scale) * p_uncond


def dirichlet_classifier_probs(probs: torch.Tensor, x: torch.Tensor, grad: torch.Tensor,
                               score_scale: torch.Tensor, scale: float) -> torch.Tensor:
    """p_w = p + w x (g - <x, g>) / (alpha_t - 1) for Dirichlet FM classifier guidance.

    Args:
        probs: posterior probabilities ``(B, *shape, K)``.
        x: current simplex states ``(B, *shape, K)``.
        grad: g = grad_x log p(c | x, t), same shape.
        score_scale: alpha_t - 1, shape ``(B,)``; rows with alpha_t - 1 == 0 (t = 0) are left unguided.
        scale: guidance scale w.
    """
    s = score_scale.reshape(-1, *([1] * (x.dim() - 1)))
    tilt = x * (grad - (x * grad).sum(-1, keepdim=True))
    safe = torch.where(s > 0, s, torch.ones_like(s))
    return torch.where(s > 0, probs + scale * tilt / safe, probs)


def classifier_grad(x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
                    log_classifier: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """g = grad_x log p(cond | x, t) for simplex states ``x`` (classifier ``f(x, t) -> (B, C)`` log-probs)."""
    if cond is None:
        raise ValueError("classifier guidance needs cond (class labels (B,)) to guide towards")
    with torch.enable_grad():
        xx = x.detach().requires_grad_(True)
        lp = log_classifier(xx, t).gather(-1, cond.view(-1, 1)).sum()
        (g,) = torch.autograd.grad(lp, xx)
    return g.detach()
