"""MLP vector field with sinusoidal time embedding and optional conditioning.

Every network in sciflow follows one interface::

    forward(x, t, cond=None) -> output
      x:    (B, *event_shape) states
      t:    (B,) times in [0, 1], t = 0 source, t = 1 data
      cond: None, (B,) long class labels (-1 = dropped for guidance), or (B, cond_dim) floats
            (all-NaN row = dropped)
      out:  (B, *event_shape) for velocity / x1 / noise predictions
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
from torch import nn

from sciflow.nn.embeddings import ConditionEmbedding, SinusoidalTimeEmbedding
from sciflow.registry import register

_ACTIVATIONS = {"silu": nn.SiLU, "gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh, "selu": nn.SELU}


@register("model", "mlp")
class MLP(nn.Module):
    """Fully connected field on flattened states.

    Args:
        shape: event shape of a state (int or tuple).
        hidden: width of each hidden layer.
        depth: number of hidden layers.
        time_dim: size of the sinusoidal time embedding (0 feeds raw t).
        num_classes / cond_dim: conditioning on labels or vectors (at most one).
        activation: one of silu, gelu, relu, tanh, selu.
    """

    def __init__(self, shape: Union[int, Sequence[int]], hidden: int = 256, depth: int = 3, time_dim: int = 32,
                 num_classes: int = 0, cond_dim: int = 0, activation: str = "silu"):
        super().__init__()
        self.event_shape = (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation '{activation}' unknown; choose one of {sorted(_ACTIVATIONS)}")
        d = math.prod(self.event_shape)
        self.time_embed = SinusoidalTimeEmbedding(time_dim) if time_dim else None
        t_dim = time_dim if time_dim else 1
        self.cond_embed = (
            ConditionEmbedding(t_dim, num_classes=num_classes, cond_dim=cond_dim) if (num_classes or cond_dim) else None
        )
        layers, width = [], d + t_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), _ACTIVATIONS[activation]()]
            width = hidden
        layers.append(nn.Linear(width, d))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        b = x.shape[0]
        temb = self.time_embed(t) if self.time_embed is not None else t.reshape(b, 1)
        if cond is not None:
            if self.cond_embed is None:
                raise ValueError("this MLP was built without conditioning (num_classes=0, cond_dim=0) but got cond")
            temb = temb + self.cond_embed(cond)
        h = torch.cat([x.reshape(b, -1), temb.to(x.dtype)], dim=-1)
        return self.net(h).reshape(b, *self.event_shape)
