"""Metrics for categorical data and token sequences (registered under kind "metric").

* ``categorical_kl`` / ``categorical_reverse_kl``: KL(p_data || p_model) and KL(p_model || p_data) between
  a known categorical distribution and the empirical distribution of samples (nats), with optional
  additive smoothing of the empirical side (the KL to an empirical distribution with empty bins is
  infinite otherwise; the smoothing is reported, never silent: ``eps=0`` gives the raw value).
* ``ngram_distance``: total-variation distance between the n-gram frequency tables of two sets of
  sequences (0 = identical statistics, 1 = disjoint).
* ``markov_log_likelihood`` / ``markov_perplexity``: exact log-likelihood of sequences under a known
  first-order Markov chain (the reference model of the discrete benchmark) and its per-token perplexity.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from sciflow.registry import register


def empirical_distribution(samples: torch.Tensor, num_categories: int) -> torch.Tensor:
    """Frequencies of ids ``0..num_categories-1`` in a long tensor of any shape, shape ``(num_categories,)``."""
    if samples.is_floating_point():
        raise TypeError(f"samples must be integer category ids, got dtype {samples.dtype}")
    if samples.numel() == 0:
        raise ValueError("samples is empty")
    if int(samples.min()) < 0 or int(samples.max()) >= num_categories:
        raise ValueError(f"sample ids must lie in [0, {num_categories - 1}], got [{int(samples.min())}, {int(samples.max())}]")
    counts = torch.bincount(samples.reshape(-1), minlength=num_categories)
    return counts.to(torch.float64) / samples.numel()


def _check_probs(p: torch.Tensor, name: str) -> torch.Tensor:
    p = torch.as_tensor(p, dtype=torch.float64)
    if p.dim() != 1 or (p < 0).any() or abs(float(p.sum()) - 1) > 1e-6:
        raise ValueError(f"{name} must be a 1-D probability vector (non-negative, summing to 1)")
    return p


def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> float:
    """KL(p || q) = sum p log(p / q) in nats (0 log 0 = 0; inf if q = 0 where p > 0)."""
    p, q = _check_probs(p, "p"), _check_probs(q, "q").to(p.device)
    terms = torch.where(p > 0, p * (torch.log(p) - torch.log(q)), torch.zeros_like(p))
    return float(terms.sum())


@register("metric", "categorical_kl")
def categorical_kl(samples: torch.Tensor, target: torch.Tensor, eps: float = 0.0) -> float:
    """KL(target || empirical(samples)); ``eps`` adds eps to every empirical bin before normalising."""
    target = _check_probs(target, "target")
    q = empirical_distribution(samples, target.numel()).to(target.device)
    if eps > 0:
        q = (q + eps) / (1 + eps * q.numel())
    return kl_divergence(target, q)


@register("metric", "categorical_reverse_kl")
def categorical_reverse_kl(samples: torch.Tensor, target: torch.Tensor) -> float:
    """KL(empirical(samples) || target) (finite whenever the target has full support)."""
    target = _check_probs(target, "target")
    return kl_divergence(empirical_distribution(samples, target.numel()).to(target.device), target)


def ngram_counts(seqs: torch.Tensor, n: int, vocab_size: int) -> torch.Tensor:
    """Counts of all V^n n-grams in sequences ``(B, L)``, shape ``(V^n,)`` (float64)."""
    if seqs.dim() != 2 or seqs.shape[1] < n:
        raise ValueError(f"sequences must have shape (B, L) with L >= n={n}, got {tuple(seqs.shape)}")
    if vocab_size ** n > 50_000_000:
        raise ValueError(f"V^n = {vocab_size}^{n} n-grams is too many to tabulate")
    idx = torch.zeros_like(seqs[:, : seqs.shape[1] - n + 1])
    for k in range(n):
        idx = idx * vocab_size + seqs[:, k: seqs.shape[1] - n + 1 + k]
    return torch.bincount(idx.reshape(-1), minlength=vocab_size ** n).to(torch.float64)


@register("metric", "ngram_distance")
def ngram_distance(x: torch.Tensor, y: torch.Tensor, n: int = 2, vocab_size: Optional[int] = None) -> float:
    """Total-variation distance between the n-gram frequency distributions of ``x`` and ``y`` ``(B, L)``."""
    v = vocab_size if vocab_size is not None else int(max(int(x.max()), int(y.max()))) + 1
    cx, cy = ngram_counts(x, n, v), ngram_counts(y.to(x.device), n, v)
    return 0.5 * float((cx / cx.sum() - cy / cy.sum()).abs().sum())


@register("metric", "markov_log_likelihood")
def markov_log_likelihood(seqs: torch.Tensor, initial: torch.Tensor, transition: torch.Tensor) -> torch.Tensor:
    """log p(x) = log pi0(x_1) + sum_l log P(x_l -> x_{l+1}) per sequence, shape ``(B,)`` (nats).

    Args:
        seqs: ``(B, L)`` long.
        initial: ``(V,)`` initial distribution; transition: ``(V, V)`` row-stochastic matrix.
    """
    if seqs.dim() != 2:
        raise ValueError(f"seqs must have shape (B, L), got {tuple(seqs.shape)}")
    v = initial.numel()
    if transition.shape != (v, v):
        raise ValueError(f"transition must have shape ({v}, {v}), got {tuple(transition.shape)}")
    if int(seqs.min()) < 0 or int(seqs.max()) >= v:
        raise ValueError(f"sequence ids must lie in [0, {v - 1}]")
    logi, logt = torch.log(initial.to(seqs.device)), torch.log(transition.to(seqs.device))
    return logi[seqs[:, 0]] + logt[seqs[:, :-1], seqs[:, 1:]].sum(-1)


@register("metric", "markov_perplexity")
def markov_perplexity(seqs: torch.Tensor, initial: torch.Tensor, transition: torch.Tensor) -> float:
    """exp(-mean log-likelihood per token) under the reference Markov chain."""
    ll = markov_log_likelihood(seqs, initial, transition)
    return math.exp(-float(ll.mean()) / seqs.shape[1])
