"""Reusable networks; all follow ``forward(x, t, cond=None)`` (see :mod:`sciflow.nn.mlp`)."""
from sciflow.nn.embeddings import ConditionEmbedding, SinusoidalTimeEmbedding
from sciflow.nn.mlp import MLP

__all__ = ["MLP", "SinusoidalTimeEmbedding", "ConditionEmbedding"]
