"""Plots of sampled futures over the observed paths."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch


def plot_scenes(cond: dict, gt: Optional[torch.Tensor], futures: torch.Tensor, path, n_scenes: int = 4,
                title: str = "") -> Path:
    """Draw ``n_scenes`` scenes: observed paths (black), ground-truth futures (green, dashed) and the K
    sampled futures per agent (thin, one colour per agent), in the scene frame (metres).

    Args:
        cond: collated condition ``{"hist", "pos", "mask"}`` of B scenes.
        gt: ``(B, N, T, 2)`` agent-relative ground truth or ``None``.
        futures: ``(B, K, N, T, 2)`` agent-relative samples.
        path: output image file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist, pos, mask = (cond[k].detach().cpu() for k in ("hist", "pos", "mask"))
    fut = futures.detach().cpu()
    n = min(n_scenes, hist.shape[0])
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 4), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for b in range(n):
        ax = axes[0, b]
        for i in torch.nonzero(mask[b] > 0).flatten().tolist():
            o = pos[b, i]
            c = cmap(i % 10)
            for k in range(fut.shape[1]):
                f = torch.cat([torch.zeros(1, 2), fut[b, k, i]]) + o
                ax.plot(f[:, 0], f[:, 1], color=c, lw=0.6, alpha=0.35)
            h = hist[b, i] + o
            ax.plot(h[:, 0], h[:, 1], color="k", lw=1.8)
            ax.plot(h[-1, 0], h[-1, 1], "o", color="k", ms=3)
            if gt is not None:
                g = torch.cat([torch.zeros(1, 2), gt[b, i].detach().cpu()]) + o
                ax.plot(g[:, 0], g[:, 1], "--", color="tab:green", lw=1.4)
        ax.set_aspect("equal")
        ax.set_title(f"scene {b}: {int(mask[b].sum())} agents, K={fut.shape[1]}")
        ax.set_xlabel("x [m]")
        ax.set_ylabel("y [m]")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
