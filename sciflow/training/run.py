"""Run directories: train (or resume), load, evaluate and sample from a trained run.

A run directory holds::

    config.yaml            the resolved config (written before training starts)
    checkpoints/last.ckpt  Lightning checkpoint, written atomically (resume point)
    logs/                  CSV and TensorBoard logs
    metrics.json           evaluation results (``evaluate``)
    *.png                  plots written by the task's evaluation

Calling :func:`train` on a config whose run directory already has a checkpoint resumes from it.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import torch

from sciflow.config import ConfigError, RunConfig, dump_config, load_config
from sciflow.flow import Flow
from sciflow.registry import get, load_domain
from sciflow.task import Task

ConfigSource = Union[str, os.PathLike, Dict[str, Any], RunConfig]
CHECKPOINT = Path("checkpoints") / "last.ckpt"
#: config sections that may differ when resuming (they do not change what is being trained)
RESUMABLE_SECTIONS = ("trainer", "sample", "eval", "distill")


@dataclass
class TrainResult:
    """What :func:`train` returns: the run directory, the (EMA) flow and the evaluation metrics."""

    run_dir: Path
    flow: Flow
    task: Task
    metrics: Dict[str, Any] = field(default_factory=dict)
    train_seconds: float = 0.0


def resolve_config(source: ConfigSource, overrides: Sequence[str] = ()) -> RunConfig:
    """A :class:`RunConfig` from a YAML path, a run directory (its config.yaml), a dict or a config."""
    if isinstance(source, RunConfig):
        if overrides:
            return load_config(source.model_dump(), overrides)
        return source
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        cfg_path = Path(source) / "config.yaml"
        if not cfg_path.exists():
            raise ConfigError(f"'{source}' is a directory without config.yaml; give a config file or a run directory")
        cfg = load_config(cfg_path, overrides)
        if cfg.run_dir is None and Path(source).resolve() != cfg.resolved_run_dir().resolve():
            cfg = load_config(cfg.model_dump(), [f"run_dir={source}"])
        return cfg
    return load_config(source, overrides)


def build_task(cfg: RunConfig) -> Task:
    """Import the config's domain (if any) and instantiate its registered task."""
    if cfg.domain:
        load_domain(cfg.domain)
    task_cls = get("task", cfg.task)
    return task_cls(cfg)


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _check_resume_compatible(saved: RunConfig, new: RunConfig, run_dir: Path) -> None:
    a, b = saved.model_dump(mode="json"), new.model_dump(mode="json")
    diff = sorted(k for k in a if k not in RESUMABLE_SECTIONS + ("run_dir",) and a[k] != b.get(k))
    if diff:
        raise ConfigError(
            f"run directory '{run_dir}' holds a run with a different config (sections {diff} differ); "
            f"choose another name=... / run_dir=..., or delete the directory to start over"
        )


def _precision(cfg: RunConfig) -> str:
    if cfg.trainer.precision != "auto":
        return cfg.trainer.precision
    on_gpu = cfg.trainer.accelerator in ("gpu", "cuda") or (cfg.trainer.accelerator == "auto" and torch.cuda.is_available())
    return "bf16-mixed" if on_gpu else "32-true"


def _validate_first_batch(task: Task, flow: Flow, loader) -> None:
    """Shape/NaN checks on one batch before training starts, naming what is wrong."""
    x1, cond = task.split_batch(next(iter(loader)))
    if flow.space is not None and isinstance(x1, torch.Tensor):
        flow.space.check(x1, name="training data x1")
    if isinstance(cond, torch.Tensor) and cond.is_floating_point() and not torch.isfinite(cond).all():
        raise ValueError("training condition 'cond' contains NaN or inf values")


def make_train_loader(dataset, task: Optional[Task], batch_size: int, seed: int, placement, num_workers: int = 0):
    """Infinite, step-indexed training loader (see :mod:`sciflow.training.data`)."""
    from sciflow.training.data import StepBatchSampler, TensorBatches

    sampler = StepBatchSampler(len(dataset), batch_size, seed, placement)
    default_collate = task is None or type(task).collate is Task.collate
    if isinstance(dataset, torch.utils.data.TensorDataset) and default_collate:
        # whole-batch indexing: the sampler's index list goes to the dataset in one call
        return torch.utils.data.DataLoader(TensorBatches(dataset), sampler=sampler, batch_size=None,
                                           num_workers=num_workers, persistent_workers=num_workers > 0)
    collate = task.collate if task is not None else torch.utils.data.default_collate
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                                       num_workers=num_workers, persistent_workers=num_workers > 0)


def make_trainer(cfg: RunConfig, run_dir: Path, validate: bool):
    """The Lightning ``Trainer`` of a sciflow run (training and distillation share it).

    Step-based (``trainer.max_steps``, epochs unbounded), checkpoints every ``trainer.ckpt_every`` steps to
    ``run_dir/checkpoints`` (``last.ckpt`` plus, with ``validate``, the best ``val/loss``) written atomically,
    CSV and TensorBoard logs (one ``version_N`` folder per (re)start so a resume never overwrites earlier
    logs), the step progress bar, and validation every ``trainer.val_every`` steps when ``validate``.
    """
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from sciflow.training.checkpoint import AtomicCheckpointIO
    from sciflow.training.progress import StepProgressBar

    tc = cfg.trainer
    callbacks = [ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="step{step}", save_last=True,
                                 save_top_k=1 if validate else 0, monitor="val/loss" if validate else None,
                                 every_n_train_steps=tc.ckpt_every, auto_insert_metric_name=False)]
    if tc.progress:
        callbacks.append(StepProgressBar(refresh_rate=max(1, tc.log_every // 5)))
    return pl.Trainer(
        default_root_dir=str(run_dir), max_steps=tc.max_steps, max_epochs=-1,
        accelerator=tc.accelerator, devices=tc.devices, num_nodes=tc.num_nodes, strategy=tc.strategy,
        precision=_precision(cfg), gradient_clip_val=tc.grad_clip,
        logger=[CSVLogger(str(run_dir), name="logs/csv"), TensorBoardLogger(str(run_dir), name="logs/tensorboard")],
        callbacks=callbacks, plugins=[AtomicCheckpointIO()],
        enable_progress_bar=tc.progress, log_every_n_steps=tc.log_every,
        val_check_interval=tc.val_every if validate else None,
        check_val_every_n_epoch=None, limit_val_batches=None if validate else 0,
        num_sanity_val_steps=0, use_distributed_sampler=False, deterministic=tc.deterministic,
        enable_model_summary=False,
    )


def fit_and_save(trainer, module, run_dir: Path, train_loader, val_loader=None) -> float:
    """Fit ``module``, resuming from ``run_dir``'s last checkpoint if there is one, then save the final
    checkpoint (atomically, rank 0). Returns the wall-clock seconds of the fit."""
    ckpt = run_dir / CHECKPOINT
    t0 = time.perf_counter()
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(ckpt) if ckpt.exists() else None)
    seconds = time.perf_counter() - t0
    trainer.save_checkpoint(str(ckpt))
    return seconds


def train(source: ConfigSource, overrides: Sequence[str] = (), evaluate: bool = True) -> TrainResult:
    """Train (or resume) the run described by ``source`` and evaluate it.

    Args:
        source: YAML path, run directory, dict or :class:`RunConfig`.
        overrides: dotted ``key=value`` overrides.
        evaluate: run the task's evaluation after training and write ``metrics.json``.
    """
    import lightning.pytorch as pl

    from sciflow.training.module import FlowModule

    cfg = resolve_config(source, overrides)
    run_dir = cfg.resolved_run_dir()
    saved_cfg_path = run_dir / "config.yaml"
    if saved_cfg_path.exists():
        _check_resume_compatible(load_config(saved_cfg_path), cfg, run_dir)
    task = build_task(cfg)  # validates task sections before anything is written or trained

    if cfg.trainer.num_threads is not None:
        torch.set_num_threads(cfg.trainer.num_threads)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    flow = task.build_flow()
    module = FlowModule(flow, cfg.trainer, task.split_batch, seed=cfg.seed, loss_weight=task.loss_weight)

    tc = cfg.trainer
    trainer_holder: Dict[str, Any] = {}

    def placement():
        tr = trainer_holder.get("trainer")
        return (tr.global_step, tr.global_rank, tr.world_size) if tr is not None else (0, 0, 1)

    train_set = task.train_dataset()
    train_loader = make_train_loader(train_set, task, tc.batch_size, cfg.seed, placement, tc.num_workers)
    val_set = task.val_dataset()
    val_loader = (
        torch.utils.data.DataLoader(val_set, batch_size=tc.batch_size, shuffle=False, collate_fn=task.collate,
                                    num_workers=tc.num_workers)
        if val_set is not None and len(val_set) > 0 else None
    )
    _validate_first_batch(task, flow, torch.utils.data.DataLoader(train_set, batch_size=min(tc.batch_size, len(train_set)),
                                                                  collate_fn=task.collate))

    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, saved_cfg_path)
    trainer = make_trainer(cfg, run_dir, validate=val_loader is not None)
    trainer_holder["trainer"] = trainer
    seconds = fit_and_save(trainer, module, run_dir, train_loader, val_loader)

    eval_flow = module.sampling_flow().eval()
    metrics: Dict[str, Any] = {}
    if evaluate and trainer.is_global_zero:
        metrics = evaluate_flow(task, eval_flow, run_dir, extra={"train_seconds": seconds, "steps": trainer.global_step,
                                                                 "world_size": trainer.world_size})
    return TrainResult(run_dir=run_dir, flow=eval_flow, task=task, metrics=metrics, train_seconds=seconds)


def evaluate_flow(task: Task, flow: Flow, run_dir: Path, extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Run the task's evaluation with a fixed seed and write ``run_dir/metrics.json`` atomically."""
    torch.manual_seed(task.config.seed)
    with torch.no_grad():
        metrics = dict(task.evaluate(flow, Path(run_dir)))
    if extra:
        metrics.update(extra)
    _atomic_write_text(Path(run_dir) / "metrics.json", json.dumps(metrics, indent=2, default=float))
    return metrics


def completed_metrics(cfg: RunConfig, steps_key: str = "steps") -> Optional[Dict[str, Any]]:
    """The stored ``metrics.json`` of ``cfg``'s run directory if that run is finished, else None.

    Finished means: the saved ``config.yaml`` equals ``cfg`` in every section and ``metrics[steps_key]``
    equals ``cfg.trainer.max_steps``. Benchmark runners use it to resume a suite without re-training or
    re-evaluating finished folds. A code change is invisible to this check, so callers make it opt-in.
    """
    run_dir = cfg.resolved_run_dir()
    saved, stored = run_dir / "config.yaml", run_dir / "metrics.json"
    if not (saved.exists() and stored.exists()):
        return None
    if load_config(saved).model_dump(mode="json") != cfg.model_dump(mode="json"):
        return None
    metrics = json.loads(stored.read_text())
    return metrics if metrics.get(steps_key) == cfg.trainer.max_steps else None


def load_run(run_dir: Union[str, os.PathLike], ema: bool = True, map_location: Any = "cpu",
             overrides: Sequence[str] = ()):
    """Rebuild the task and the trained flow of a run directory (the task with ``overrides`` of its config,
    which must leave the model's sections alone so that the checkpoint still fits).

    Returns:
        ``(task, flow)``; ``flow`` holds the EMA weights when the run used EMA and ``ema`` is True.
    """
    from sciflow.training.module import FlowModule

    run_dir = Path(run_dir)
    cfg = resolve_config(run_dir, overrides)
    ckpt = run_dir / CHECKPOINT
    if not ckpt.exists():
        raise FileNotFoundError(f"run directory '{run_dir}' has no checkpoint at {CHECKPOINT}; train it first")
    task = build_task(cfg)
    module = FlowModule(task.build_flow(), cfg.trainer, task.split_batch, seed=cfg.seed, loss_weight=task.loss_weight)
    state = torch.load(ckpt, map_location=map_location, weights_only=False)
    module.load_state_dict(state["state_dict"])
    flow = module.sampling_flow() if ema else module.flow
    return task, flow.eval()


#: config sections an evaluation may override without changing what the checkpoint holds
EVAL_OVERRIDE_SECTIONS = ("eval", "sample")


def evaluate_run(run_dir: Union[str, os.PathLike], overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Evaluate a trained run directory (``sciflow evaluate``).

    Without overrides the metrics go to ``metrics.json`` (and the task's plots next to it). Overrides of the
    ``eval`` and ``sample`` sections (e.g. a test-time shift or another sampler) evaluate the same weights
    differently; their metrics and plots go to ``RUN_DIR/eval/<overrides>/`` instead, so the run's own
    ``metrics.json`` and plots are never replaced.
    """
    bad = [o for o in overrides if o.split("=", 1)[0].split(".", 1)[0] not in EVAL_OVERRIDE_SECTIONS]
    if bad:
        raise ConfigError(f"evaluate overrides {bad}: only the sections {list(EVAL_OVERRIDE_SECTIONS)} may change "
                          f"at evaluation (the others define the trained model)")
    task, flow = load_run(run_dir, overrides=overrides)
    return evaluate_flow(task, flow, evaluation_dir(run_dir, overrides))


def evaluation_dir(run_dir: Union[str, os.PathLike], overrides: Sequence[str] = ()) -> Path:
    """Where :func:`evaluate_run` writes: ``run_dir`` itself, or ``run_dir/eval/<overrides>`` with overrides
    (characters other than letters, digits and ``.-=`` replaced by ``-``, overrides joined by ``_``), created
    if missing because tasks write their plots there before the metrics."""
    if not overrides:
        return Path(run_dir)
    name = "_".join("".join(c if c.isalnum() or c in ".-=" else "-" for c in o) for o in overrides)
    out = Path(run_dir) / "eval" / name
    out.mkdir(parents=True, exist_ok=True)
    return out


def sample_run(run_dir: Union[str, os.PathLike], n: int, out: Union[str, os.PathLike], seed: int = 0) -> Path:
    """Draw ``n`` samples from a trained run and write them with the task's writer (``sciflow sample``)."""
    task, flow = load_run(run_dir)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return task.save_samples(flow, n, Path(out), generator=g)
