"""Config-driven 2-D stochastic-interpolant task: Gaussian-to-data or data-to-data transport.

``sciflow train configs/interpolants/moons_to_8gaussians_sb.yaml`` trains a drift + denoiser (or drift +
score) network pair on a :class:`~sciflow.paths.interpolants.StochasticInterpolantPath` and evaluates the
configured sampler (an SDE such as ``{name: euler_maruyama, epsilon: 0.5}`` or any ODE sampler) by W2 / MMD
to held-out target samples, beside the probability-flow ODE (``heun``) at the same NFE.

Time convention: t = 0 source (``data.source``: "gaussian" = N(0, I), or a toy dataset name), t = 1 target.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import torch
from pydantic import Field

from sciflow.datasets.toy import TOY_DATASETS, sample_toy
from sciflow.registry import register
from sciflow.spaces.euclidean import Euclidean
from sciflow.task import StrictModel, Task


class InterpolantDataConfig(StrictModel):
    """``data`` section: target and source distributions and split sizes."""

    dataset: str = "eight_gaussians"
    source: str = "gaussian"
    n_train: int = Field(20000, gt=0)
    n_test: int = Field(2000, gt=0)

    def model_post_init(self, _context) -> None:
        if self.dataset not in TOY_DATASETS:
            raise ValueError(f"data.dataset '{self.dataset}' is unknown; choose one of {sorted(TOY_DATASETS)}")
        if self.source != "gaussian" and self.source not in TOY_DATASETS:
            raise ValueError(f"data.source '{self.source}' is unknown; use 'gaussian' or one of {sorted(TOY_DATASETS)}")


class InterpolantEvalConfig(StrictModel):
    """``eval`` section."""

    n_samples: int = Field(2000, gt=0)
    plot: bool = True


@register("task", "interpolant2d")
class Interpolant2DTask(Task):
    """Stochastic-interpolant transport between 2-D distributions (see module docstring)."""

    DataConfig = InterpolantDataConfig
    EvalConfig = InterpolantEvalConfig

    def _split(self, which: str, n: int) -> torch.Tensor:
        offset = {"train": 0, "test": 2}[which]
        return sample_toy(self.data_cfg.dataset, n, seed=self.config.seed * 3 + offset)

    def train_dataset(self):
        return torch.utils.data.TensorDataset(self._split("train", self.data_cfg.n_train))

    def _source(self):
        if self.data_cfg.source == "gaussian":
            return None
        from sciflow.registry import get

        fn = get("dataset", self.data_cfg.source)

        def source(n, cond=None, device=None, dtype=None, generator=None):
            return fn(n, generator=generator).to(device=device, dtype=dtype)

        return source

    def build_flow(self):
        from sciflow.paths.interpolants import (
            _FIELDS, AntitheticModel, MultiFieldModel, StochasticInterpolantPath,
        )
        from sciflow.registry import build

        fc = self.config.flow
        spec = {"name": fc.path} if isinstance(fc.path, str) else dict(fc.path)
        name = spec.pop("name")
        if name != "interpolant":
            raise ValueError(f"task interpolant2d needs flow.path.name = 'interpolant', got {name!r}")
        path = build("path", name, **spec)
        assert isinstance(path, StochasticInterpolantPath)
        if fc.prediction not in _FIELDS:
            raise ValueError(f"flow.prediction '{fc.prediction}' is not an interpolant prediction; choose one of "
                             f"{sorted(_FIELDS)}")
        nets = {field: self.build_model(shape=2) for field in _FIELDS[fc.prediction]}
        model = MultiFieldModel(**nets)
        if path.antithetic:
            model = AntitheticModel(model)
        extra = {}
        if path.gamma.singular_derivative or path.interpolant.gaussian_source:
            # gamma' is infinite at t = 0, 1: keep training times and the sampling interval inside
            extra["t_eps"] = max(fc.t_eps or 0.0, 1e-3)
        return self.make_flow(model, space=Euclidean(2), path=path, source=self._source(), **extra)

    def evaluate(self, flow, run_dir: Path) -> Dict[str, float]:
        from sciflow.metrics import mmd, w2

        ec, sc = self.eval_cfg, self.config.sample
        test = self._split("test", self.data_cfg.n_test)
        g = torch.Generator().manual_seed(self.config.seed + 12345)
        x0 = flow.sample_source(ec.n_samples, generator=g, dtype=test.dtype)
        res = flow.sample(x0=x0, sampler=sc.sampler, steps=sc.steps)
        ode = flow.sample(x0=x0, sampler="heun", steps=max(1, res.nfe // 2))
        fresh = sample_toy(self.data_cfg.dataset, ec.n_samples, seed=self.config.seed * 3 + 99)
        metrics = {"w2": w2(res.x, test), "mmd": mmd(res.x, test), "nfe": res.nfe,
                   "w2_ode_heun": w2(ode.x, test), "nfe_ode_heun": ode.nfe,
                   "w2_data_floor": w2(fresh, test)}
        if ec.plot:
            from sciflow.tasks.toy import _plot

            _plot(res, test, Path(run_dir) / "samples.png", self.data_cfg.dataset, metrics, 0)
        return metrics
