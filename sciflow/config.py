"""Typed run configs loaded from YAML with dotted command-line overrides.

A run config has fixed top-level sections (validated here) and task-owned sections ``data``, ``model``
and ``eval`` (validated by the task's own pydantic models, see :class:`sciflow.task.Task`)::

    name: moons                 # run name; the run directory defaults to runs/<name>
    task: toy2d                 # a registered task
    domain: null                # domain package to import first, e.g. trajectories
    seed: 0
    data:  {dataset: moons}
    model: {name: mlp, hidden: 256, depth: 3}
    flow:  {path: affine, scheduler: cond_ot, coupling: independent, prediction: velocity}
    trainer: {max_steps: 2000, batch_size: 256, lr: 1e-3}
    sample: {sampler: midpoint, steps: 50, n: 2048}
    eval: {}

Overrides use dotted keys: ``trainer.max_steps=500 flow.coupling=exact_ot model.hidden=128``; values are
parsed as YAML scalars. Unknown keys and ill-typed values raise :class:`ConfigError` naming the key and
what is allowed, before anything is trained.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Sequence, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ConfigError(ValueError):
    """A config key is unknown, missing or has a value of the wrong type."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


Spec = Union[str, Dict[str, Any]]


class FlowConfig(_Strict):
    """How the flow is assembled: path, scheduler, coupling, parameterisation, time sampler."""

    path: Spec = "affine"
    scheduler: Optional[Spec] = "cond_ot"
    coupling: Spec = "independent"
    prediction: str = "velocity"
    time_sampler: Spec = "uniform"
    cond_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    t_eps: Optional[float] = Field(None, ge=0.0, lt=0.5)


class TrainerConfig(_Strict):
    """Optimisation and Lightning settings."""

    max_steps: int = Field(2000, gt=0)
    batch_size: int = Field(256, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    grad_clip: Optional[float] = Field(1.0, gt=0)
    ema_decay: float = Field(0.999, ge=0.0, lt=1.0)
    precision: str = "auto"
    accelerator: str = "auto"
    devices: Union[int, str] = 1
    num_nodes: int = Field(1, gt=0)
    strategy: str = "auto"
    num_workers: int = Field(0, ge=0)
    num_threads: Optional[int] = Field(None, gt=0)  # torch intra-op threads; None keeps torch's default
    log_every: int = Field(50, gt=0)
    val_every: int = Field(500, gt=0)
    ckpt_every: int = Field(500, gt=0)
    progress: bool = True
    deterministic: bool = False


class SampleConfig(_Strict):
    """Sampling settings used by evaluation and ``sciflow sample``."""

    sampler: Spec = "euler"
    steps: Optional[int] = Field(100, gt=0)
    n: int = Field(2048, gt=0)
    guidance_scale: float = 1.0


class DistillConfig(_Strict):
    """One-step distillation of a trained run (``sciflow distill RUN_DIR``), see :mod:`sciflow.distill`.

    The student is a copy of the teacher flow (initialised from its weights unless ``init_from_teacher``
    is false) trained by conditional IMLE to reproduce ``teacher_samples`` teacher draws per condition
    (``targets: teacher``), the training example itself (``data``: the loss is then the best-of-M error
    of M = ``candidates`` draws) or both, each with the nearest of ``candidates`` one-step draws; the
    trainer settings below replace the teacher's.
    """

    method: Literal["imle"] = "imle"
    max_steps: int = Field(1000, gt=0)
    batch_size: Optional[int] = Field(None, gt=0)  # conditions per step; None = trainer.batch_size
    lr: float = Field(2e-4, gt=0)
    warmup_steps: int = Field(0, ge=0)
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    ema_decay: float = Field(0.999, ge=0.0, lt=1.0)
    targets: Literal["teacher", "data", "both"] = "teacher"  # IMLE targets: teacher draws, the batch's data, or both
    teacher_samples: int = Field(20, gt=0)
    candidates: int = Field(20, gt=0)
    match_dims: int = Field(0, ge=0)  # leading event dims matched independently; 1 = each agent on its own
    student_steps: int = Field(1, gt=0)  # Euler steps of the student, trained through (1 = one-step student)
    teacher_steps: Optional[int] = Field(None, gt=0)  # None = sample.steps of the teacher run
    init_from_teacher: bool = True
    ckpt_every: int = Field(250, gt=0)
    # IMLE distance: "squared" (mean squared error) or "task" (the task's ``imle_distance``, e.g. its metric)
    distance: Literal["squared", "task"] = "squared"
    # annealed winner-takes-all: softmin temperature (units of the distance) at step 0, decaying linearly to 0
    # (hard winner-takes-all) at step anneal_steps (None = max_steps // 2); 0 = hard from the start
    anneal_temperature: float = Field(0.0, ge=0.0)
    anneal_steps: Optional[int] = Field(None, gt=0)


class RunConfig(_Strict):
    """The whole resolved configuration of a run."""

    name: str = "run"
    task: str
    domain: Optional[str] = None
    seed: int = 0
    run_dir: Optional[str] = None
    data: Dict[str, Any] = Field(default_factory=dict)
    model: Dict[str, Any] = Field(default_factory=dict)
    flow: FlowConfig = Field(default_factory=FlowConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    eval: Dict[str, Any] = Field(default_factory=dict)
    distill: DistillConfig = Field(default_factory=DistillConfig)

    @field_validator("name")
    @classmethod
    def _name_is_path_safe(cls, v: str) -> str:
        if not v or "/" in v or v.startswith("."):
            raise ValueError(f"name must be a plain folder name, got {v!r}")
        return v

    def resolved_run_dir(self) -> Path:
        return Path(self.run_dir) if self.run_dir else Path("runs") / self.name


def _section_model(model: type, loc) -> Optional[type]:
    """The pydantic model that owns the last element of ``loc`` (for listing allowed keys)."""
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def _describe_errors(err: ValidationError, prefix: str = "", model: Optional[type] = None) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in (prefix.split(".") if prefix else []) + list(e["loc"]))
        if e["type"] == "extra_forbidden":
            owner = _section_model(model, e["loc"]) if model is not None else None
            allowed = f" (allowed: {', '.join(allowed_keys(owner))})" if owner is not None else ""
            lines.append(f"unknown key '{key}'{allowed}")
        elif e["type"] == "missing":
            lines.append(f"missing required key '{key}'")
        else:
            lines.append(f"'{key}': {e['msg']} (got {e.get('input')!r})")
    return "; ".join(lines)


def allowed_keys(model: type) -> List[str]:
    return sorted(model.model_fields)


def validate_section(model: type, values: Dict[str, Any], section: str):
    """Validate a task-owned section with its pydantic model, raising :class:`ConfigError`."""
    try:
        return model(**(values or {}))
    except ValidationError as err:
        raise ConfigError(
            f"invalid config section '{section}': {_describe_errors(err, section, model)}. "
            f"Allowed keys in '{section}': {', '.join(allowed_keys(model)) or '(none)'}"
        ) from None


def parse_overrides(overrides: Sequence[str]) -> Dict[str, Any]:
    """Parse ``["a.b=1", "c=x"]`` into a nested dict with YAML-typed values."""
    out: Dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value (e.g. trainer.max_steps=500)")
        key, raw = item.split("=", 1)
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override '{item}' has an empty key part")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"override '{item}': the value after '=' is not valid YAML ({err.problem}); quote "
                              f"list items that contain '=' or brackets, e.g. 'overrides=[\"data.x=[a,b]\"]'") from err
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}' conflicts with another override of '{p}'")
        node[parts[-1]] = value
    return out


def deep_merge(base: Dict[str, Any], update: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_config(source: Union[str, Path, Dict[str, Any]], overrides: Sequence[str] = ()) -> RunConfig:
    """Load a YAML file (or a dict), apply dotted overrides and validate the fixed sections."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise ConfigError(f"config file '{path}' does not exist")
        raw = yaml.safe_load(path.read_text()) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"config file '{path}' must hold a mapping at the top level")
    else:
        raw = dict(source)
    raw = deep_merge(raw, parse_overrides(overrides))
    try:
        return RunConfig(**raw)
    except ValidationError as err:
        raise ConfigError(
            f"invalid config: {_describe_errors(err, model=RunConfig)}"
        ) from None


def dump_config(cfg: RunConfig, path: Union[str, Path]) -> None:
    """Write the resolved config as YAML, atomically (temp file + rename)."""
    import os
    import tempfile

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    os.replace(tmp, path)
