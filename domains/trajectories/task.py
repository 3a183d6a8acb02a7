"""The ``trajectories`` task: a conditional flow over all agents' futures of a scene.

State ``x1``: ``(B, N, pred_len, 2)`` future positions of the N (padded) agents of a scene, in metres,
relative to each agent's last observed position. Condition ``cond``: ``{"hist": (B, N, obs_len, 2),
"pos": (B, N, 2), "mask": (B, N)}`` (see :mod:`.data`).

Source (t = 0): a data-dependent prior, the constant-velocity extrapolation of every agent plus Gaussian
noise whose standard deviation grows linearly over the horizon, ``x0_j = cv_j + prior_std * (j / T) * eps``
(or zero-mean noise with ``prior: zero``); padded agents get exactly zero. The flow then only has to
transport the constant-velocity guess to the data (t = 1) instead of pure noise; the core
``Flow(source=...)`` hook carries it, the path/sampler/trainer are the core's.

Padding: padded agents have zero targets, zero source and the network zeroes its output for them, so they
contribute exactly nothing to the loss; :meth:`TrajectoryTask.loss_weight` passes the agent mask
``(B, N, 1, 1)`` as per-element loss weights, so each scene's loss is the mean over its real agents only
(sum(m * err^2) / sum(m)) instead of being diluted by the padded agent count of the batch.

K futures per agent are drawn in parallel by repeating every scene K times along the batch.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple

import torch
from pydantic import Field, field_validator, model_validator

from sciflow.distill import repeat_groups
from sciflow.flow import Flow
from sciflow.registry import register
from sciflow.task import StrictModel, Task
from sciflow.tree import tree_map

from .data import (SCENES, SceneWindows, TrajectoryDataset, collate_scenes, heading, load_split, rotate,
                   simulated_windows)
from .evaluate import (baseline_predictor, check_speed_bins, constant_velocity, evaluate_predictor,
                       final_position_clustering)
from .models import AgentTransformer

#: default ETH/UCY location: relative to the working directory (the repository root in this project)
DEFAULT_ROOT = "../shared/data/eth_ucy"


class TrajDataConfig(StrictModel):
    """``data`` section.

    ``source: simulator`` (default) simulates social-force scenes; ``source: eth_ucy`` reads the
    leave-one-out fold ``scene`` from ``root`` (``<root>/<scene>/{train,val,test}/*.txt``). A relative
    ``root`` is resolved against the working directory; the environment variable ``SCIFLOW_ETH_UCY``
    overrides the default when ``root`` is not given.
    """

    source: Literal["simulator", "eth_ucy"] = "simulator"
    root: Optional[str] = None
    scene: Optional[Literal["eth", "hotel", "univ", "zara1", "zara2"]] = None
    obs_len: int = Field(8, ge=2)
    pred_len: int = Field(12, ge=1)
    skip: int = Field(1, ge=1)
    min_agents: int = Field(1, ge=1)
    augment_rotation: bool = True
    max_agents: Optional[int] = Field(None, ge=1)
    augment_scale: Optional[Tuple[float, float]] = None
    augment_mirror: bool = False  # reflect scenes y -> -y with probability 1/2 (see TrajectoryDataset)
    # splits the model trains on; [train, val] refits on both once settings were chosen on val (the test
    # scene is never among them); the trainer's validation loss is then no longer held out
    train_splits: Tuple[Literal["train", "val"], ...] = ("train",)
    sim_scenes: int = Field(300, gt=0)
    sim_seed: int = 0

    def model_post_init(self, _context) -> None:
        if self.source == "eth_ucy" and self.scene is None:
            raise ValueError(f"data.scene is required when data.source is eth_ucy; choose one of {list(SCENES)}")
        if not self.train_splits or len(set(self.train_splits)) != len(self.train_splits):
            raise ValueError(f"data.train_splits must list 'train' and/or 'val' once each, got {list(self.train_splits)}")

    def resolved_root(self) -> Path:
        return Path(self.root if self.root is not None else os.environ.get("SCIFLOW_ETH_UCY", DEFAULT_ROOT))


class TrajModelConfig(StrictModel):
    """``model`` section: the :class:`~.models.AgentTransformer` and the flow's source prior."""

    name: Literal["agent_transformer"] = "agent_transformer"
    d_model: int = Field(128, gt=0)
    heads: int = Field(4, gt=0)
    depth: int = Field(3, gt=0)
    time_dim: int = Field(64, gt=0)
    scale: float = Field(2.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    canonical: bool = True
    interaction: Literal["distance", "relative"] = "distance"
    prior: Literal["constant_velocity", "zero"] = "constant_velocity"
    prior_std: float = Field(1.0, gt=0)
    # a fixed codebook of this many source latents instead of random noise: the multiple-choice student
    # (sciflow distill with targets=data, match_dims=1, candidates=prior_codes); None = random noise
    prior_codes: Optional[int] = Field(None, ge=1)
    # weight w of the final displacement in the multiple-choice distance ADE + w * FDE (distill.distance=task);
    # > 1 trades minADE for minFDE
    imle_fde_weight: float = Field(1.0, ge=0)
    # "sum": each agent trains the one code nearest by ADE + w * FDE; "separate": the code nearest by ADE learns
    # the ADE and the code nearest by FDE learns w * FDE, the loss then being minADE + w * minFDE as scored
    imle_match: Literal["sum", "separate"] = "sum"
    # with prior_codes: the student's futures of one agent attend to each other (AgentTransformer(modes=C))
    mode_attention: bool = False

    @model_validator(mode="after")
    def _modes_need_codes(self):
        if self.mode_attention and (self.prior_codes is None or self.prior_codes < 2):
            raise ValueError(f"model.mode_attention attends over the codes of model.prior_codes, which must then "
                             f"be >= 2 (got {self.prior_codes})")
        return self


class TrajEvalConfig(StrictModel):
    """``eval`` section: K samples per agent, which split, batch of scenes, baselines and plots.

    ``oversample`` > 1 draws ``oversample * k`` futures per agent and keeps K of them by final position
    clustering (Xu et al. 2022, see :func:`~.evaluate.final_position_clustering`; ``fpc_keep`` chooses the
    member nearest to each cluster centre or the cluster's mean trajectory); ``noise_scale``
    multiplies the source noise while sampling (a temperature; 1 = the trained model). Both are reported
    in the metrics (``oversample``, ``noise_scale``) so numbers are never quoted without them.

    ``speed_scale`` multiplies every coordinate of the evaluated windows (history, future, positions), so at
    the fixed frame rate every walker is that much faster (> 1) or slower (< 1): a synthetic speed shift of an
    in-distribution validation split, e.g. 0.6 for hotel-like slow walkers or 1.7 for eth's. Errors are in
    the scaled metres, so compare methods at the same ``speed_scale``; reported as ``speed_scale``.

    ``speed_bins`` (metres per step of each agent's mean observed speed, after ``speed_scale``) splits the
    model's minADE/minFDE by speed: ``minFDE_K/speed_<0.05`` (standing), ``.../speed_0.05-0.2``, ...
    """

    k: int = Field(20, gt=0)
    split: Literal["val", "test"] = "test"
    batch_size: int = Field(16, gt=0)
    collision_radius: float = Field(0.2, gt=0)
    max_scenes: Optional[int] = Field(None, gt=0)
    baselines: bool = True
    plot: bool = True
    plot_scenes: int = Field(4, ge=0)
    seed: int = 0
    oversample: int = Field(1, ge=1)
    noise_scale: float = Field(1.0, gt=0)
    fpc_keep: Literal["nearest", "mean"] = "nearest"
    speed_scale: float = Field(1.0, gt=0)
    # edges (m/step, mean observed speed) of the bins the model's minADE/minFDE are also reported in; [] = off
    speed_bins: List[float] = Field(default_factory=lambda: [0.05, 0.2, 0.5])

    @field_validator("speed_bins")
    @classmethod
    def _increasing_positive_edges(cls, v: List[float]) -> List[float]:
        return check_speed_bins(v)


class TrajectoryPrior:
    """Data-dependent source ``source(n, cond, device, dtype, generator) -> x0 (n, N, T, 2)``.

    ``x0 = m * (mean + std * (j / T) * eps)`` with ``mean`` the constant-velocity extrapolation
    (``kind="constant_velocity"``) or zero, eps ~ N(0, I), j = 1..T the future step and m the agent mask;
    ``temperature`` (from ``Flow.sample(temperature=...)``) multiplies the noise, never the mean.

    With ``codes = C`` eps is not drawn: row r of the batch uses code ``r % C`` of a fixed codebook of C
    standard-normal latents ``(C, T, 2)`` (seed ``code_seed``), given in each agent's heading frame (rotated
    by its heading, :func:`~.data.heading`) so that a code means the same manoeuvre for every agent. Rows
    come scene-major (C consecutive copies of a scene), so every scene sees all C codes once; n must be a
    multiple of C. This is the source of the multiple-choice student (see docs/trajectories.md).
    """

    def __init__(self, pred_len: int = 12, kind: str = "constant_velocity", std: float = 1.0,
                 codes: Optional[int] = None, code_seed: int = 0):
        if kind not in ("constant_velocity", "zero"):
            raise ValueError(f"prior must be constant_velocity or zero, got {kind!r}")
        if codes is not None and codes < 1:
            raise ValueError(f"codes must be >= 1 or None, got {codes}")
        self.pred_len, self.kind, self.std = int(pred_len), kind, float(std)
        self.codes = None if codes is None else int(codes)
        self.codebook = None
        if self.codes is not None:
            g = torch.Generator().manual_seed(int(code_seed))
            self.codebook = torch.randn((self.codes, self.pred_len, 2), generator=g)

    def __repr__(self) -> str:
        return f"TrajectoryPrior(kind={self.kind!r}, std={self.std}, codes={self.codes})"

    def __call__(self, n: int, cond=None, device=None, dtype=None, generator=None,
                 temperature: float = 1.0) -> torch.Tensor:
        if not isinstance(cond, dict) or "hist" not in cond or "mask" not in cond:
            raise ValueError("the trajectory prior needs cond={'hist': (n,N,H,2), 'mask': (n,N), ...}")
        hist, mask = cond["hist"], cond["mask"]
        if hist.shape[0] != n:
            raise ValueError(f"cond['hist'] has batch size {hist.shape[0]}, expected {n}")
        dtype = dtype or hist.dtype
        device = device or hist.device
        hist = hist.to(device=device, dtype=dtype)
        N, T = hist.shape[1], self.pred_len
        if self.codebook is None:
            eps = torch.randn((n, N, T, 2), device=device, dtype=dtype, generator=generator)
        else:
            if n % self.codes:
                raise ValueError(f"a prior with codes={self.codes} draws whole codebooks per scene: n must be a "
                                 f"multiple of {self.codes}, got n={n} (e.g. eval.k * eval.oversample)")
            book = self.codebook.to(device=device, dtype=dtype).repeat(n // self.codes, 1, 1)  # (n, T, 2)
            eps = rotate(book[:, None].expand(n, N, T, 2), heading(hist)[..., None])
        ramp = torch.arange(1, T + 1, device=device, dtype=dtype) / T
        x0 = (self.std * temperature) * ramp[:, None] * eps
        if self.kind == "constant_velocity":
            x0 = x0 + constant_velocity(hist, T)
        return x0 * mask.to(device=device, dtype=dtype)[:, :, None, None]


#: repeat every scene K times along the batch (scene-major: rows b*K .. b*K+K-1); the core's helper
repeat_cond = repeat_groups


@torch.no_grad()
def sample_futures(flow: Flow, cond: dict, k: int = 20, sampler="euler", steps: Optional[int] = 10,
                   generator: Optional[torch.Generator] = None, temperature: float = 1.0) -> torch.Tensor:
    """K joint futures per scene: ``cond`` with batch B -> ``(B, K, N, pred_len, 2)`` metres, agent-relative.

    All B*K scene copies are integrated together in one batched sampler call (flow time 0 -> 1);
    ``temperature`` multiplies the source noise (1 = the trained model).
    """
    B, N = cond["mask"].shape
    rep = repeat_cond(cond, k)
    res = flow.sample(B * k, cond=rep, sampler=sampler, steps=steps, generator=generator, temperature=temperature)
    x = res.x
    return x.view(B, k, N, *x.shape[2:])


@register("task", "trajectories")
class TrajectoryTask(Task):
    """Multi-agent trajectory forecasting (ETH/UCY leave-one-out folds or the social-force simulator)."""

    DataConfig = TrajDataConfig
    ModelConfig = TrajModelConfig
    EvalConfig = TrajEvalConfig

    def __init__(self, config):
        super().__init__(config)
        if config.flow.cond_dropout > 0:
            raise ValueError("flow.cond_dropout must be 0 for the trajectories task (the scene history is "
                             "always available; classifier-free guidance is not supported here)")
        self._cache: Dict[str, SceneWindows] = {}
        codes, ec = self.model_cfg.prior_codes, self.eval_cfg
        if codes is not None and (ec.k * ec.oversample != codes or ec.noise_scale != 1.0):
            raise ValueError(f"model.prior_codes={codes} samples exactly its {codes} codes per agent: set "
                             f"eval.k * eval.oversample = {codes} (got {ec.k} * {ec.oversample}) and "
                             f"eval.noise_scale = 1 (got {ec.noise_scale}; a temperature would rescale the codes)")

    # -- data ------------------------------------------------------------------------------------
    def windows(self, split: str) -> SceneWindows:
        """Scene windows of ``split`` (train / val / test), cached."""
        if split not in self._cache:
            dc = self.data_cfg
            if dc.source == "eth_ucy":
                self._cache[split] = load_split(dc.resolved_root(), dc.scene, split, dc.obs_len, dc.pred_len,
                                                dc.skip, dc.min_agents)
            else:
                n = dc.sim_scenes if split == "train" else max(dc.sim_scenes // 4, 1)
                seed = dc.sim_seed * 3 + {"train": 0, "val": 1, "test": 2}[split]
                self._cache[split] = simulated_windows(n, seed=seed, obs_len=dc.obs_len, pred_len=dc.pred_len)
        return self._cache[split]

    def train_dataset(self):
        dc = self.data_cfg
        windows = SceneWindows.concat([self.windows(split) for split in dc.train_splits])
        return TrajectoryDataset(windows, augment_rotation=dc.augment_rotation,
                                 max_agents=dc.max_agents, augment_scale=dc.augment_scale,
                                 augment_mirror=dc.augment_mirror)

    def val_dataset(self):
        return TrajectoryDataset(self.windows("val"))

    def collate(self, items):
        return collate_scenes(items)

    @staticmethod
    def loss_weight(batch) -> torch.Tensor:
        """Per-element loss weights: the agent mask ``(B, N, 1, 1)`` (1 real agent, 0 padding), broadcast
        over the future steps and coordinates of ``x1 (B, N, pred_len, 2)``."""
        return batch["cond"]["mask"][:, :, None, None]

    # -- model -----------------------------------------------------------------------------------
    def build_model(self) -> AgentTransformer:
        mc, dc = self.model_cfg, self.data_cfg
        return AgentTransformer(obs_len=dc.obs_len, pred_len=dc.pred_len, d_model=mc.d_model, heads=mc.heads,
                                depth=mc.depth, time_dim=mc.time_dim, scale=mc.scale, dropout=mc.dropout,
                                canonical=mc.canonical, interaction=mc.interaction,
                                modes=mc.prior_codes if mc.mode_attention else None)

    def build_flow(self) -> Flow:
        mc = self.model_cfg
        prior = TrajectoryPrior(self.data_cfg.pred_len, mc.prior, mc.prior_std, codes=mc.prior_codes)
        return self.make_flow(self.build_model(), source=prior)

    # -- evaluation ------------------------------------------------------------------------------
    def eval_loader(self, split: Optional[str] = None):
        ec = self.eval_cfg
        scale = None if ec.speed_scale == 1 else (ec.speed_scale, ec.speed_scale)
        ds = TrajectoryDataset(self.windows(split or ec.split), augment_scale=scale)
        if ec.max_scenes is not None and ec.max_scenes < len(ds):
            ds = torch.utils.data.Subset(ds, range(ec.max_scenes))
        return torch.utils.data.DataLoader(ds, batch_size=ec.batch_size, shuffle=False, collate_fn=collate_scenes)

    def flow_predictor(self, flow: Flow, generator: Optional[torch.Generator] = None):
        s = self.config.sample
        p = next(flow.parameters())

        over, scale = self.eval_cfg.oversample, self.eval_cfg.noise_scale

        def predict(cond, k):
            cond = tree_map(lambda c: c.to(device=p.device, dtype=p.dtype), cond)
            fut = sample_futures(flow, cond, k * over, s.sampler, s.steps, generator, temperature=scale)
            if over > 1:
                fut = final_position_clustering(fut, k, keep=self.eval_cfg.fpc_keep)
            return fut

        return predict

    def imle_distance(self, targets: torch.Tensor, candidates: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """ADE + w * FDE between every target and candidate future of a group (w = ``model.imle_fde_weight``,
        default 1), the errors minADE/minFDE score.

        Args:
            targets ``(G, S, *agents, T, 2)``, candidates ``(G, M, *agents, T, 2)`` in metres (``agents`` is
            empty when every agent is its own group, ``distill.match_dims: 1``), weight broadcastable to
            ``(G, 1, *agents, T, 2)``: 1 for real agents, 0 for padding.
        Returns:
            ``(G, S, M)``: mean over real positions of the Euclidean error plus w times its mean over real
            agents' final positions (metres); 0 for groups without real agents. With ``model.imle_match:
            separate`` the two terms are returned apart, ``(2, G, S, M)``, so that each picks its own code.
        """
        w = torch.broadcast_to(weight.to(targets.dtype), (targets.shape[0], 1) + tuple(targets.shape[2:]))[..., 0]
        err = (targets[:, :, None] - candidates[:, None]).norm(dim=-1)  # (G, S, M, *agents, T)
        w = w[:, :, None]  # (G, 1, 1, *agents, T)

        def wmean(e, ww):
            return (e * ww).flatten(3).sum(-1) / ww.flatten(3).sum(-1).clamp_min(1e-12)

        ade, fde = wmean(err, w), self.model_cfg.imle_fde_weight * wmean(err[..., -1:], w[..., -1:])
        return torch.stack([ade, fde]) if self.model_cfg.imle_match == "separate" else ade + fde

    def teacher_samples(self, flow: Flow, cond: dict, n: int, generator: Optional[torch.Generator] = None):
        """IMLE targets for ``sciflow distill``: ``n`` joint futures per scene ``(B, n, N, pred_len, 2)``,
        drawn at the evaluation temperature ``eval.noise_scale`` (without final position clustering)."""
        s, d = self.config.sample, self.config.distill
        return sample_futures(flow, cond, n, s.sampler, d.teacher_steps or s.steps, generator,
                              temperature=self.eval_cfg.noise_scale)

    def evaluate(self, flow: Flow, run_dir: Path) -> Dict[str, float]:
        """minADE/minFDE (per agent), joint ADE/FDE (per scene), collision rate and seconds per scene of
        the flow with K = ``eval.k`` samples, beside the baselines (``baseline/<name>/<metric>``)."""
        ec = self.eval_cfg
        flow.eval()
        loader = self.eval_loader()
        g = torch.Generator(device=next(flow.parameters()).device).manual_seed(ec.seed)
        metrics = evaluate_predictor(self.flow_predictor(flow, g), loader, k=ec.k,
                                     collision_radius=ec.collision_radius, speed_bins=ec.speed_bins)
        out: Dict[str, float] = dict(metrics)
        out["nfe_per_sample"] = _nfe(self.config.sample)
        out["oversample"] = ec.oversample
        out["noise_scale"] = ec.noise_scale
        out["fpc_keep"] = ec.fpc_keep
        out["speed_scale"] = ec.speed_scale
        out["min_agents"] = self.data_cfg.min_agents
        if self.model_cfg.prior_codes is not None:
            out["codes"] = self.model_cfg.prior_codes
        if ec.baselines:
            for name in ("constant_velocity", "cvm_s", "linear"):
                b = evaluate_predictor(baseline_predictor(name, seed=ec.seed), loader, k=ec.k,
                                       collision_radius=ec.collision_radius)
                for key in (f"minADE_{ec.k}", f"minFDE_{ec.k}", "collision_rate"):
                    out[f"baseline/{name}/{key}"] = b[key]
        if ec.plot and ec.plot_scenes > 0:
            from .plots import plot_scenes

            batch = next(iter(loader))
            cond = batch["cond"]
            futures = self.flow_predictor(flow, g)(cond, ec.k)
            plot_scenes(cond, batch["x1"], futures, Path(run_dir) / "samples.png", n_scenes=ec.plot_scenes)
        return out


def _nfe(sample_cfg) -> int:
    stages = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}
    name = sample_cfg.sampler if isinstance(sample_cfg.sampler, str) else sample_cfg.sampler.get("name", "")
    return int(stages.get(name, 0) * (sample_cfg.steps or 0))
