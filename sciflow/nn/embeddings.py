"""Time and condition embeddings shared by the suite's networks."""
from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalTimeEmbedding(nn.Module):
    """Fixed sinusoidal features of t in [0, 1] (Vaswani et al. 2017; Ho et al. 2020).

    Input ``t`` of shape ``(B,)``; output ``(B, dim)``. Times are scaled by ``scale`` (default 1000) so
    the lowest frequencies still vary across [0, 1].
    """

    def __init__(self, dim: int, scale: float = 1000.0, max_period: float = 10000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"time embedding dim must be even, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.dim, self.scale = dim, scale

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = (self.scale * t).unsqueeze(-1).to(self.freqs.dtype) * self.freqs
        return torch.cat([torch.sin(args), torch.cos(args)], dim=-1).to(t.dtype)


class ConditionEmbedding(nn.Module):
    """Embeds class labels ``(B,)`` (long; -1 = no condition) or vectors ``(B, cond_dim)`` (float).

    The "no condition" token for classifier-free guidance is label ``-1`` for labels and an all-NaN
    row for vectors (see :func:`sciflow.guidance.null_condition`); both map to a learned embedding.
    Real NaNs in data are rejected by the data checks before training, so the sentinel is unambiguous.
    """

    def __init__(self, out_dim: int, num_classes: int = 0, cond_dim: int = 0):
        super().__init__()
        if (num_classes > 0) == (cond_dim > 0):
            raise ValueError("give exactly one of num_classes (labels) or cond_dim (vectors)")
        self.num_classes, self.cond_dim = num_classes, cond_dim
        if num_classes:
            self.table = nn.Embedding(num_classes + 1, out_dim)
        else:
            self.proj = nn.Linear(cond_dim, out_dim)
            self.null = nn.Parameter(torch.zeros(out_dim))

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        if self.num_classes:
            idx = torch.where(cond < 0, torch.full_like(cond, self.num_classes), cond)
            return self.table(idx)
        # continuous: rows that are all NaN mean "no condition"
        dropped = torch.isnan(cond).all(-1, keepdim=True)
        emb = self.proj(torch.nan_to_num(cond, nan=0.0))
        return torch.where(dropped, self.null.to(emb.dtype).expand_as(emb), emb)
