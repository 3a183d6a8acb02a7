"""The built-in 2-D toy task: the default first run of a newcomer.

``sciflow train configs/toy/moons.yaml`` trains an MLP flow on a toy distribution, then writes
``metrics.json`` (W2 and MMD of generated vs held-out samples, beside two reference values), a sample
plot and a checkpoint into the run directory.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Literal

import torch
from pydantic import Field

from sciflow.datasets.toy import TOY_DATASETS, sample_toy
from sciflow.registry import register
from sciflow.spaces.euclidean import Euclidean
from sciflow.task import StrictModel, Task


class ToyDataConfig(StrictModel):
    """``data`` section of the toy task."""

    dataset: str = "moons"
    n_train: int = Field(20000, gt=0)
    n_val: int = Field(2000, ge=0)
    n_test: int = Field(2000, gt=0)

    def model_post_init(self, _context) -> None:
        if self.dataset not in TOY_DATASETS:
            raise ValueError(f"data.dataset '{self.dataset}' is unknown; choose one of {sorted(TOY_DATASETS)}")


class ToyEvalConfig(StrictModel):
    """``eval`` section of the toy task."""

    n_samples: int = Field(2000, gt=0)
    plot: bool = True
    trajectories: int = Field(64, ge=0)
    plot_format: Literal["png", "pdf", "svg"] = "png"


@register("task", "toy2d")
class Toy2DTask(Task):
    """Learn a 2-D toy distribution from N(0, I) noise."""

    DataConfig = ToyDataConfig
    EvalConfig = ToyEvalConfig

    def _split(self, which: str, n: int) -> torch.Tensor:
        offset = {"train": 0, "val": 1, "test": 2}[which]
        return sample_toy(self.data_cfg.dataset, n, seed=self.config.seed * 3 + offset)

    def train_dataset(self):
        return torch.utils.data.TensorDataset(self._split("train", self.data_cfg.n_train))

    def val_dataset(self):
        if self.data_cfg.n_val == 0:
            return None
        return torch.utils.data.TensorDataset(self._split("val", self.data_cfg.n_val))

    def build_flow(self):
        return self.make_flow(self.build_model(shape=2), space=Euclidean(2))

    def evaluate(self, flow, run_dir: Path) -> Dict[str, float]:
        from sciflow.metrics import mmd, wasserstein

        ec, sc = self.eval_cfg, self.config.sample
        test = self._split("test", self.data_cfg.n_test)
        g = torch.Generator().manual_seed(self.config.seed + 12345)
        res = flow.sample(ec.n_samples, sampler=sc.sampler, steps=sc.steps, generator=g,
                          return_trajectory=ec.trajectories > 0)
        noise = torch.randn(ec.n_samples, 2, generator=g)
        fresh = sample_toy(self.data_cfg.dataset, ec.n_samples, seed=self.config.seed * 3 + 99)
        metrics = {
            "w2": float(wasserstein(res.x, test, p=2)),
            "mmd": float(mmd(res.x, test)),
            "nfe": res.nfe,
            # references: the source distribution (an untrained model) and a fresh data draw (the floor)
            "w2_source_baseline": float(wasserstein(noise, test, p=2)),
            "w2_data_floor": float(wasserstein(fresh, test, p=2)),
        }
        if ec.plot:
            _plot(res, test, Path(run_dir) / f"samples.{ec.plot_format}", self.data_cfg.dataset, metrics, ec.trajectories)
        return metrics


def _plot(res, test, path: Path, title: str, metrics: Dict[str, float], n_traj: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5), sharex=True, sharey=True)
    axes[0].scatter(test[:, 0], test[:, 1], s=2, alpha=0.5, color="tab:gray")
    axes[0].set_title(f"held-out data ({title})")
    x = res.x.detach().cpu()
    axes[1].scatter(x[:, 0], x[:, 1], s=2, alpha=0.5, color="tab:blue")
    if res.trajectory is not None and n_traj:
        tr = res.trajectory[:, :n_traj].detach().cpu()
        for i in range(tr.shape[1]):
            axes[1].plot(tr[:, i, 0], tr[:, i, 1], lw=0.5, alpha=0.4, color="tab:orange")
    axes[1].set_title(f"samples: W2={metrics['w2']:.3f}, NFE={metrics['nfe']}")
    for ax in axes:
        ax.set_aspect("equal")
        ax.set_xlim(-4.5, 4.5)
        ax.set_ylim(-4.5, 4.5)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
