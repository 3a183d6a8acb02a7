"""Multi-agent trajectory forecasting (ETH/UCY) with conditional flows over all agents' futures.

Public API::

    from sciflow.domains import trajectories as tj
    w = tj.load_split("../shared/data/eth_ucy", "zara1", "test")        # SceneWindows (metres)
    ds = tj.TrajectoryDataset(w, augment_rotation=True)                   # flow examples per scene
    batch = tj.collate_scenes([ds[0], ds[1]])                             # padded + mask
    futures = tj.sample_futures(flow, batch["cond"], k=20)                # (B, K, N, 12, 2)
    tj.min_ade_fde(futures, batch["x1"], batch["cond"]["mask"])           # minADE/minFDE, joint

Registered: task ``trajectories`` and model ``agent_transformer``. Coordinates are metres, each agent's
future relative to its last observed position; observe 8 steps (3.2 s), predict 12 (4.8 s) at 2.5 Hz.
"""
from .data import (FPS, SCENES, SceneWindows, TrajectoryDataset, check_tracks, collate_scenes, load_split,
                   heading, make_windows, read_tracks, rotate, scene_tensors, simulate_social_force, simulated_windows,
                   spatial_groups, tracks_from_dataframe)
from .evaluate import (baseline_predictor, collisions, constant_velocity, cvm_sampled, displacement_errors,
                       evaluate_predictor, final_position_clustering, linear_fit, min_ade_fde,
                       observed_speed)
from .models import AgentTransformer
from .plots import plot_scenes
from .task import TrajectoryPrior, TrajectoryTask, repeat_cond, sample_futures

__all__ = [
    "FPS", "SCENES", "SceneWindows", "TrajectoryDataset", "check_tracks", "collate_scenes", "load_split",
    "heading", "make_windows", "read_tracks", "rotate", "scene_tensors", "simulate_social_force", "simulated_windows",
    "spatial_groups", "tracks_from_dataframe", "baseline_predictor", "collisions", "constant_velocity",
    "cvm_sampled", "displacement_errors", "evaluate_predictor", "final_position_clustering", "linear_fit",
    "min_ade_fde", "observed_speed", "AgentTransformer",
    "plot_scenes", "TrajectoryPrior", "TrajectoryTask", "repeat_cond", "sample_futures",
]
