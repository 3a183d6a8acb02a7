"""Metrics and baselines for multi-agent trajectory forecasting.

All tensors are in metres, agent-relative (each agent's last observed position at the origin), batch
first. Shapes: predictions ``(B, K, N, T, 2)`` (B scenes, K samples, N padded agents, T future steps),
ground truth ``(B, N, T, 2)``, agent mask ``(B, N)`` (1 real, 0 padding).

Metrics (K = 20 in the ETH/UCY protocol of Gupta et al. 2018):

* ``minADE_K`` / ``minFDE_K`` per agent: for every agent the best of its K samples by average / final
  displacement error, averaged over all agents of all scenes;
* ``jointADE_K`` / ``jointFDE_K`` per scene: the single sample index k that is best for the scene as a
  whole (mean over its agents), averaged over scenes (Casas et al. 2020; Weng et al. 2023 "joint metrics");
* ``collision_rate``: fraction of (sample, agent pair) combinations whose predicted positions come closer
  than ``radius`` metres at some future step (pairs of real agents only);
* time per scene: wall-clock seconds to produce the K samples of one scene;
* per speed bin (optional): minADE_K / minFDE_K over the agents whose mean observed speed (metres per
  step) falls in each bin, so a loss can be located (standing, walking or fast agents).

Baselines (Scholler et al. 2020, "What the constant velocity model can teach us about pedestrian motion
prediction"): constant velocity (CVM), CVM-S with K headings perturbed by Gaussian angular noise, and a
least-squares linear fit to the observed track.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Dict, Optional, Sequence

import torch
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------------
def _check(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> None:
    if pred.dim() != 5 or pred.shape[-1] != 2:
        raise ValueError(f"pred must have shape (B, K, N, T, 2), got {tuple(pred.shape)}")
    if gt.shape != pred.shape[:1] + pred.shape[2:]:
        raise ValueError(f"gt must have shape (B, N, T, 2) = {tuple(pred.shape[:1] + pred.shape[2:])}, "
                         f"got {tuple(gt.shape)}")
    if mask.shape != pred.shape[:1] + pred.shape[2:3]:
        raise ValueError(f"mask must have shape (B, N) = {tuple(pred.shape[:1] + pred.shape[2:3])}, "
                         f"got {tuple(mask.shape)}")


def displacement_errors(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor,
                        group: Optional[torch.Tensor] = None, n_groups: int = 0) -> Dict[str, torch.Tensor]:
    """Per-agent and per-scene best-of-K errors.

    Returns sums and counts so that batches can be accumulated exactly: ``ade_sum``, ``fde_sum`` (over
    real agents of the per-agent min over K), ``ade_sqsum``, ``fde_sqsum`` (the same of its square, for the
    standard error), ``joint_ade_sum``, ``joint_fde_sum`` (over scenes with at least one agent, of the min
    over K of the scene-mean error), ``agents`` and ``scenes`` counts. With ``group`` ``(B, N)`` (long, each
    agent's group in ``[0, n_groups)``) also ``ade_by_group``, ``fde_by_group`` and ``agents_by_group``,
    ``(n_groups,)`` sums over the real agents of each group.
    """
    _check(pred, gt, mask)
    m = mask.to(pred.dtype)
    err = (pred - gt.unsqueeze(1)).norm(dim=-1)  # (B, K, N, T)
    ade = err.mean(-1)  # (B, K, N)
    fde = err[..., -1]
    n_agents = m.sum(-1)  # (B,)
    has = n_agents > 0
    denom = n_agents.clamp_min(1).unsqueeze(1)
    joint_ade = ((ade * m.unsqueeze(1)).sum(-1) / denom).min(1).values  # (B,)
    joint_fde = ((fde * m.unsqueeze(1)).sum(-1) / denom).min(1).values
    best_ade, best_fde = ade.min(1).values, fde.min(1).values  # (B, N)
    out = {} if group is None else _group_sums(group, m, n_groups, best_ade=best_ade, best_fde=best_fde)
    return {
        **out,
        "ade_sum": (best_ade * m).sum(),
        "fde_sum": (best_fde * m).sum(),
        "ade_sqsum": (best_ade.square() * m).sum(),
        "fde_sqsum": (best_fde.square() * m).sum(),
        "joint_ade_sum": joint_ade[has].sum(),
        "joint_fde_sum": joint_fde[has].sum(),
        "agents": m.sum(),
        "scenes": has.to(pred.dtype).sum(),
    }


def _group_sums(group: torch.Tensor, m: torch.Tensor, n_groups: int, best_ade: torch.Tensor,
                best_fde: torch.Tensor) -> Dict[str, torch.Tensor]:
    if group.shape != m.shape:
        raise ValueError(f"group must have the mask's shape {tuple(m.shape)}, got {tuple(group.shape)}")
    idx = group.reshape(-1).long()
    if idx.numel() and (idx.min() < 0 or idx.max() >= n_groups):
        raise ValueError(f"group values must lie in [0, {n_groups}), got {int(idx.min())}..{int(idx.max())}")

    def per_group(v):
        return torch.zeros(n_groups, dtype=m.dtype, device=m.device).index_add_(0, idx, (v * m).reshape(-1))

    return {"ade_by_group": per_group(best_ade), "fde_by_group": per_group(best_fde),
            "agents_by_group": per_group(torch.ones_like(m))}


def observed_speed(hist: torch.Tensor) -> torch.Tensor:
    """Mean observed speed ``(...,)`` in metres per step from tracks ``hist (..., H, 2)``."""
    return (hist[..., 1:, :] - hist[..., :-1, :]).norm(dim=-1).mean(-1)


def check_speed_bins(edges: Sequence[float]) -> list:
    """``edges`` as floats; a ``ValueError`` unless they are positive and strictly increasing (m/step)."""
    out = [float(e) for e in edges]
    if any(e <= 0 for e in out) or any(b <= a for a, b in zip(out[:-1], out[1:])):
        raise ValueError(f"speed_bins must be positive, strictly increasing edges in m/step, got {list(edges)}")
    return out


def speed_bin_labels(edges: Sequence[float]) -> list:
    """Names of the speed bins cut at ``edges`` (m/step): ``<e0``, ``e0-e1``, ..., ``>=en``."""
    inner = [f"{a:g}-{b:g}" for a, b in zip(edges[:-1], edges[1:])]
    return [f"<{edges[0]:g}", *inner, f">={edges[-1]:g}"]


def min_ade_fde(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> Dict[str, float]:
    """minADE_K, minFDE_K (per agent) and jointADE_K, jointFDE_K (per scene) for one batch, in metres."""
    s = displacement_errors(pred, gt, mask)
    return {"minADE": float(s["ade_sum"] / s["agents"]), "minFDE": float(s["fde_sum"] / s["agents"]),
            "jointADE": float(s["joint_ade_sum"] / s["scenes"]), "jointFDE": float(s["joint_fde_sum"] / s["scenes"])}


def collisions(paths: torch.Tensor, mask: torch.Tensor, radius: float = 0.2) -> Dict[str, torch.Tensor]:
    """Count colliding agent pairs.

    Args:
        paths: absolute (scene-frame) future positions ``(B, K, N, T, 2)``.
        mask: ``(B, N)``.
        radius: two agents collide when their distance is below ``radius`` metres at some step.

    Returns ``{"collided": number of colliding (sample, pair) combinations, "pairs": number of them}``.
    """
    if paths.dim() != 5:
        raise ValueError(f"paths must have shape (B, K, N, T, 2), got {tuple(paths.shape)}")
    pt = paths.transpose(2, 3)  # (B, K, T, N, 2)
    d = torch.cdist(pt, pt).amin(2)  # (B, K, N, N): closest approach over the horizon
    m = mask.to(paths.dtype)
    pair = (m.unsqueeze(-1) * m.unsqueeze(-2)).triu(diagonal=1).unsqueeze(1)  # (B, 1, N, N)
    hit = (d < radius).to(paths.dtype) * pair
    return {"collided": hit.sum(), "pairs": pair.sum() * paths.shape[1]}


def final_position_clustering(samples: torch.Tensor, k: int, iters: int = 10, keep: str = "nearest") -> torch.Tensor:
    """Reduce M >= K samples per agent to K representatives by k-means on their final positions.

    Final position clustering (FPC) of Xu et al., "SocialVAE" (ECCV 2022): run k-means with K clusters on
    the M endpoints of every agent (initialised with the first K samples; Lloyd iterations batched over
    agents) and keep, per cluster, the sample whose endpoint is nearest to the cluster centre
    (``keep="nearest"``) or the mean trajectory of the cluster's members (``keep="mean"``).
    ``samples (B, M, N, T, 2)`` -> ``(B, K, N, T, 2)``. The K kept futures of different agents come from
    different draws, so after FPC the sample index no longer pairs agents into joint scene futures.
    """
    if keep not in ("nearest", "mean"):
        raise ValueError(f"keep must be 'nearest' or 'mean', got {keep!r}")
    B, M, N, T, _ = samples.shape
    if k > M:
        raise ValueError(f"final position clustering needs M >= K samples, got M={M}, K={k}")
    if k == M:
        return samples
    P = samples[..., -1, :].permute(0, 2, 1, 3).reshape(B * N, M, 2)  # (A, M, 2)
    C = P[:, :k].clone()
    for _ in range(iters):
        assign = torch.cdist(P, C).argmin(-1)  # (A, M)
        onehot = F.one_hot(assign, k).to(P.dtype)  # (A, M, K)
        count = onehot.sum(1)  # (A, K)
        newc = onehot.transpose(1, 2) @ P / count.clamp_min(1).unsqueeze(-1)
        C = torch.where(count.unsqueeze(-1) > 0, newc, C)
    traj = samples.permute(0, 2, 1, 3, 4).reshape(B * N, M, T, 2)
    pick = torch.cdist(C, P).argmin(-1)  # (A, K) index of the sample nearest to each centre
    out = traj.gather(1, pick[:, :, None, None].expand(-1, -1, T, 2))  # (A, K, T, 2)
    if keep == "mean":
        onehot = F.one_hot(torch.cdist(P, C).argmin(-1), k).to(P.dtype)  # final assignment (A, M, K)
        count = onehot.sum(1)  # (A, K)
        mean = (onehot.transpose(1, 2) @ traj.flatten(2)).view(-1, k, T, 2) / count.clamp_min(1)[..., None, None]
        out = torch.where(count[..., None, None] > 0, mean, out)  # an empty cluster keeps its nearest sample
    return out.view(B, N, k, T, 2).permute(0, 2, 1, 3, 4)


# ---------------------------------------------------------------------------------------------------
# baselines
# ---------------------------------------------------------------------------------------------------
def constant_velocity(hist: torch.Tensor, pred_len: int = 12) -> torch.Tensor:
    """Constant-velocity extrapolation of the last observed step.

    ``hist (..., obs_len, 2)`` agent-relative (``hist[..., -1, :] == 0``) -> ``(..., pred_len, 2)``:
    x_{t+j} = x_t + j (x_t - x_{t-1}).
    """
    v = hist[..., -1, :] - hist[..., -2, :]
    steps = torch.arange(1, pred_len + 1, device=hist.device, dtype=hist.dtype)
    return hist[..., -1:, :] + steps[:, None] * v.unsqueeze(-2)


def cvm_sampled(hist: torch.Tensor, k: int = 20, pred_len: int = 12, sigma_deg: float = 25.0,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """CVM-S (Scholler et al. 2020): K constant-velocity futures with headings rotated by angles drawn from
    N(0, sigma_deg^2) (degrees). ``hist (B, N, obs_len, 2)`` -> ``(B, K, N, pred_len, 2)``."""
    v = hist[..., -1, :] - hist[..., -2, :]  # (B, N, 2)
    ang = torch.randn((hist.shape[0], k) + tuple(hist.shape[1:-2]), generator=generator,
                      device=hist.device, dtype=hist.dtype) * math.radians(sigma_deg)
    c, s = torch.cos(ang), torch.sin(ang)
    v = v.unsqueeze(1)
    vr = torch.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], -1)
    steps = torch.arange(1, pred_len + 1, device=hist.device, dtype=hist.dtype)
    return hist[:, None, ..., -1:, :] + steps[:, None] * vr.unsqueeze(-2)


def linear_fit(hist: torch.Tensor, pred_len: int = 12) -> torch.Tensor:
    """Least-squares line x(t) = a + b t fitted to all observed steps, extrapolated.

    ``hist (..., obs_len, 2)`` -> ``(..., pred_len, 2)`` (closed form of ordinary least squares).
    """
    T = hist.shape[-2]
    t = torch.arange(T, device=hist.device, dtype=hist.dtype)
    tm = t.mean()
    xm = hist.mean(-2, keepdim=True)
    b = ((t - tm)[:, None] * (hist - xm)).sum(-2, keepdim=True) / (t - tm).pow(2).sum()
    tf = torch.arange(T, T + pred_len, device=hist.device, dtype=hist.dtype)
    return xm + (tf - tm)[:, None] * b


# ---------------------------------------------------------------------------------------------------
# evaluation loop
# ---------------------------------------------------------------------------------------------------
Predictor = Callable[[dict, int], torch.Tensor]


def baseline_predictor(name: str, sigma_deg: float = 25.0, seed: int = 0) -> Predictor:
    """A predictor ``(cond, k) -> (B, K, N, T, 2)`` for ``constant_velocity``, ``cvm_s`` or ``linear``.
    Deterministic baselines repeat their single future K times."""
    gen = torch.Generator().manual_seed(seed)

    def predict(cond: dict, k: int, pred_len: int = 12) -> torch.Tensor:
        hist = cond["hist"]
        if name == "constant_velocity":
            out = constant_velocity(hist, pred_len).unsqueeze(1)
        elif name == "linear":
            out = linear_fit(hist, pred_len).unsqueeze(1)
        elif name == "cvm_s":
            return cvm_sampled(hist, k, pred_len, sigma_deg, generator=gen)
        else:
            raise ValueError(f"unknown baseline '{name}'; choose constant_velocity, cvm_s or linear")
        return out.expand(-1, k, -1, -1, -1)

    return predict


@torch.no_grad()
def evaluate_predictor(predict: Predictor, loader, k: int = 20, collision_radius: float = 0.2,
                       speed_bins: Sequence[float] = ()) -> Dict[str, float]:
    """Run ``predict(cond, k)`` over a loader of collated scenes and aggregate every metric.

    Returns minADE/minFDE (per agent), their standard errors over agents (``minADE_K_se``, ``minFDE_K_se``:
    sample standard deviation of the per-agent best-of-K error / sqrt(agents); how far the mean could move
    with another draw of test agents, the noise floor when two methods are compared on one test scene),
    jointADE/jointFDE (per scene), collision_rate of the predictions, gt_collision_rate of the ground
    truth (for reference), and sec_per_scene (wall clock of ``predict``). With ``speed_bins`` (increasing
    edges in metres per step of the mean observed speed, :func:`observed_speed`) also
    ``minADE_K/speed_<bin>``, ``minFDE_K/speed_<bin>`` and ``agents/speed_<bin>`` for every bin
    (:func:`speed_bin_labels`; an empty bin reports only its count, 0).
    """
    edges = check_speed_bins(speed_bins)
    acc: Dict[str, float] = {}
    by_group: Dict[str, torch.Tensor] = {}
    seconds = 0.0
    for batch in loader:
        x1, cond = batch["x1"], batch["cond"]
        t0 = time.perf_counter()
        pred = predict(cond, k)
        seconds += time.perf_counter() - t0
        if pred.shape != (x1.shape[0], k) + tuple(x1.shape[1:]):
            raise ValueError(f"predictor returned {tuple(pred.shape)}, expected {(x1.shape[0], k) + tuple(x1.shape[1:])}")
        mask = cond["mask"]
        group = None
        if edges:
            cuts = torch.tensor(edges, dtype=x1.dtype, device=x1.device)
            group = torch.bucketize(observed_speed(cond["hist"].to(x1)), cuts, right=True)
        stats = displacement_errors(pred, x1, mask, group=group, n_groups=len(edges) + 1)
        for key in ("ade_by_group", "fde_by_group", "agents_by_group"):
            if key in stats:
                v = stats.pop(key).detach().cpu()
                by_group[key] = by_group[key] + v if key in by_group else v
        origin = cond["pos"][:, None, :, None, :]
        col = collisions(pred + origin, mask, collision_radius)
        gcol = collisions((x1[:, None] + origin), mask, collision_radius)
        stats.update(collided=col["collided"], pairs=col["pairs"], gt_collided=gcol["collided"],
                     gt_pairs=gcol["pairs"])
        for key, v in stats.items():
            acc[key] = acc.get(key, 0.0) + float(v)
    scenes = max(acc.get("scenes", 0.0), 1.0)
    agents = max(acc.get("agents", 0.0), 1.0)
    binned: Dict[str, float] = {}
    if by_group:
        for i, label in enumerate(speed_bin_labels(edges)):
            n = float(by_group["agents_by_group"][i])
            binned[f"agents/speed_{label}"] = n
            if n:  # an empty bin has a count of 0 and no errors
                binned[f"minADE_{k}/speed_{label}"] = float(by_group["ade_by_group"][i]) / n
                binned[f"minFDE_{k}/speed_{label}"] = float(by_group["fde_by_group"][i]) / n
    return {
        **binned,
        f"minADE_{k}": acc["ade_sum"] / agents,
        f"minFDE_{k}": acc["fde_sum"] / agents,
        f"minADE_{k}_se": _standard_error(acc["ade_sum"], acc["ade_sqsum"], acc["agents"]),
        f"minFDE_{k}_se": _standard_error(acc["fde_sum"], acc["fde_sqsum"], acc["agents"]),
        f"jointADE_{k}": acc["joint_ade_sum"] / scenes,
        f"jointFDE_{k}": acc["joint_fde_sum"] / scenes,
        "collision_rate": acc["collided"] / max(acc["pairs"], 1.0),
        "gt_collision_rate": acc["gt_collided"] / max(acc["gt_pairs"], 1.0),
        "sec_per_scene": seconds / scenes,
        "scenes": acc["scenes"],
        "agents": acc["agents"],
    }


def _standard_error(total: float, sq_total: float, n: float) -> float:
    """Standard error of a mean from its sum and sum of squares over n values (nan for n < 2)."""
    if n < 2:
        return float("nan")
    var = max(sq_total - total * total / n, 0.0) / (n - 1)  # max: float round-off of a zero variance
    return math.sqrt(var / n)
