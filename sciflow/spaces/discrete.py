"""Categorical token sequences: the state space of discrete flow matching.

A state is a long tensor of shape ``(B, L)`` (or ``(B, *shape)``) holding token ids in ``{0, ..., V-1}``.
With a *masked* source (Gat et al., "Discrete Flow Matching", 2024; Campbell et al. 2024) an extra
absorbing token ``mask_token = V`` is added, so ids range over ``{0, ..., V}``; the base (t = 0)
distribution puts every position on the mask. With a *uniform* source each position is uniform over
the V real tokens. Time convention: t = 0 source, t = 1 data.

Tokens have no tangent vectors: ``exp``/``log`` raise; samplers step them with CTMC jumps
(:mod:`sciflow.samplers.ctmc`) instead of ODE steps.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch

from sciflow.registry import register
from sciflow.spaces.base import Space

SOURCES = ("mask", "uniform")



def mask_token_id(vocab_size: int, source: str) -> Optional[int]:
    """The mask token's id for a masked source (the extra id ``V`` after the V real tokens), else ``None``."""
    return vocab_size if source == "mask" else None


def num_token_states(vocab_size: int, source: str) -> int:
    """Ids a position can hold: V real tokens, plus the mask token for a masked source."""
    return vocab_size + (1 if source == "mask" else 0)

@register("space", "tokens")
class Tokens(Space):
    """Sequences of categorical tokens.

    Args:
        shape: event shape, an int ``L`` (sequence length) or a tuple such as ``(n_atoms,)``.
        vocab_size: number of real tokens V (the mask token, if any, is extra).
        source: "mask" (absorbing source; every position starts at ``mask_token``) or "uniform".
    """

    is_discrete = True

    def __init__(self, shape: Union[int, Sequence[int]], vocab_size: int, source: str = "mask"):
        self.event_shape = (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)
        if any(s <= 0 for s in self.event_shape):
            raise ValueError(f"Tokens shape must be positive, got {self.event_shape}")
        if int(vocab_size) < 2:
            raise ValueError(f"Tokens vocab_size must be >= 2, got {vocab_size}")
        if source not in SOURCES:
            raise ValueError(f"Tokens source must be one of {SOURCES}, got {source!r}")
        self.vocab_size = int(vocab_size)
        self.source = source

    def __repr__(self) -> str:
        return f"Tokens(shape={self.event_shape}, vocab_size={self.vocab_size}, source={self.source!r})"

    @property
    def mask_token(self) -> Optional[int]:
        """Id of the absorbing mask token (``V``) for a masked source, else ``None``."""
        return mask_token_id(self.vocab_size, self.source)

    @property
    def num_states(self) -> int:
        """Number of ids a position can hold: V + 1 with a mask token, else V (network embedding size)."""
        return num_token_states(self.vocab_size, self.source)

    # -- geometry: none ----------------------------------------------------------------------------
    def exp(self, x, v):
        raise TypeError("Tokens have no tangent space; step discrete states with a CTMC sampler ('ctmc')")

    def log(self, x, y):
        raise TypeError("Tokens have no tangent space; there is no log map")

    def dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Hamming distance (number of differing positions), shape ``(B,)``."""
        return (x != y).flatten(1).sum(-1).to(torch.get_default_dtype())

    # -- base distribution -------------------------------------------------------------------------
    def random_base(self, n: int, device=None, dtype=None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n`` source states ``(n, *shape)``, dtype long (a floating ``dtype`` argument is ignored:
        token ids are always integers)."""
        shape = (n, *self.event_shape)
        if self.source == "mask":
            return torch.full(shape, self.vocab_size, device=device, dtype=torch.long)
        return torch.randint(0, self.vocab_size, shape, device=device, generator=generator)

    def base_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probability of ``x`` under the source, shape ``(B,)`` (counting measure)."""
        npos = math.prod(self.event_shape)
        if self.source == "uniform":
            return torch.full((x.shape[0],), -npos * math.log(self.vocab_size), device=x.device)
        all_mask = (x == self.vocab_size).flatten(1).all(-1)
        zero = torch.zeros(x.shape[0], device=x.device)
        return torch.where(all_mask, zero, torch.full_like(zero, -math.inf))

    # -- checks ------------------------------------------------------------------------------------
    def check(self, x: torch.Tensor, name: str = "x", allow_mask: bool = True) -> None:
        """Raise if ``x`` is not a long tensor ``(B, *shape)`` of ids in range (mask allowed if masked)."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(x).__name__}")
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer token ids (torch.long), got dtype {x.dtype}")
        if tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)}; expected (batch, {', '.join(map(str, self.event_shape))})")
        hi = self.num_states if allow_mask else self.vocab_size
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= hi):
            raise ValueError(f"{name} has token ids in [{int(x.min())}, {int(x.max())}]; expected ids in [0, {hi - 1}]")
