"""Products of spaces over named components, for joint states such as {"pos": R^{N x 3}, "types": tokens}.

A product state is a mapping ``{name: tensor (B, *event_shape_name)}`` with the same batch size for every
component (Campbell et al., "Generative Flows on Discrete State-Spaces", 2024, for joint continuous +
discrete generation). Geometry acts component-wise; discrete components (``is_discrete``) have no
tangent vectors and are passed through ``exp``/``proj_tangent`` unchanged (samplers step them with CTMC
jumps, see :mod:`sciflow.samplers.product`).
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import torch

from sciflow.registry import register
from sciflow.spaces.base import Space


@register("space", "product")
class ProductSpace(Space):
    """Cartesian product of named spaces.

    Args:
        components: mapping name -> :class:`Space` (order is kept; it is the order of the state dict).
    """

    def __init__(self, components: Mapping[str, Space]):
        if not isinstance(components, Mapping) or not components:
            raise ValueError("ProductSpace needs a non-empty mapping name -> Space")
        for k, s in components.items():
            if not isinstance(s, Space):
                raise TypeError(f"ProductSpace component '{k}' must be a Space, got {type(s).__name__}")
        self.components: Dict[str, Space] = dict(components)
        self.event_shape = ()  # per component, see ``event_shapes``
        self.is_euclidean = all(getattr(s, "is_euclidean", False) for s in self.components.values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={s!r}" for k, s in self.components.items())
        return f"ProductSpace({inner})"

    @property
    def event_shapes(self) -> Dict[str, tuple]:
        return {k: tuple(s.event_shape) for k, s in self.components.items()}

    def _keys(self, x: Mapping, name: str = "x") -> None:
        if not isinstance(x, Mapping):
            raise TypeError(f"{name} must be a mapping with keys {list(self.components)}, got {type(x).__name__}")
        if list(x.keys()) != list(self.components):
            if set(x.keys()) != set(self.components):
                raise ValueError(f"{name} has components {sorted(x)}; expected {list(self.components)}")

    def _map(self, fn, x, *others):
        self._keys(x)
        return {k: fn(s, x[k], *(o[k] for o in others)) for k, s in self.components.items()}

    def exp(self, x, v):
        return self._map(lambda s, a, b: a if s.is_discrete else s.exp(a, b), x, v)

    def log(self, x, y):
        return self._map(lambda s, a, b: None if s.is_discrete else s.log(a, b), x, y)

    def proj(self, x):
        return self._map(lambda s, a: a if s.is_discrete else s.proj(a), x)

    def proj_tangent(self, x, v):
        return self._map(lambda s, a, b: b if s.is_discrete else s.proj_tangent(a, b), x, v)

    def inner(self, x, u, v):
        tot = None
        for k, s in self.components.items():
            if s.is_discrete:
                continue
            val = s.inner(x[k], u[k], v[k])
            tot = val if tot is None else tot + val
        return tot

    def dist(self, x, y):
        """Square root of the sum of squared component distances (Hamming for discrete components)."""
        tot = None
        for k, s in self.components.items():
            d2 = s.dist(x[k], y[k]).pow(2)
            tot = d2 if tot is None else tot + d2.to(tot.dtype)
        return tot.sqrt()

    def random_base(self, n: int, device=None, dtype=None, generator: Optional[torch.Generator] = None):
        """Independent base draws per component: ``{name: (n, *event_shape_name)}``."""
        return {k: s.random_base(n, device=device, dtype=dtype, generator=generator) for k, s in self.components.items()}

    def base_log_prob(self, x):
        tot = None
        for k, s in self.components.items():
            lp = s.base_log_prob(x[k])
            tot = lp if tot is None else tot + lp.to(tot.dtype)
        return tot

    def check(self, x, name: str = "x") -> None:
        self._keys(x, name)
        n = None
        for k, s in self.components.items():
            s.check(x[k], f"{name}['{k}']")
            if n is None:
                n = x[k].shape[0]
            elif x[k].shape[0] != n:
                raise ValueError(f"{name}['{k}'] has batch size {x[k].shape[0]}, other components have {n}")
