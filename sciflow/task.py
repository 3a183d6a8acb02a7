"""``Task``: what a domain (or the built-in toy problems) supplies to the trainer and the CLI.

A task is registered by name (``@register("task", "toy2d")``) and built from the resolved run config.
It owns its data, builds the :class:`~sciflow.Flow` from the ``model`` and ``flow`` config sections,
and evaluates a trained flow. The training loop itself is :mod:`sciflow.training` (Lightning); tasks
never write their own loop.

Config sections a task receives (see :mod:`sciflow.config`):

* ``data``  : dict validated by ``Task.DataConfig`` (a pydantic model; unknown keys are errors);
* ``model`` : dict, ``{"name": <registered model>, **kwargs}`` or validated by ``Task.ModelConfig``;
* ``flow``  : :class:`sciflow.config.FlowConfig` (path, coupling, prediction, time sampler, ...);
* ``eval``  : dict validated by ``Task.EvalConfig``;
* ``sample``: :class:`sciflow.config.SampleConfig` (sampler, steps, n, guidance scale).
"""
from __future__ import annotations

from pathlib import Path as FsPath
from typing import Any, Dict, Optional, Tuple

import torch
from pydantic import BaseModel, ConfigDict

from sciflow.flow import Flow


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EmptyConfig(StrictModel):
    """A section with no options."""


class Task:
    """Base class for trainable problems.

    Subclasses set ``DataConfig``/``ModelConfig``/``EvalConfig`` (pydantic models deriving from
    :class:`StrictModel`) and implement :meth:`build_flow`, :meth:`train_dataset` and :meth:`evaluate`.
    """

    DataConfig: type = EmptyConfig
    ModelConfig: Optional[type] = None  # None: model section is passed through to the model registry
    EvalConfig: type = EmptyConfig

    def __init__(self, config):
        from sciflow.config import validate_section

        self.config = config  # sciflow.config.RunConfig
        self.data_cfg = validate_section(self.DataConfig, config.data, "data")
        self.eval_cfg = validate_section(self.EvalConfig, config.eval, "eval")
        self.model_cfg = (
            validate_section(self.ModelConfig, config.model, "model") if self.ModelConfig is not None
            else dict(config.model)
        )

    # -- data ------------------------------------------------------------------------------------
    def train_dataset(self) -> torch.utils.data.Dataset:
        """Training examples; each item is ``x1``, ``(x1, cond)`` or ``{"x1": ..., "cond": ...}``."""
        raise NotImplementedError

    def val_dataset(self) -> Optional[torch.utils.data.Dataset]:
        """Validation examples (same format) or ``None``."""
        return None

    def collate(self, items):
        """Collate items into a batch; default torch collation."""
        return torch.utils.data.default_collate(items)

    @staticmethod
    def split_batch(batch: Any) -> Tuple[Any, Any]:
        """Turn a collated batch into ``(x1, cond)``."""
        if isinstance(batch, dict) and "x1" in batch:
            return batch["x1"], batch.get("cond")
        if isinstance(batch, (tuple, list)):
            if len(batch) == 1:
                return batch[0], None
            if len(batch) == 2:
                return batch[0], batch[1]
            raise ValueError(f"a batch tuple must be (x1,) or (x1, cond); got {len(batch)} elements")
        return batch, None

    @staticmethod
    def loss_weight(batch: Any) -> Any:
        """Optional per-element loss weights of a collated batch (``batch["weight"]`` for dict batches),
        broadcastable to ``x1``; e.g. a mask so padded elements do not dilute the loss. Default ``None``."""
        if isinstance(batch, dict):
            return batch.get("weight")
        return None

    # -- model -----------------------------------------------------------------------------------
    def build_flow(self) -> Flow:
        """The flow to train, built from ``self.config.model`` and ``self.config.flow``."""
        raise NotImplementedError

    def build_model(self, **fixed: Any) -> torch.nn.Module:
        """Build the registered network named in the ``model`` section; ``fixed`` supplies arguments the
        task knows (e.g. ``shape``) and may not be overridden by the config."""
        from sciflow.registry import build

        spec = dict(self.config.model)
        name = spec.pop("name", None)
        if name is None:
            raise ValueError("config section 'model' needs a 'name' (a registered model, e.g. mlp)")
        clash = sorted(set(spec) & set(fixed))
        if clash:
            raise ValueError(f"model keys {clash} are set by task '{self.config.task}' and cannot be configured")
        return build("model", name, **spec, **fixed)

    def make_flow(self, model: torch.nn.Module, space=None, path=None, **kwargs: Any) -> Flow:
        """Assemble a :class:`Flow` from the ``flow`` config section.

        ``path`` overrides the configured path (pass an object); ``kwargs`` go to :class:`Flow`
        (e.g. ``source=`` for data-dependent sources) and override the config's flow options.
        """
        from sciflow.flow import _accepts
        from sciflow.registry import build, get

        fc = self.config.flow
        if path is None:
            spec = {"name": fc.path} if isinstance(fc.path, str) else dict(fc.path)
            name = spec.pop("name")
            if "scheduler" not in spec and fc.scheduler is not None and _accepts(get("path", name), "scheduler"):
                spec["scheduler"] = fc.scheduler
            path = build("path", name, **spec)
        options = dict(coupling=fc.coupling, time_sampler=fc.time_sampler, prediction=fc.prediction,
                       cond_dropout=fc.cond_dropout, t_eps=fc.t_eps)
        options.update(kwargs)  # the task knows better than the config defaults (e.g. t_eps for its path)
        return Flow(model, space=space, path=path, **options)

    # -- evaluation ------------------------------------------------------------------------------
    def evaluate(self, flow: Flow, run_dir: FsPath) -> Dict[str, float]:
        """Metrics of a trained flow (written to ``run_dir/metrics.json`` by the caller); may save plots."""
        return {}

    def teacher_samples(self, flow: Flow, cond: Any, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n`` samples of ``flow`` for each of the G conditions in ``cond``: ``(G, n, *event_shape)``.

        Used as IMLE targets by ``sciflow distill``; the default integrates with the ``sample`` section
        (``distill.teacher_steps`` overrides the step count). ``cond=None`` means one unconditional group.
        Tasks override this when their evaluation samples differently (e.g. a sampling temperature).
        """
        from sciflow.distill import repeat_groups
        from sciflow.tree import batch_size

        s, d = self.config.sample, self.config.distill
        g = 1 if cond is None else batch_size(cond)
        res = flow.sample(g * n, cond=repeat_groups(cond, n), sampler=s.sampler, steps=d.teacher_steps or s.steps,
                          guidance_scale=s.guidance_scale, generator=generator)
        return res.x.view(g, n, *res.x.shape[1:])

    def save_samples(self, flow: Flow, n: int, out: FsPath, generator: Optional[torch.Generator] = None) -> FsPath:
        """Draw ``n`` samples with the config's sample settings and write them to ``out`` (default .pt)."""
        s = self.config.sample
        res = flow.sample(n, sampler=s.sampler, steps=s.steps, guidance_scale=s.guidance_scale, generator=generator)
        out = FsPath(out)
        torch.save({"x": res.x, "nfe": res.nfe}, out)
        return out
