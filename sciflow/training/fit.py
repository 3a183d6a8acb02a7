"""``fit``: train a :class:`sciflow.Flow` on in-memory tensors from Python, without a config file.

For pipelines that already hold their data::

    flow = sciflow.Flow(sciflow.nn.MLP(2), space=sciflow.spaces.Euclidean(2))
    flow = sciflow.training.fit(flow, x1, max_steps=2000)       # returns the EMA flow

Uses the same Lightning module as ``sciflow train`` (EMA, gradient clipping, schedules, per-step seeded
randomness); checkpoints are written only when ``run_dir`` is given.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Optional, Union

import torch

from sciflow.config import TrainerConfig
from sciflow.flow import Flow


def _split(batch):
    return (batch[0], None) if len(batch) == 1 else (batch[0], batch[1])


def fit(flow: Flow, x1: torch.Tensor, cond: Optional[torch.Tensor] = None, *, max_steps: int = 2000,
        batch_size: int = 256, lr: float = 1e-3, seed: int = 0, run_dir: Optional[Union[str, Path]] = None,
        progress: bool = False, **trainer_options: Any) -> Flow:
    """Train ``flow`` on data ``x1`` (N, *event_shape) with optional conditions ``cond`` (N, ...).

    Args:
        max_steps, batch_size, lr, seed: optimisation settings.
        run_dir: where to write checkpoints and logs (nothing is written when ``None``).
        trainer_options: any other :class:`sciflow.config.TrainerConfig` field (ema_decay, grad_clip,
            lr_schedule, accelerator, devices, precision, ...).

    Returns:
        The flow to sample with: the EMA copy when ``ema_decay > 0`` (default 0.999), in eval mode.
    """
    import lightning.pytorch as pl

    # a library call inside someone's pipeline: keep Lightning's start-up banner (devices, tips) quiet
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)

    from sciflow.training.checkpoint import AtomicCheckpointIO
    from sciflow.training.module import FlowModule
    from sciflow.training.run import make_train_loader

    if not isinstance(x1, torch.Tensor):
        raise TypeError(f"x1 must be a torch.Tensor, got {type(x1).__name__}")
    if cond is not None and (not isinstance(cond, torch.Tensor) or cond.shape[0] != x1.shape[0]):
        raise ValueError(f"cond must be a tensor with the same first dimension as x1 ({x1.shape[0]})")
    if flow.space is not None:
        flow.space.check(x1, name="x1")
    precision = trainer_options.pop("precision", "32-true")
    cfg = TrainerConfig(max_steps=max_steps, batch_size=batch_size, lr=lr, progress=progress,
                        precision=precision, **trainer_options)
    pl.seed_everything(seed, workers=True, verbose=False)
    data = torch.utils.data.TensorDataset(*([x1] if cond is None else [x1, cond]))
    holder = {}

    def placement():
        tr = holder.get("trainer")
        return (tr.global_step, tr.global_rank, tr.world_size) if tr is not None else (0, 0, 1)

    loader = make_train_loader(data, None, batch_size, seed, placement)
    module = FlowModule(flow, cfg, _split, seed=seed)
    trainer = pl.Trainer(
        max_steps=max_steps, max_epochs=-1, accelerator=cfg.accelerator, devices=cfg.devices, strategy=cfg.strategy,
        precision=precision, gradient_clip_val=cfg.grad_clip, logger=False if run_dir is None else True,
        default_root_dir=str(run_dir) if run_dir is not None else None, enable_checkpointing=run_dir is not None,
        plugins=[AtomicCheckpointIO()], enable_progress_bar=progress, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, use_distributed_sampler=False, log_every_n_steps=cfg.log_every,
    )
    holder["trainer"] = trainer
    with warnings.catch_warnings():
        # fit() trains without validation by design
        warnings.filterwarnings("ignore", message=".*validation_step.*val_dataloader.*")
        trainer.fit(module, loader)
    return module.sampling_flow().eval()
