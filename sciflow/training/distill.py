"""``sciflow distill RUN_DIR``: distil a trained run into a one-step student by conditional IMLE.

The student run lives in ``RUN_DIR/distill`` (override with ``run_dir=...``) and is an ordinary run
directory: its ``config.yaml`` is the teacher's with ``sample: {sampler: euler, steps: distill.student_steps}``
(1 by default) and the ``distill`` section's optimiser settings in ``trainer``, so ``sciflow evaluate``/``sample`` and
:func:`~sciflow.training.run.load_run` work on it unchanged. Checkpoints are atomic and an interrupted
distillation resumes from ``checkpoints/last.ckpt``. See :mod:`sciflow.distill.imle` for the objective.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import torch

from sciflow.config import RunConfig, dump_config, load_config
from sciflow.flow import Flow
from sciflow.training.module import FlowModule
from sciflow.training.run import (TrainResult, _check_resume_compatible, build_task, evaluate_flow, fit_and_save,
                                  load_run, make_train_loader, make_trainer, resolve_config)


class IMLEModule(FlowModule):
    """Trains a student flow's one-step (or ``student_steps``-step) generator by conditional IMLE.

    Args:
        student: the flow whose single Euler step is trained.
        teacher: the trained flow; frozen and kept out of the checkpoint (it is rebuilt from its run),
            so the checkpoint has exactly the keys of a :class:`FlowModule`.
        teacher_task: draws the targets (:meth:`sciflow.task.Task.teacher_samples`).
        trainer_cfg, split_batch, seed, loss_weight: as in :class:`FlowModule`.
        teacher_samples, candidates: S teacher targets and M student draws per condition.
        targets: ``teacher`` (S teacher draws), ``data`` (the example itself: best-of-M training) or
            ``both`` (S + 1 targets).
        match_dims: leading event dimensions matched independently (see :func:`sciflow.distill.imle_loss`).
        student_steps: Euler steps of the student's sampler, trained through (1 = one-step student).
        distance: ``"squared"`` or ``"task"``: the task's ``imle_distance(targets, candidates, weight)`` (see
            :func:`sciflow.distill.imle_loss`), e.g. the error the task evaluates.
        distance_task: the task whose ``imle_distance`` is used (default ``teacher_task``); :func:`distill`
            passes the student's task so that overrides of its settings take effect.
        anneal_temperature, anneal_steps: annealed winner-takes-all, the softmin temperature starts at
            ``anneal_temperature`` and decays linearly to 0 at step ``anneal_steps``
            (:func:`sciflow.distill.linear_annealing`); 0 = hard winner-takes-all throughout.
    """

    def __init__(self, student: Flow, teacher: Flow, teacher_task, trainer_cfg, split_batch, seed: int = 0,
                 loss_weight=None, teacher_samples: int = 20, candidates: int = 20, targets: str = "teacher",
                 match_dims: int = 0, student_steps: int = 1, distance: str = "squared", distance_task=None,
                 anneal_temperature: float = 0.0, anneal_steps: int = 1):
        super().__init__(student, trainer_cfg, split_batch, seed=seed, loss_weight=loss_weight)
        teacher.eval().requires_grad_(False)
        object.__setattr__(self, "_teacher", teacher)  # not a submodule: stays out of state_dict
        self.teacher_task = teacher_task
        if targets not in ("teacher", "data", "both"):
            raise ValueError(f"targets must be teacher, data or both, got {targets!r}")
        self.n_targets, self.n_candidates, self.targets = int(teacher_samples), int(candidates), targets
        self.match_dims, self.student_steps = int(match_dims), int(student_steps)
        if distance not in ("squared", "task"):
            raise ValueError(f"distance must be squared or task, got {distance!r}")
        distance_task = teacher_task if distance_task is None else distance_task
        if distance == "task" and not callable(getattr(distance_task, "imle_distance", None)):
            raise ValueError(f"distill.distance=task, but task {type(distance_task).__name__} defines no "
                             f"imle_distance(targets, candidates, weight); use distill.distance=squared")
        self.distance = distance_task.imle_distance if distance == "task" else None
        self.anneal_temperature, self.anneal_steps = float(anneal_temperature), int(anneal_steps)

    def on_fit_start(self) -> None:
        self._teacher.to(self.device)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        from sciflow.distill import imle_loss, linear_annealing
        from sciflow.training.data import step_generator
        from sciflow.tree import first_leaf

        x1, cond = self.split_batch(batch)
        step = self.global_step
        g = step_generator(self.seed, step, self.global_rank, first_leaf(x1).device)
        parts = []
        if self.targets in ("teacher", "both"):
            with torch.no_grad():
                parts.append(self.teacher_task.teacher_samples(self._teacher, cond, self.n_targets, generator=g))
        if self.targets in ("data", "both"):
            parts.append(x1.unsqueeze(1) if cond is not None else x1.unsqueeze(0))  # (G, S, *event)
        targets = torch.cat(parts, dim=1)
        weight = self.loss_weight(batch)
        if weight is not None:
            weight = weight.unsqueeze(1)  # (G, 1, *event): one weight for all targets of a condition
        loss = imle_loss(self.flow, targets, cond, candidates=self.n_candidates, weight=weight, generator=g,
                         match_dims=self.match_dims, steps=self.student_steps, distance=self.distance,
                         temperature=linear_annealing(step, self.anneal_temperature, self.anneal_steps))
        if step % self.cfg.log_every == 0 and not torch.isfinite(loss):
            raise FloatingPointError(f"IMLE loss became {loss.item()} at step {step}; lower distill.lr")
        self.log("distill/imle", loss, prog_bar=True, on_step=True, on_epoch=False,
                 batch_size=self._batch_size(batch))
        return loss


def distill_config(teacher_dir: Union[str, os.PathLike], overrides: Sequence[str] = ()) -> RunConfig:
    """The student run's config: the teacher's with ``overrides``, run directory ``teacher_dir/distill`` by
    default, and the trainer and sampler taken from the ``distill`` section (one-step Euler by default)."""
    base = resolve_config(teacher_dir).model_dump(mode="json")
    base["run_dir"] = str(Path(teacher_dir) / "distill")
    cfg = load_config(base, overrides)
    d = cfg.distill
    trainer_cfg = cfg.trainer.model_copy(update={
        "max_steps": d.max_steps, "lr": d.lr, "warmup_steps": d.warmup_steps, "lr_schedule": d.lr_schedule,
        "ema_decay": d.ema_decay, "batch_size": d.batch_size or cfg.trainer.batch_size, "ckpt_every": d.ckpt_every})
    return cfg.model_copy(update={"trainer": trainer_cfg,
                                  "sample": cfg.sample.model_copy(update={"sampler": "euler", "steps": d.student_steps})})


def _init_student(student, teacher) -> None:
    """Copy the teacher's weights into the student. The student may add modules the teacher lacks (e.g. a
    layer that only makes sense for its fixed codebook); those keep their own initialisation and are named on
    stdout. A teacher weight the student has no place for is an error, never silently dropped."""
    result = student.load_state_dict(copy.deepcopy(teacher.state_dict()), strict=False)
    if result.unexpected_keys:
        raise ValueError(f"the teacher has weights the student lacks: {result.unexpected_keys[:5]} "
                         f"({len(result.unexpected_keys)} in all); the student's model config must extend the teacher's")
    if result.missing_keys:
        print(f"distill: {len(result.missing_keys)} student tensors are not in the teacher and keep their own "
              f"initialisation: {sorted({k.rsplit('.', 2)[0] for k in result.missing_keys})}")


def distill(teacher_dir: Union[str, os.PathLike], overrides: Sequence[str] = (), evaluate: bool = True) -> TrainResult:
    """Distil the trained run ``teacher_dir`` into a one-step student (see the module docstring).

    Args:
        teacher_dir: a trained run directory.
        overrides: dotted overrides applied to the teacher's config, e.g. ``distill.max_steps=500``,
            ``eval.noise_scale=1`` or ``run_dir=...``.
        evaluate: run the task's evaluation with the student (1 step) and write its ``metrics.json``.
    """
    import lightning.pytorch as pl

    teacher_dir = Path(teacher_dir)
    teacher_task, teacher = load_run(teacher_dir)
    cfg = distill_config(teacher_dir, overrides)
    d, trainer_cfg = cfg.distill, cfg.trainer
    # the teacher task draws the targets with the distill section given here (e.g. teacher_steps)
    teacher_task.config = teacher_task.config.model_copy(update={"distill": d})
    run_dir = cfg.resolved_run_dir()
    saved = run_dir / "config.yaml"
    if saved.exists():
        _check_resume_compatible(load_config(saved), cfg, run_dir)
    task = build_task(cfg)
    if cfg.trainer.num_threads is not None:
        torch.set_num_threads(cfg.trainer.num_threads)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    student = task.build_flow()
    if d.init_from_teacher:
        _init_student(student, teacher)
    module = IMLEModule(student, teacher, teacher_task, trainer_cfg, task.split_batch, seed=cfg.seed,
                        loss_weight=task.loss_weight, teacher_samples=d.teacher_samples, candidates=d.candidates,
                        targets=d.targets, match_dims=d.match_dims, student_steps=d.student_steps,
                        distance=d.distance, distance_task=task, anneal_temperature=d.anneal_temperature,
                        anneal_steps=d.anneal_steps or max(1, d.max_steps // 2))

    holder: Dict[str, Any] = {}

    def placement():
        tr = holder.get("trainer")
        return (tr.global_step, tr.global_rank, tr.world_size) if tr is not None else (0, 0, 1)

    loader = make_train_loader(task.train_dataset(), task, trainer_cfg.batch_size, cfg.seed, placement,
                               trainer_cfg.num_workers)
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, saved)
    trainer = make_trainer(cfg, run_dir, validate=False)
    holder["trainer"] = trainer
    seconds = fit_and_save(trainer, module, run_dir, loader)
    flow = module.sampling_flow().eval()
    metrics: Dict[str, Any] = {}
    if evaluate and trainer.is_global_zero:
        metrics = evaluate_flow(task, flow, run_dir, extra={"distill_seconds": seconds, "distill_steps": trainer.global_step})
    return TrainResult(run_dir=run_dir, flow=flow, task=task, metrics=metrics, train_seconds=seconds)
