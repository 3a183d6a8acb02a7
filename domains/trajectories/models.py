"""Agent-interaction network for flows over all agents' futures.

:class:`AgentTransformer` follows the sciflow network interface ``forward(x, t, cond)``:

* ``x``: ``(B, N, T, 2)`` the state at flow time ``t``: every agent's T future positions (metres,
  relative to the agent's last observed position); padded agents are zero;
* ``t``: ``(B,)`` flow time in [0, 1] (t = 0 source, t = 1 data);
* ``cond``: dict with ``hist (B, N, H, 2)`` observed positions relative to the last observed one,
  ``pos (B, N, 2)`` last observed positions in the scene frame (centred), ``mask (B, N)`` 1 = real agent;
* output ``(B, N, T, 2)``: the prediction (velocity / x1 / noise, as the flow's parameterisation says),
  exactly zero for padded agents so they cost nothing in the loss and never move while sampling.

Architecture: each agent's (noisy future, history, time) is embedded by an MLP into a token; a stack of
transformer blocks attends over the agents of the scene (Vaswani et al. 2017), with an additive attention
bias -softplus(w_h) * ||p_i - p_j|| per head h that makes near neighbours count more (a soft radius graph,
in the spirit of the agent-aware attention of AgentFormer, Yuan et al. 2021); every token also carries its
agent's position in the scene, so keys and values know where a neighbour is. Time enters through
adaptive layer norm (scale/shift from the time embedding, as in DiT, Peebles & Xie 2023).
Padded agents are excluded as keys; their outputs are zeroed.

With ``interaction="relative"`` the per-head bias is instead an MLP of the pair's relative state seen from
the query agent: neighbour position p_j - p_i and velocity difference v_j - v_i, both rotated into agent i's
heading frame, and their distance (the edge features of Trajectron++, Salzmann et al. 2020, used as an
attention bias); tokens then also carry their scene-frame velocity, so a neighbour's message can be related
to the query's own motion.

With ``modes = C`` (the multiple-choice student, whose batch holds C consecutive copies of every scene, one
per code) every agent block is followed by a block of self-attention over the C copies of each agent, so an
agent's C predicted futures see each other and can spread over its possible manoeuvres instead of being
made one code at a time (the mode self-attention of motion forecasters such as MTR, Shi et al. 2022, and
QCNet, Zhou et al. 2023). Its output projection starts at zero, so a student initialised from a teacher
without it starts as the teacher.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from sciflow.nn.embeddings import SinusoidalTimeEmbedding
from sciflow.registry import register

from .data import heading, rotate


class _Block(nn.Module):
    """Pre-norm transformer block over agents with time-adaptive layer norms and a distance bias."""

    def __init__(self, d: int, heads: int, mlp_ratio: float = 2.0, dropout: float = 0.0):
        super().__init__()
        self.heads, self.d = heads, d
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False)
        self.ada = nn.Linear(d, 4 * d)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.slope = nn.Parameter(torch.zeros(heads))
        hidden = int(mlp_ratio * d)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.SiLU(), nn.Linear(hidden, d))
        self.dropout = dropout

    def forward(self, h: torch.Tensor, temb: torch.Tensor, dist: torch.Tensor, key_bias: torch.Tensor,
                pair_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``h (B, N, d)``, ``temb (B, d)``, ``dist (B, N, N)``, ``key_bias (B, N)`` (0 or -inf), optional
        ``pair_bias (B, H, N, N)`` replacing the distance bias."""
        B, N, d = h.shape
        H, dh = self.heads, d // self.heads
        s1, b1, s2, b2 = self.ada(temb).unsqueeze(1).chunk(4, dim=-1)
        x = self.norm1(h) * (1 + s1) + b1
        q, k, v = self.qkv(x).view(B, N, 3, H, dh).permute(2, 0, 3, 1, 4)  # (B, H, N, dh) each
        if pair_bias is None:
            pair_bias = -F.softplus(self.slope).view(1, H, 1, 1) * dist.unsqueeze(1)
        bias = key_bias[:, None, None, :] + pair_bias
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                           dropout_p=self.dropout if self.training else 0.0)
        h = h + self.out(o.transpose(1, 2).reshape(B, N, d))
        h = h + self.mlp(self.norm2(h) * (1 + s2) + b2)
        return h


class _ModeBlock(nn.Module):
    """Pre-norm self-attention over the C mode copies of every agent, residual, zero-initialised output."""

    def __init__(self, d: int, heads: int, modes: int):
        super().__init__()
        self.heads, self.modes = heads, modes
        self.norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``h (B*C, N, d)`` with C consecutive copies of each scene -> same shape."""
        BC, N, d = h.shape
        C, H = self.modes, self.heads
        B, dh = BC // C, d // H
        x = self.norm(h).view(B, C, N, d).transpose(1, 2)  # (B, N, C, d): one sequence of modes per agent
        q, k, v = self.qkv(x).view(B, N, C, 3, H, dh).permute(3, 0, 1, 4, 2, 5)  # (B, N, H, C, dh) each
        o = F.scaled_dot_product_attention(q, k, v)  # (B, N, H, C, dh)
        o = o.permute(0, 3, 1, 2, 4).reshape(BC, N, d)  # back to (B*C, N, d), scene-major
        return h + self.out(o)


@register("model", "agent_transformer")
class AgentTransformer(nn.Module):
    """Transformer over the agents of a scene predicting all agents' futures jointly.

    Args:
        obs_len, pred_len: observed and predicted steps (8 and 12 for ETH/UCY).
        d_model: token width; heads: attention heads; depth: number of blocks.
        time_dim: size of the sinusoidal flow-time embedding.
        scale: length scale in metres used to normalise positions inside the network.
        dropout: attention dropout.
        canonical: work in each agent's heading frame (its last observed direction of motion, from the
            displacement over the last two observed steps, along +x; angle 0 when it stands still):
            inputs are rotated by -theta_i and outputs by +theta_i, so the agent-wise part of the field is
            exactly equivariant to rotations of the scene. Positions between agents (``pos``, distances)
            stay in the scene frame; rotation augmentation covers those.
        interaction: ``"distance"`` (attention bias linear in the distance, one slope per head and block) or
            ``"relative"`` (bias = MLP of the neighbour's position and velocity relative to the query agent,
            in the query's heading frame when ``canonical``; see the module docstring).
        modes: C > 1 adds self-attention over the C code copies of each agent after every block (the
            multiple-choice student; the batch must hold C consecutive copies of every scene, as the
            codebook prior and the samplers arrange it); None = every row on its own.
    """

    def __init__(self, obs_len: int = 8, pred_len: int = 12, d_model: int = 128, heads: int = 4,
                 depth: int = 3, time_dim: int = 64, scale: float = 2.0, dropout: float = 0.0,
                 canonical: bool = True, interaction: str = "distance", modes: Optional[int] = None):
        super().__init__()
        if interaction not in ("distance", "relative"):
            raise ValueError(f"interaction must be 'distance' or 'relative', got {interaction!r}")
        if modes is not None and modes < 2:
            raise ValueError(f"modes must be >= 2 (the codes attended over) or None, got {modes}")
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")
        self.obs_len, self.pred_len, self.scale = int(obs_len), int(pred_len), float(scale)
        self.canonical, self.interaction, self.heads = bool(canonical), interaction, int(heads)
        in_dim = 2 * pred_len + 2 * obs_len + 2 * (obs_len - 1) + 2 + (2 if interaction == "relative" else 0)
        self.embed = nn.Sequential(nn.Linear(in_dim, 2 * d_model), nn.SiLU(), nn.Linear(2 * d_model, d_model))
        self.time = nn.Sequential(SinusoidalTimeEmbedding(time_dim), nn.Linear(time_dim, d_model), nn.SiLU(),
                                  nn.Linear(d_model, d_model))
        self.blocks = nn.ModuleList([_Block(d_model, heads, dropout=dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.SiLU(), nn.Linear(2 * d_model, 2 * pred_len))
        if interaction == "relative":
            # 5 pair features -> one bias per head and block
            self.pair_mlp = nn.Sequential(nn.Linear(5, 64), nn.SiLU(), nn.Linear(64, depth * heads))
        self.modes = None if modes is None else int(modes)
        if self.modes is not None:
            self.mode_blocks = nn.ModuleList([_ModeBlock(d_model, heads, self.modes) for _ in range(depth)])

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Optional[dict] = None) -> torch.Tensor:
        if cond is None or not isinstance(cond, dict):
            raise TypeError("AgentTransformer needs cond={'hist': (B,N,H,2), 'pos': (B,N,2), 'mask': (B,N)}")
        for key in ("hist", "pos", "mask"):
            if key not in cond:
                raise ValueError(f"cond lacks '{key}'; expected keys hist, pos, mask")
        hist, pos, mask = cond["hist"], cond["pos"], cond["mask"]
        if x.dim() != 4 or x.shape[-2:] != (self.pred_len, 2):
            raise ValueError(f"x must have shape (B, N, {self.pred_len}, 2), got {tuple(x.shape)}")
        B, N = x.shape[:2]
        if hist.shape != (B, N, self.obs_len, 2) or pos.shape != (B, N, 2) or mask.shape != (B, N):
            raise ValueError(f"cond shapes {tuple(hist.shape)}, {tuple(pos.shape)}, {tuple(mask.shape)} do not "
                             f"match x {tuple(x.shape)} (expected (B,N,{self.obs_len},2), (B,N,2), (B,N))")
        if self.modes is not None:
            C = self.modes
            if B % C:
                raise ValueError(f"with modes={C} the batch holds {C} consecutive copies of every scene, so its "
                                 f"size must be a multiple of {C}; got {B}")
            copies = hist.reshape(B // C, C, -1)
            if not torch.equal(copies, copies[:, :1].expand_as(copies)):
                # attending over rows of different scenes would silently mix unrelated agents
                raise ValueError(f"with modes={C} every {C} consecutive rows must be copies of one scene (cond "
                                 f"'hist' differs within a group), as the codebook prior and samplers arrange them")
        s = self.scale
        m = mask.to(x.dtype)
        vel_scene = hist[:, :, -1] - hist[:, :, -2]  # (B, N, 2) last observed step, scene frame
        theta = torch.zeros_like(m)
        if self.canonical:
            # rotate every agent into its own heading frame (last observed direction along +x): the
            # per-agent map is then exactly rotation equivariant; the rotation depends on cond only
            theta = heading(hist)
            x = rotate(x, -theta[..., None])
            hist = rotate(hist, -theta[..., None])
        vel = hist[:, :, 1:] - hist[:, :, :-1]
        parts = [x.flatten(2) / s, hist.flatten(2) / s, vel.flatten(2) * (2.0 / s), pos / (4 * s)]
        if self.interaction == "relative":
            parts.append(vel_scene * (2.0 / s))
        feat = torch.cat(parts, dim=-1)
        h = self.embed(feat)
        temb = self.time(t)
        h = h + temb.unsqueeze(1)
        dist = (pos.unsqueeze(1) - pos.unsqueeze(2)).norm(dim=-1) / s  # (B, N, N)
        key_bias = torch.zeros_like(m).masked_fill(mask <= 0, float("-inf"))
        biases = [None] * len(self.blocks)
        if self.interaction == "relative":
            biases = self._pair_biases(pos, vel_scene, theta, dist)
        for i, (blk, pb) in enumerate(zip(self.blocks, biases)):
            h = blk(h, temb, dist, key_bias, pb)
            if self.modes is not None:
                h = self.mode_blocks[i](h)
        out = self.head(self.norm(h)).view(B, N, self.pred_len, 2)
        if self.canonical:
            out = rotate(out, theta[..., None])
        return out * m[:, :, None, None]

    def _pair_biases(self, pos: torch.Tensor, vel: torch.Tensor, theta: torch.Tensor, dist: torch.Tensor):
        """Per-block attention biases ``[(B, H, N, N)] * depth`` from the relative state of every pair
        (i query, j key): ``R(-theta_i)(p_j - p_i) / s``, ``R(-theta_i)(v_j - v_i) * 2 / s`` and the distance."""
        s = self.scale
        ang = -theta[:, :, None]  # (B, N, 1): the query agent's frame, broadcast over keys j
        rel_p = rotate(pos.unsqueeze(1) - pos.unsqueeze(2), ang) / s  # (B, N, N, 2) [i, j] = p_j - p_i
        rel_v = rotate(vel.unsqueeze(1) - vel.unsqueeze(2), ang) * (2.0 / s)
        e = torch.cat([rel_p, rel_v, dist.unsqueeze(-1)], dim=-1)  # (B, N, N, 5)
        out = self.pair_mlp(e).permute(0, 3, 1, 2)  # (B, depth*H, N, N)
        return out.split(self.heads, dim=1)
