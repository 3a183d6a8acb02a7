"""A progress bar counted in optimiser steps.

sciflow trains on a step-indexed, endless loader (one long "epoch"), so Lightning's default bar would read
"Epoch 0" with an unknown total; this one shows ``train steps`` out of ``trainer.max_steps`` and starts
at the resumed step after a restart.
"""
from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import TQDMProgressBar


class StepProgressBar(TQDMProgressBar):
    """:class:`TQDMProgressBar` whose training bar counts global steps up to ``max_steps``."""

    def on_train_epoch_start(self, trainer, *_: Any) -> None:
        # not calling the parent: it would draw an "Epoch 0" bar first
        bar = self.train_progress_bar
        bar.set_description("train steps", refresh=False)
        bar.total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        bar.initial = bar.n = trainer.global_step
        bar.refresh()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        bar = self.train_progress_bar
        if bar is None:
            return
        n = trainer.global_step
        if self._should_update(n, bar.total):
            bar.n = n
            bar.refresh()
            bar.set_postfix(self.get_metrics(trainer, pl_module))
