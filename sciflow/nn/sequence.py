"""A small transformer over token sequences or simplex sequences, with time and condition embeddings.

Interface (as every sciflow network)::

    forward(x, t, cond=None) -> logits (B, L, V)
      x:    (B, L) long token ids in [0, num_states)  (input="tokens"; the mask id is one of the states)
            or (B, L, K) simplex points                (input="simplex")
      t:    (B,) times in [0, 1], t = 0 source, t = 1 data
      cond: None, (B,) long labels (-1 = dropped, for classifier-free guidance) or (B, cond_dim) floats

The time (and condition) embedding is added to every token embedding; a learned positional embedding
is added as well. For ``length == 1`` (a single categorical variable) it reduces to an MLP-like model.

Two options give the network *local* and *relative* position information, which sequence posteriors
mostly depend on (e.g. for a Markov chain under a masked path, p(x1^i | x_t) depends only on the nearest
unmasked neighbours and their distances to i):

* ``conv_kernel = k`` (odd, > 0): each block starts with a pre-norm depthwise 1-D convolution over the
  sequence (kernel k, zero padding) followed by a GELU and a pointwise linear map, in a residual branch
  (as the convolution module of the Conformer, Gulati et al. 2020).
* ``rel_pos = True``: self-attention gets a learned per-head bias b_h[j - i] for every relative offset
  (Shaw et al. 2018; Raffel et al. 2020, T5), so attention can find "the nearest neighbour to the left"
  without having to decode it from absolute position embeddings.

With either option the blocks are sciflow's own pre-norm blocks (conv -> attention -> MLP, each
``h + f(LayerNorm(h))``); with neither, a stock pre-norm ``nn.TransformerEncoder`` (the original model,
kept bit-for-bit so recorded benchmarks stay reproducible). Without them a small transformer trained for
a few CPU minutes on 20-symbol Markov sequences learned only unigram frequencies (see docs/discrete.md).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from sciflow.nn.embeddings import ConditionEmbedding, SinusoidalTimeEmbedding
from sciflow.registry import register


class LocalAttentionBlock(nn.Module):
    """Pre-norm block: optional depthwise-conv branch, self-attention with optional relative-position bias, MLP.

    Input and output ``(B, L, d_model)``; every branch is residual, ``h + f(LayerNorm(h))``.
    """

    def __init__(self, d_model: int, heads: int, length: int, conv_kernel: int = 0, rel_pos: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")
        self.heads, self.dropout = heads, float(dropout)
        if conv_kernel:
            self.conv_norm = nn.LayerNorm(d_model)
            self.conv = nn.Conv1d(d_model, d_model, conv_kernel, padding=conv_kernel // 2, groups=d_model)
            self.conv_out = nn.Linear(d_model, d_model)
        else:
            self.conv = None
        self.attn_norm = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.attn_out = nn.Linear(d_model, d_model)
        if rel_pos:
            self.rel_bias = nn.Parameter(torch.zeros(heads, 2 * length - 1))
            offs = torch.arange(length)
            self.register_buffer("rel_index", offs[None, :] - offs[:, None] + length - 1, persistent=False)
        else:
            self.rel_bias = None
        self.mlp_norm = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, n, d = h.shape
        if self.conv is not None:
            c = self.conv(self.conv_norm(h).transpose(1, 2)).transpose(1, 2)
            h = h + self.drop(self.conv_out(F.gelu(c)))
        q, k, v = self.qkv(self.attn_norm(h)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.rel_bias[:, self.rel_index].unsqueeze(0).to(q.dtype) if self.rel_bias is not None else None
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0)
        h = h + self.drop(self.attn_out(a.transpose(1, 2).reshape(b, n, d)))
        return h + self.drop(self.mlp(self.mlp_norm(h)))


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
        conv_kernel: odd kernel size of a depthwise-convolution branch in every block (0 = none).
        rel_pos: learned per-head relative-position attention bias.
    """

    def __init__(self, length: int, num_states: int, out_dim: int, input: str = "tokens", d_model: int = 64,
                 depth: int = 2, heads: int = 4, dropout: float = 0.0, num_classes: int = 0, cond_dim: int = 0,
                 conv_kernel: int = 0, rel_pos: bool = False):
        super().__init__()
        if input not in ("tokens", "simplex"):
            raise ValueError(f"input must be 'tokens' or 'simplex', got {input!r}")
        if int(conv_kernel) < 0 or (conv_kernel and int(conv_kernel) % 2 == 0):
            raise ValueError(f"conv_kernel must be 0 (off) or a positive odd integer, got {conv_kernel}")
        self.length, self.num_states, self.out_dim, self.input = int(length), int(num_states), int(out_dim), input
        self.embed = nn.Embedding(num_states, d_model) if input == "tokens" else nn.Linear(num_states, d_model)
        self.pos = nn.Parameter(torch.zeros(1, length, d_model))
        nn.init.normal_(self.pos, std=0.02)
        self.time = nn.Sequential(SinusoidalTimeEmbedding(d_model), nn.Linear(d_model, d_model), nn.SiLU(),
                                  nn.Linear(d_model, d_model))
        self.cond = (ConditionEmbedding(d_model, num_classes=num_classes, cond_dim=cond_dim)
                     if (num_classes or cond_dim) else None)
        self.conv_kernel, self.rel_pos = int(conv_kernel), bool(rel_pos)
        if self.conv_kernel or self.rel_pos:
            self.encoder = nn.Sequential(*[LocalAttentionBlock(d_model, heads, length, self.conv_kernel, self.rel_pos,
                                                               dropout) for _ in range(depth)])
        else:
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
