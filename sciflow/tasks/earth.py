"""Task "earth": densities of events on the Earth's surface (S^2) by Riemannian flow matching.

Chen & Lipman, "Flow Matching on General Geometries" (ICLR 2024), Sec. 5: uniform base on S^2, geodesic
conditional paths, an MLP on the ambient coordinates whose output is projected to the tangent space,
and test NLL (nats, w.r.t. the area measure of the unit sphere) from the Riemannian change of
variables on a random 80/10/10 split.

Config (``configs/riemannian/earth_volcano.yaml``)::

    task: earth
    data: {path: ../shared/data/earth/volcano.csv, split: [0.8, 0.1, 0.1], split_seed: null}
    model: {name: mlp, hidden: 256, depth: 4}
    flow: {path: geodesic, scheduler: cond_ot, prediction: velocity}
    eval: {nll_method: rk4, nll_steps: 50, divergence: exact, plot: true}

``split_seed: null`` uses the run seed, so ``seed=1,2,3`` gives the published protocol's independent
splits. Evaluation writes ``metrics.json`` (test/val NLL in nats) and ``earth_samples.png`` (data,
samples and model density on a Mollweide map).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Literal, Optional

import torch
from pydantic import Field, field_validator

from sciflow.config import ConfigError
from sciflow.datasets.earth import earth_splits
from sciflow.paths.geodesic import GeodesicPath
from sciflow.registry import register
from sciflow.spaces.sphere import Sphere, latlon_to_xyz, xyz_to_latlon
from sciflow.task import StrictModel, Task


class EarthDataConfig(StrictModel):
    """``data`` section: a CSV of latitude/longitude (degrees) and the split protocol."""

    path: str
    split: List[float] = Field(default_factory=lambda: [0.8, 0.1, 0.1])
    split_seed: Optional[int] = None

    @field_validator("split")
    @classmethod
    def _three_fractions(cls, v):
        if len(v) != 3 or any(f < 0 for f in v) or abs(sum(v) - 1) > 1e-6:
            raise ValueError(f"split must be [train, val, test] fractions summing to 1, got {v}")
        return v


class EarthEvalConfig(StrictModel):
    """``eval`` section: likelihood integration and plots."""

    nll_method: Literal["euler", "midpoint", "heun", "rk4"] = "rk4"
    nll_steps: int = Field(50, gt=0)
    divergence: Literal["exact", "hutchinson"] = "exact"
    n_probes: int = Field(1, gt=0)
    batch_size: int = Field(2048, gt=0)
    plot: bool = True
    n_samples: int = Field(4000, ge=0)
    grid_lat: int = Field(60, gt=1)
    grid_lon: int = Field(120, gt=1)
    grid_steps: int = Field(25, gt=0)
    plot_format: Literal["png", "pdf", "svg"] = "png"


@register("task", "earth")
class EarthTask(Task):
    """Flow matching on S^2 for a CSV of event locations; reports test NLL in nats."""

    DataConfig = EarthDataConfig
    EvalConfig = EarthEvalConfig

    def __init__(self, config):
        super().__init__(config)
        self.space = Sphere(2)
        self._splits = None

    @property
    def splits(self) -> Dict[str, torch.Tensor]:
        if self._splits is None:
            seed = self.data_cfg.split_seed if self.data_cfg.split_seed is not None else self.config.seed
            self._splits = earth_splits(self.data_cfg.path, tuple(self.data_cfg.split), seed=seed,
                                        dtype=torch.get_default_dtype())
        return self._splits

    def train_dataset(self):
        return torch.utils.data.TensorDataset(self.splits["train"])

    def val_dataset(self):
        val = self.splits["val"]
        return torch.utils.data.TensorDataset(val) if len(val) else None

    def build_flow(self):
        fc = self.config.flow
        spec = {"name": fc.path} if isinstance(fc.path, str) else dict(fc.path)
        name = spec.pop("name", None)
        if name != "geodesic":
            raise ConfigError(f"task 'earth' needs flow.path: geodesic (states live on the sphere), got {name!r}")
        if "space" in spec:
            raise ConfigError("flow.path.space is set by task 'earth' (Sphere(2)); remove it")
        scheduler = spec.pop("scheduler", fc.scheduler)
        if spec:
            raise ConfigError(f"unknown keys for flow.path geodesic: {sorted(spec)}; allowed: name, scheduler")
        if fc.prediction != "velocity":
            raise ConfigError(f"task 'earth' supports flow.prediction: velocity only, got {fc.prediction!r}")
        path = GeodesicPath(self.space, scheduler=scheduler)
        return self.make_flow(self.build_model(shape=3), space=self.space, path=path)

    # -- evaluation ------------------------------------------------------------------------------
    def log_prob(self, flow, x: torch.Tensor, steps: Optional[int] = None) -> torch.Tensor:
        """Model log-density (nats, w.r.t. area on the unit sphere) of points ``(N, 3)``, in batches."""
        from sciflow.likelihood import log_prob

        ec = self.eval_cfg
        p = next(flow.parameters())
        x = x.to(device=p.device, dtype=p.dtype)
        g = torch.Generator(device=p.device).manual_seed(self.config.seed + 777)
        out = [log_prob(flow, xb, steps=steps or ec.nll_steps, method=ec.nll_method, divergence=ec.divergence,
                        n_probes=ec.n_probes, generator=g)
               for xb in x.split(ec.batch_size)]
        return torch.cat(out)

    def evaluate(self, flow, run_dir: Path) -> Dict[str, float]:
        ec = self.eval_cfg
        metrics: Dict[str, float] = {}
        for split in ("test", "val"):
            x = self.splits[split]
            if len(x):
                lp = self.log_prob(flow, x)
                metrics[f"{split}_nll"] = float(-lp.mean())
                metrics[f"{split}_nll_sem"] = float(lp.std() / math.sqrt(len(lp))) if len(lp) > 1 else 0.0
        metrics["uniform_nll"] = math.log(4 * math.pi)  # reference: the base distribution
        metrics.update({f"n_{k}": len(v) for k, v in self.splits.items()})
        if ec.plot:
            self._plot(flow, Path(run_dir) / f"earth_samples.{ec.plot_format}", metrics)
        return metrics

    def _plot(self, flow, path: Path, metrics: Dict[str, float]) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ec, sc = self.eval_cfg, self.config.sample
        g = torch.Generator().manual_seed(self.config.seed + 4321)
        res = flow.sample(ec.n_samples, sampler=sc.sampler, steps=sc.steps, generator=g) if ec.n_samples else None
        lat = torch.linspace(-90, 90, ec.grid_lat + 1)[:-1] + 90 / ec.grid_lat
        lon = torch.linspace(-180, 180, ec.grid_lon + 1)[:-1] + 180 / ec.grid_lon
        la, lo = torch.meshgrid(lat, lon, indexing="ij")
        grid = latlon_to_xyz(la.reshape(-1), lo.reshape(-1))
        dens = self.log_prob(flow, grid, steps=ec.grid_steps).exp().reshape(la.shape).cpu()
        data = self.splits["train"]
        panels = [("training data", data), (f"samples ({sc.sampler}, {sc.steps} steps)", res.x if res else None)]
        fig = plt.figure(figsize=(15, 4))
        for i, (title, pts) in enumerate(panels):
            ax = fig.add_subplot(1, 3, i + 1, projection="mollweide")
            if pts is not None:
                plat, plon = xyz_to_latlon(pts.detach().float().cpu())
                ax.scatter(torch.deg2rad(plon), torch.deg2rad(plat), s=1, alpha=0.4)
            ax.set_title(title)
            ax.grid(True, alpha=0.3)
            ax.set_xticklabels([])
        ax = fig.add_subplot(1, 3, 3, projection="mollweide")
        mesh = ax.pcolormesh(torch.deg2rad(lo), torch.deg2rad(la), dens, shading="auto", cmap="viridis")
        fig.colorbar(mesh, ax=ax, shrink=0.6, label="density (1/sr)")
        ax.set_title(f"model density, test NLL {metrics.get('test_nll', float('nan')):.3f} nats")
        ax.grid(True, alpha=0.3)
        ax.set_xticklabels([])
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
