"""One-step generators trained by conditional implicit maximum likelihood estimation (IMLE).

A trained flow needs many network evaluations per sample. Following MoFlow (Fu et al., CVPR 2025), which
distils its flow teacher into a one-step student with IMLE (Li & Malik, "Implicit Maximum Likelihood
Estimation", 2018; conditional IMLE: Li et al., ICCV 2019), the student here is itself a
:class:`~sciflow.flow.Flow` sampled with a single Euler step over its time interval [t0, t1]:

    G(x0, c) = exp_{x0}((t1 - t0) * v_theta(x0, t0, c)),     x0 ~ source(c)

so the student is evaluated, saved and sampled like any other flow (``sampler: euler, steps: 1``), and can
start from the teacher's weights. IMLE trains G so that every target (a teacher sample, or data) has a
generated sample nearby: for each condition c with targets y_1..y_S and candidates G(z_1, c)..G(z_M, c),

    L = mean_{c, s} min_m d(y_s, G(z_m, c)),

with d the (weighted) squared Euclidean distance averaged over real elements. Unlike a mean-squared
regression onto samples, the min makes every target pull only on its nearest candidate, so the student
covers all of the teacher's modes instead of averaging them.

Two generalisations: G may be n Euler steps instead of one (:func:`euler_unrolled`, trained through the
unrolled sampler, so a few-step student starts exactly at its teacher), and with ``match_dims`` the entries
of the leading event dimensions (e.g. the agents of a scene) pick their nearest candidate independently.

When the student's source is a fixed codebook of exactly M latents instead of random draws (every condition
sees the same M codes), the same loss is multiple-choice learning (Guzman-Rivera et al., NeurIPS 2012): each
code becomes one hypothesis and only the hypothesis nearest to a target is pulled towards it, so the M codes
learn an M-point summary of the conditional distribution that minimises the expected best-of-M distance; a
``distance`` other than the squared one (e.g. the task's evaluation metric) can then be trained for directly.

Annealed winner-takes-all (Perera et al., "Annealed Multiple Choice Learning", NeurIPS 2024; Xu et al.,
"Annealed Winner-Takes-All for Motion Forecasting", 2025): with a temperature T > 0 the hard min is replaced by
the soft assignment

    L_T = mean_{c, s} sum_m q_T(m | y_s) d(y_s, G(z_m, c)),   q_T(m | y) = softmax_m(-d(y, G(z_m, c)) / T),

with q held fixed (no gradient through the weights), so every candidate is pulled towards a target in
proportion to how close it already is; as T -> 0 this is the hard min above. Annealing T to 0 over training lets
hypotheses that start far from all data move before the assignment freezes.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from sciflow.tree import tree_map


def one_step(flow, x0: torch.Tensor, cond: Any = None) -> torch.Tensor:
    """The single Euler step of ``flow`` from its source to data, differentiable.

    Equals ``flow.sample(x0=x0, cond=cond, sampler="euler", steps=1).x`` (which runs without gradients).

    Args:
        flow: a :class:`~sciflow.flow.Flow`.
        x0: source states ``(B, *event_shape)`` at t0.
        cond: conditions with batch size B, or ``None``.

    Returns:
        ``(B, *event_shape)`` states at t1.
    """
    return euler_unrolled(flow, x0, cond, steps=1)


def euler_unrolled(flow, x0: torch.Tensor, cond: Any = None, steps: int = 1) -> torch.Tensor:
    """``steps`` Euler steps of ``flow`` from t0 to t1 on a uniform grid, differentiable end to end.

    Equals ``flow.sample(x0=x0, cond=cond, sampler="euler", steps=steps).x``; gradients flow through
    every network evaluation, so a few-step sampler can itself be trained (e.g. by :func:`imle_loss`).
    Memory grows linearly with ``steps``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    t0, t1 = flow.time_interval()
    h = (t1 - t0) / steps
    x = x0
    for i in range(steps):
        t = torch.full((x0.shape[0],), t0 + i * h, device=x0.device, dtype=x0.dtype)
        v = flow.velocity(x, t, cond)
        x = x + h * v if flow.space is None else flow.space.exp(x, v * h)
    return x


def repeat_groups(cond: Any, m: int) -> Any:
    """Repeat every condition ``m`` times along the batch, group-major (rows b*m .. b*m+m-1)."""
    if cond is None:
        return None
    return tree_map(lambda c: c.repeat_interleave(m, dim=0), cond)


def group_distances(targets: torch.Tensor, candidates: torch.Tensor,
                    weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Weighted mean squared distances between every target and every candidate of the same group.

    Args:
        targets: ``(G, S, *event_shape)``.
        candidates: ``(G, M, *event_shape)``.
        weight: optional per-element weights (e.g. a mask of real vs padded elements), broadcastable to
            ``(G, 1, *event_shape)``; distances are sum(w * (y - x)^2) / sum(w) over the event elements.
    Returns:
        ``(G, S, M)`` distances.
    """
    if targets.dim() < 3 or candidates.dim() != targets.dim() or targets.shape[2:] != candidates.shape[2:] \
            or targets.shape[0] != candidates.shape[0]:
        raise ValueError(f"targets (G, S, *event) and candidates (G, M, *event) must share G and the event shape, "
                         f"got {tuple(targets.shape)} and {tuple(candidates.shape)}")
    G, S, M = targets.shape[0], targets.shape[1], candidates.shape[1]
    if weight is None:
        w = torch.ones((G, 1) + tuple(targets.shape[2:]), device=targets.device, dtype=targets.dtype)
    else:
        w = torch.broadcast_to(weight.to(targets.dtype), (G, 1) + tuple(targets.shape[2:]))
    denom = w.flatten(1).sum(1).clamp_min(torch.finfo(targets.dtype).tiny)  # (G,)
    root = w.sqrt()
    a = (targets * root).reshape(G, S, -1)
    b = (candidates * root).reshape(G, M, -1)
    # ||a||^2 + ||b||^2 - 2 a.b: one batched matmul instead of a (G, S, M, D) difference tensor
    sq = (a * a).sum(-1)[:, :, None] + (b * b).sum(-1)[:, None, :] - 2 * a @ b.transpose(1, 2)
    return sq.clamp_min(0) / denom[:, None, None]


def split_matched_dims(x: torch.Tensor, k: int) -> torch.Tensor:
    """Move the first ``k`` event dimensions into the group dimension.

    ``(G, S, n_1..n_k, *rest)`` -> ``(G * n_1 * .. * n_k, S, *rest)``, so every entry along those dimensions
    (e.g. every agent of a scene) becomes a group of its own for :func:`group_distances`.
    """
    if k == 0:
        return x
    if x.dim() < 3 + k:
        raise ValueError(f"cannot match {k} event dimensions of a tensor of shape {tuple(x.shape)}: "
                         f"at least one event dimension must remain")
    perm = (0, *range(2, 2 + k), 1, *range(2 + k, x.dim()))
    return x.permute(perm).reshape(-1, x.shape[1], *x.shape[2 + k:])


def linear_annealing(step: int, start: float, steps: int) -> float:
    """Temperature ``start * (1 - step / steps)`` for ``step < steps``, then 0 (hard winner-takes-all)."""
    if steps < 1:
        raise ValueError(f"annealing steps must be >= 1, got {steps}")
    return start * max(0.0, 1.0 - step / steps)


def imle_loss(flow, targets: torch.Tensor, cond: Any = None, candidates: int = 20,
              weight: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None,
              match_dims: int = 0, steps: int = 1, distance: Optional[Callable[..., torch.Tensor]] = None,
              temperature: float = 0.0) -> torch.Tensor:
    """Conditional IMLE loss of ``flow``'s Euler generator (:func:`one_step`, or :func:`euler_unrolled`).

    Args:
        flow: the student :class:`~sciflow.flow.Flow` (its source draws the latents).
        targets: ``(G, S, *event_shape)``: S targets (teacher samples or data) for each of G conditions.
        cond: the G conditions (batch size G), or ``None`` for an unconditional student (G groups of the
            same, empty condition).
        candidates: M, student samples drawn per condition; each target is matched to its nearest one.
        weight: optional per-element weights broadcastable to ``(G, 1, *event_shape)``.
        generator: for the latents.
        match_dims: how many leading event dimensions pick their nearest candidate independently. 0: each
            target is matched as a whole (a joint sample of the condition). 1 with events ``(N, ...)``:
            each of the N entries (e.g. the agents of a scene) is matched to its own nearest candidate,
            which is the best-of-M objective behind per-agent minADE_M; entries whose weights are all zero
            (padding) are left out of the mean.
        steps: Euler steps of the student's sampler (:func:`euler_unrolled`); 1 = the one-step generator.
        distance: ``distance(targets (G', S, *e), candidates (G', M, *e), weight (G', 1, *e)) -> (G', S, M)``
            (after ``match_dims`` moved matched entries into the group dimension); default
            :func:`group_distances`, the weighted mean squared distance. Used both to pick each target's
            nearest candidate and as the loss. It may instead return ``(P, G', S, M)``: P error terms, each
            matched to its own nearest candidate, their minima summed (e.g. ADE and FDE, so that the loss is
            minADE + minFDE exactly as best-of-M metrics score them, each with its own best candidate).
        temperature: T of the annealed winner-takes-all assignment, in the units of ``distance``; 0 (default)
            is the hard min, T > 0 weights every candidate by softmax(-d / T) over candidates (weights
            detached), see the module docstring.
    Returns:
        Scalar loss: mean over (real) groups and targets of the distance to the nearest candidate (T = 0) or
        of the softmin-weighted distance (T > 0).
    """
    if candidates < 1:
        raise ValueError(f"candidates must be >= 1, got {candidates}")
    if not temperature >= 0.0:
        raise ValueError(f"temperature must be >= 0 (0 = hard winner-takes-all), got {temperature}")
    if match_dims < 0:
        raise ValueError(f"match_dims must be >= 0, got {match_dims}")
    G = targets.shape[0]
    rep = repeat_groups(cond, candidates)
    x0 = flow.sample_source(G * candidates, cond=rep, device=targets.device, dtype=targets.dtype,
                            generator=generator)
    x = euler_unrolled(flow, x0, rep, steps).view(G, candidates, *targets.shape[2:])
    if weight is None:
        weight = torch.ones((1, 1) + tuple(targets.shape[2:]), device=targets.device, dtype=targets.dtype)
    weight = split_matched_dims(torch.broadcast_to(weight.to(targets.dtype), (G, 1) + tuple(targets.shape[2:])),
                                match_dims)
    d = (distance or group_distances)(split_matched_dims(targets, match_dims), split_matched_dims(x, match_dims),
                                      weight)
    expected = (weight.shape[0], targets.shape[1], candidates)
    if d.shape != expected and (d.dim() != 4 or d.shape[1:] != expected):
        raise ValueError(f"distance returned shape {tuple(d.shape)}, expected (groups, targets, candidates) = "
                         f"{expected} or (terms, groups, targets, candidates)")
    terms = d if d.dim() == 4 else d.unsqueeze(0)  # (P, G', S, M): every term picks its own nearest candidate
    real = (weight.flatten(1).sum(1) > 0).to(d.dtype)  # (G',) groups with any weight
    if temperature > 0.0:
        matched = (torch.softmax(-terms.detach() / temperature, dim=3) * terms).sum(dim=3)
    else:
        matched = terms.min(dim=3).values
    return (matched.sum(dim=0).mean(dim=1) * real).sum() / real.sum().clamp_min(1.0)
