"""Product paths over named components (joint continuous + discrete states; Campbell et al., "Generative
Flows on Discrete State-Spaces: Enabling Multimodal Flows with Applications to Protein Co-Design", 2024).

A state is a mapping ``{name: tensor}``; each component has its own path and network parameterisation
(e.g. ``{"pos": (AffinePath(), "velocity"), "types": (MixturePath(V), "logits")}``). All components share
one time t ``(B,)`` (t = 0 source, t = 1 data). The loss is the (optionally weighted) sum of the
component losses; the network takes the whole dict state and returns a dict of outputs with the same
keys. Use it with ``Flow(..., prediction="product")`` and the "product" sampler, which steps continuous
components with ODE (Euler) steps and discrete ones with CTMC jumps in one loop.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import torch

from sciflow.paths.base import Path, PathSample
from sciflow.registry import register


def _build_component(name: str, spec: Any) -> Tuple[Path, str]:
    from sciflow.registry import build

    if isinstance(spec, Path):
        preds = spec.predictions
        return spec, preds[0]
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[0], Path):
        spec[0].check_prediction(spec[1])
        return spec[0], str(spec[1])
    if isinstance(spec, Mapping):
        spec = dict(spec)
        if "name" not in spec:
            raise ValueError(f"product path component '{name}' needs a 'name' (a registered path)")
        pname = spec.pop("name")
        pred = spec.pop("prediction", None)
        path = build("path", pname, **spec)
        pred = pred if pred is not None else path.predictions[0]
        path.check_prediction(pred)
        return path, pred
    raise TypeError(f"product path component '{name}' must be a Path, (Path, prediction) or a mapping, "
                    f"got {type(spec).__name__}")


@register("path", "product")
class ProductPath(Path):
    """Independent paths per component with a shared time and a summed loss.

    Args:
        components: mapping name -> Path (its first prediction is used), (Path, prediction) or a
            registry mapping ``{"name": "affine", "prediction": "velocity", **kwargs}``.
        weights: optional mapping name -> loss weight (default 1 for every component).
    """

    predictions = ("product",)

    def __init__(self, components: Mapping[str, Any], weights: Optional[Mapping[str, float]] = None):
        if not isinstance(components, Mapping) or not components:
            raise ValueError("ProductPath needs a non-empty mapping of components")
        built = {k: _build_component(k, v) for k, v in components.items()}
        self.paths: Dict[str, Path] = {k: v[0] for k, v in built.items()}
        self.component_predictions: Dict[str, str] = {k: v[1] for k, v in built.items()}
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(self.paths))
        if unknown:
            raise ValueError(f"ProductPath weights name unknown components {unknown}; components are {list(self.paths)}")
        self.weights = {k: float(weights.get(k, 1.0)) for k in self.paths}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}=({p!r}, {self.component_predictions[k]!r})" for k, p in self.paths.items())
        return f"ProductPath({inner}, weights={self.weights})"

    def _check_state(self, x: Any, name: str) -> None:
        if not isinstance(x, Mapping):
            raise TypeError(f"{name} must be a mapping with keys {list(self.paths)}, got {type(x).__name__}")
        if set(x.keys()) != set(self.paths):
            raise ValueError(f"{name} has components {sorted(x)}; expected {sorted(self.paths)}")

    def component(self, sample: PathSample, key: str) -> PathSample:
        """The PathSample of one component."""
        sub = sample.extra["components"][key]
        return sub

    def sample(self, x0: Mapping, x1: Mapping, t: torch.Tensor) -> PathSample:
        self._check_state(x0, "x0")
        self._check_state(x1, "x1")
        subs = {k: p.sample(x0[k], x1[k], t) for k, p in self.paths.items()}
        return PathSample(
            x0={k: s.x0 for k, s in subs.items()}, x1={k: s.x1 for k, s in subs.items()}, t=t,
            x_t={k: s.x_t for k, s in subs.items()}, dx_t={k: s.dx_t for k, s in subs.items()},
            extra={"components": subs},
        )

    def component_losses(self, output: Mapping, sample: PathSample) -> Dict[str, torch.Tensor]:
        """Unweighted per-example losses ``(B,)`` of every component."""
        self._check_state(output, "network output")
        return {k: p.loss(output[k], sample.extra["components"][k], self.component_predictions[k])
                for k, p in self.paths.items()}

    def loss(self, output: Mapping, sample: PathSample, prediction: str = "product") -> torch.Tensor:
        """sum_k weight_k * loss_k, shape ``(B,)``."""
        self.check_prediction(prediction)
        losses = self.component_losses(output, sample)
        total = None
        for k, v in losses.items():
            v = self.weights[k] * v
            total = v if total is None else total + v.to(total.dtype)
        return total

    def velocity(self, output: Mapping, x_t: Mapping, t: torch.Tensor, prediction: str = "product") -> Dict[str, Any]:
        """Component-wise velocities (CTMC rate tensors for discrete components)."""
        self.check_prediction(prediction)
        self._check_state(output, "network output")
        return {k: p.velocity(output[k], x_t[k], t, self.component_predictions[k]) for k, p in self.paths.items()}
