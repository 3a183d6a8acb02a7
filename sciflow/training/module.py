"""The LightningModule that trains any :class:`sciflow.Flow` produced by a :class:`sciflow.task.Task`.

EMA weights use ``torch.optim.swa_utils.AveragedModel`` with an exponential moving average
(decay ``trainer.ema_decay``, warmed up over the first steps; 0 disables). Evaluation and sampling use the EMA copy when present.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from torch.optim.swa_utils import AveragedModel

from sciflow.config import TrainerConfig
from sciflow.flow import Flow


def warmup_ema(decay: float):
    """EMA update with the decay warmed up as min(decay, (1 + n) / (10 + n)) after n updates.

    A fixed decay of 0.999 keeps ~37% of the initial weights after 1000 steps, so short runs would be
    sampled with a nearly untrained model; the warm-up (as in Tarvainen & Valpola 2017's ramp-up and
    common diffusion codebases) lets the average follow the early weights closely.
    """

    @torch.no_grad()
    def update(averaged, current, num_averaged):
        n = int(num_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n))
        torch._foreach_lerp_(averaged, current, 1.0 - d)

    return update


class FlowModule(pl.LightningModule):
    """Optimises ``flow.loss`` on batches split by ``split_batch`` (a task's ``split_batch``).

    Args:
        flow: the model to train.
        trainer_cfg: optimiser, schedule and EMA settings.
        split_batch: callable mapping a collated batch to ``(x1, cond)``.
    """

    def __init__(self, flow: Flow, trainer_cfg: TrainerConfig, split_batch, seed: int = 0, loss_weight=None):
        super().__init__()
        self.seed = int(seed)
        self.loss_weight = loss_weight if loss_weight is not None else (lambda batch: None)
        self.flow = flow
        self.cfg = trainer_cfg
        self.split_batch = split_batch
        self.ema: Optional[AveragedModel] = None
        if trainer_cfg.ema_decay > 0:
            self.ema = AveragedModel(flow, multi_avg_fn=warmup_ema(trainer_cfg.ema_decay), use_buffers=True)
            self.ema.requires_grad_(False)

    def sampling_flow(self) -> Flow:
        """The flow to sample/evaluate with: the EMA copy if EMA is on, else the trained one."""
        return self.ema.module if self.ema is not None else self.flow

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        from sciflow.tree import first_leaf
        from sciflow.training.data import step_generator

        x1, cond = self.split_batch(batch)
        step = self.global_step
        # per-step generator: the draws of step k do not depend on what ran before, so resuming is exact
        g = step_generator(self.seed, step, self.global_rank, first_leaf(x1).device)
        weight = self.loss_weight(batch)
        loss = self.flow.loss(x1, cond=cond, generator=g, weight=weight)
        # a non-finite loss means diverged training; stop loudly (checked only when logging, so that
        # the host does not synchronise with the device every step)
        if step % self.cfg.log_every == 0 and not torch.isfinite(loss):
            raise FloatingPointError(
                f"training loss became {loss.item()} at step {step}; lower trainer.lr or set trainer.grad_clip"
            )
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False,
                 batch_size=self._batch_size(batch))
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x1, cond = self.split_batch(batch)
        flow = self.sampling_flow()
        loss = flow.loss(x1, cond=cond, weight=self.loss_weight(batch))
        self.log("val/loss", loss, prog_bar=True, on_epoch=True, sync_dist=True, batch_size=self._batch_size(batch))

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.flow)

    @staticmethod
    def _batch_size(batch: Any) -> int:
        from sciflow.tree import batch_size, first_leaf

        leaf = batch
        while isinstance(leaf, (list, tuple)):
            leaf = leaf[0]
        if isinstance(leaf, dict) and "x1" in leaf:
            leaf = leaf["x1"]
        return batch_size(leaf) if isinstance(leaf, (torch.Tensor, dict)) else 1

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.flow.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        warm, total, kind = self.cfg.warmup_steps, self.cfg.max_steps, self.cfg.lr_schedule

        def factor(step: int) -> float:
            if warm and step < warm:
                return (step + 1) / warm
            if kind == "cosine":
                progress = min(1.0, (step - warm) / max(1, total - warm))
                return 0.5 * (1 + math.cos(math.pi * progress))
            return 1.0

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
