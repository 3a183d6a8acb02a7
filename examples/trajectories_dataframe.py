"""Forecast pedestrian tracks held in a pandas DataFrame with the trajectories domain's Python API.

A pipeline that already holds tracks as a table (one row per agent and frame, 2.5 Hz, metres) turns
them into scene windows, trains a small flow briefly from a dict config, and samples K = 20 joint futures
for every agent of a few scenes. About a minute on a CPU:

    python examples/trajectories_dataframe.py
"""
import pandas as pd
import torch

from sciflow.domains import trajectories as tj
from sciflow.training import train

torch.set_num_threads(1)

# 1. tracks as a DataFrame (here simulated with the built-in social-force model)
table = tj.simulate_social_force(n_scenes=200, seed=0)
df = pd.DataFrame(table, columns=["frame", "ped", "x", "y"])
print(df.head())

# 2. DataFrame -> track table -> scene windows (obs 8 / pred 12, every agent present in all 20 frames)
tracks = tj.tracks_from_dataframe(df, frame="frame", agent="ped", x="x", y="y")
windows = tj.make_windows(tracks, obs_len=8, pred_len=12, skip=4)
print(f"{len(windows)} scene windows, {windows.num_agents} agent tracks")

# 3. train a small flow from a dict config (the simulator data source; ~1 minute)
cfg = {"name": "traj_dataframe_example", "task": "trajectories", "domain": "trajectories",
       "run_dir": "runs/traj_dataframe_example",
       "data": {"source": "simulator", "sim_scenes": 200},
       "model": {"d_model": 64, "depth": 2, "heads": 4, "time_dim": 32},
       "trainer": {"max_steps": 300, "batch_size": 32, "lr": 1e-3, "progress": False, "ema_decay": 0.99},
       "sample": {"sampler": "euler", "steps": 10},
       "eval": {"max_scenes": 64, "plot": False}}
flow = train(cfg, evaluate=False).flow

# 4. K = 20 joint futures for the agents of the first few windows of *our* DataFrame
ds = tj.TrajectoryDataset(windows)
batch = tj.collate_scenes([ds[i] for i in range(4)])
futures = tj.sample_futures(flow, batch["cond"], k=20, steps=10)      # (4, 20, N, 12, 2) metres
print("futures", tuple(futures.shape))
print({k: round(v, 3) for k, v in tj.min_ade_fde(futures, batch["x1"], batch["cond"]["mask"]).items()})
cv = tj.constant_velocity(batch["cond"]["hist"]).unsqueeze(1)
print("constant velocity:", {k: round(v, 3) for k, v in tj.min_ade_fde(cv, batch["x1"], batch["cond"]["mask"]).items()})

# 5. absolute positions for the pipeline: add each agent's last observed position back
last_obs = torch.as_tensor(windows.obs[windows.ptr[0]:windows.ptr[1], -1])      # scene 0, absolute frame
absolute = futures[0, :, : len(last_obs)] + last_obs[None, :, None, :]           # (20, N0, 12, 2)
print("scene 0 absolute futures", tuple(absolute.shape))
tj.plot_scenes(batch["cond"], batch["x1"], futures, "runs/traj_dataframe_example/futures.png", n_scenes=3)
print("wrote runs/traj_dataframe_example/futures.png")
