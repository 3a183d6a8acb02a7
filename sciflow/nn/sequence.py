"""A small transformer over token sequences or simplex sequences, with time and condition embeddings.

Interface (as every sciflow network)::

    forward(x, t, cond=None) -> logits (B, L, V)
      x:    (B, L) long token ids in [0, num_states)  (input="tokens"; the mask id is one of the states)
            or (B, L, K) simplex points                (input="simplex")
      t:    (B,) times in [0, 1], t = 0 source, t = 1 data
      cond: None, (B,) long labels (-1 = dropped, for classifier-free guidance) or (B, cond_dim) floats

The time (and condition) embedding is added to every token embedding; a learned positional embedding
is added as well. For ``length == 1`` (a single categorical variable) it reduces to an MLP-like model.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from sciflow.nn.embeddings import ConditionEmbedding, SinusoidalTimeEmbedding
from sciflow.registry import register


@register("model", "sequence_transformer")
class SequenceTransformer(nn.Module):
    """Transformer encoder predicting per-position logits.

    Args:
        length: sequence length L.
        num_states: input ids per position (V + 1 for a masked source), or K for simplex input.
        out_dim: output logits per position (V).
        input: "tokens" (long ids) or "simplex" (probability vectors, embedded linearly).
        d_model, depth, heads, dropout: transformer size.
        num_classes / cond_dim: optional conditioning (labels or vectors).
    """

    def __init__(self, length: int, num_states: int, out_dim: int, input: str = "tokens", d_model: int = 64,
                 depth: int = 2, heads: int = 4, dropout: float = 0.0, num_classes: int = 0, cond_dim: int = 0):
        super().__init__()
        if input not in ("tokens", "simplex"):
            raise ValueError(f"input must be 'tokens' or 'simplex', got {input!r}")
        self.length, self.num_states, self.out_dim, self.input = int(length), int(num_states), int(out_dim), input
        self.embed = nn.Embedding(num_states, d_model) if input == "tokens" else nn.Linear(num_states, d_model)
        self.pos = nn.Parameter(torch.zeros(1, length, d_model))
        nn.init.normal_(self.pos, std=0.02)
        self.time = nn.Sequential(SinusoidalTimeEmbedding(d_model), nn.Linear(d_model, d_model), nn.SiLU(),
                                  nn.Linear(d_model, d_model))
        self.cond = (ConditionEmbedding(d_model, num_classes=num_classes, cond_dim=cond_dim)
                     if (num_classes or cond_dim) else None)
        layer = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout=dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, out_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.input == "tokens":
            if x.is_floating_point() or x.dim() != 2 or x.shape[1] != self.length:
                raise ValueError(f"expected long tokens (B, {self.length}), got {tuple(x.shape)} {x.dtype}")
            h = self.embed(x)
        else:
            if x.dim() != 3 or x.shape[1:] != (self.length, self.num_states):
                raise ValueError(f"expected simplex states (B, {self.length}, {self.num_states}), got {tuple(x.shape)}")
            h = self.embed(x.to(self.pos.dtype))
        e = self.time(t.to(self.pos.dtype))
        if cond is not None:
            if self.cond is None:
                raise ValueError("this network was built without conditioning (num_classes=0, cond_dim=0) but got cond")
            e = e + self.cond(cond)
        h = h + self.pos + e.unsqueeze(1)
        return self.head(self.norm(self.encoder(h)))
