"""ETH/UCY trajectory data: text loader, scene windows, rotation augmentation, social-force simulator.

Data format (as distributed with Social-GAN, Gupta et al. 2018): whitespace-separated rows
``frame_id  agent_id  x  y`` with x, y in metres, one row per agent and annotated frame, 2.5 Hz.

A *scene window* is ``obs_len + pred_len`` consecutive annotated frames (default 8 + 12 = 3.2 s + 4.8 s);
it holds every agent annotated in all of those frames (the standard Social-GAN rule). Each agent's
coordinates are taken relative to its own last observed position, so the observation ends at (0, 0)
and the future starts one step later; the absolute last positions are kept (centred on the scene's
mean) so interaction models can see where the agents are with respect to each other.

Leave-one-scene-out splits live in ``<root>/<scene>/{train,val,test}/*.txt`` for scenes
eth, hotel, univ, zara1, zara2 (``root`` is e.g. ``../shared/data/eth_ucy``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import torch

SCENES = ("eth", "hotel", "univ", "zara1", "zara2")
SPLITS = ("train", "val", "test")
FPS = 2.5  # annotated frames per second in ETH/UCY


# ---------------------------------------------------------------------------------------------------
# reading tracks
# ---------------------------------------------------------------------------------------------------
def read_tracks(path: Union[str, Path]) -> np.ndarray:
    """Read one ETH/UCY text file into an array ``(R, 4)`` of ``[frame, agent, x, y]`` (float64).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a row has not exactly 4 whitespace columns, a value is not a number or not finite,
            or an (frame, agent) pair appears twice; the message names the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trajectory file '{path}' does not exist")
    rows: List[List[float]] = []
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise ValueError(
                    f"{path}:{lineno}: expected 4 whitespace-separated columns (frame, agent id, x, y), "
                    f"got {len(parts)}: {line.strip()!r}")
            try:
                vals = [float(p) for p in parts]
            except ValueError:
                raise ValueError(f"{path}:{lineno}: columns must be numbers (frame, agent id, x, y), "
                                 f"got {line.strip()!r}") from None
            if not all(math.isfinite(v) for v in vals):
                raise ValueError(f"{path}:{lineno}: non-finite value in {line.strip()!r}")
            rows.append(vals)
    if not rows:
        raise ValueError(f"trajectory file '{path}' holds no rows")
    arr = np.asarray(rows, dtype=np.float64)
    check_tracks(arr, source=str(path))
    return arr


def check_tracks(tracks: np.ndarray, source: str = "tracks") -> None:
    """Validate a track table ``(R, 4)`` ``[frame, agent, x, y]``; raises ``ValueError`` naming ``source``."""
    if not isinstance(tracks, np.ndarray) or tracks.ndim != 2 or tracks.shape[1] != 4:
        raise ValueError(f"{source}: expected an array of shape (rows, 4) [frame, agent, x, y], "
                         f"got {getattr(tracks, 'shape', type(tracks).__name__)}")
    if not np.isfinite(tracks).all():
        raise ValueError(f"{source}: track table contains NaN or infinite values")
    keys = tracks[:, :2]
    uniq = np.unique(keys, axis=0)
    if uniq.shape[0] != keys.shape[0]:
        raise ValueError(f"{source}: {keys.shape[0] - uniq.shape[0]} duplicated (frame, agent) rows; "
                         f"each agent may have one position per frame")


def tracks_from_dataframe(df, frame: str = "frame", agent: str = "agent", x: str = "x",
                          y: str = "y") -> np.ndarray:
    """Convert a pandas DataFrame of tracks (one row per agent and frame) into a track table ``(R, 4)``."""
    missing = [c for c in (frame, agent, x, y) if c not in df.columns]
    if missing:
        raise ValueError(f"DataFrame lacks the column(s) {missing}; columns are {list(df.columns)}")
    arr = df[[frame, agent, x, y]].to_numpy(dtype=np.float64)
    check_tracks(arr, source="DataFrame")
    return arr


# ---------------------------------------------------------------------------------------------------
# scene windows
# ---------------------------------------------------------------------------------------------------
@dataclass
class SceneWindows:
    """A set of scene windows in absolute coordinates (metres).

    Attributes:
        obs: ``(M, obs_len, 2)`` observed positions of all M agent-windows.
        fut: ``(M, pred_len, 2)`` future positions.
        ptr: ``(S + 1,)`` offsets: scene ``s`` holds agents ``ptr[s]:ptr[s+1]``.
        frames: ``(S,)`` first frame id of each window (for plots / bookkeeping).
        source: ``(S,)`` index into ``files`` of the file each window came from.
        files: names of the source files.
    """

    obs: np.ndarray
    fut: np.ndarray
    ptr: np.ndarray
    frames: np.ndarray
    source: np.ndarray
    files: List[str]

    def __len__(self) -> int:
        return len(self.ptr) - 1

    @property
    def num_agents(self) -> int:
        return int(self.obs.shape[0])

    def scene(self, s: int):
        a, b = int(self.ptr[s]), int(self.ptr[s + 1])
        return self.obs[a:b], self.fut[a:b]

    @staticmethod
    def concat(parts: Sequence["SceneWindows"]) -> "SceneWindows":
        parts = [p for p in parts]
        if not parts:
            raise ValueError("no scene windows to concatenate")
        obs = np.concatenate([p.obs for p in parts])
        fut = np.concatenate([p.fut for p in parts])
        ptrs, frames, sources, files, off = [np.zeros(1, dtype=np.int64)], [], [], [], 0
        for p in parts:
            ptrs.append(p.ptr[1:] + off)
            off += p.num_agents
            frames.append(p.frames)
            sources.append(p.source + len(files))
            files += p.files
        return SceneWindows(obs, fut, np.concatenate(ptrs), np.concatenate(frames),
                            np.concatenate(sources), files)


def make_windows(tracks: np.ndarray, obs_len: int = 8, pred_len: int = 12, skip: int = 1,
                 min_agents: int = 1, name: str = "tracks") -> SceneWindows:
    """Cut a track table into scene windows of ``obs_len + pred_len`` consecutive annotated frames.

    Follows the Social-GAN rule: frames are the sorted distinct frame ids; a window starting at frame
    index ``i`` holds the agents annotated in every one of the frames ``i .. i + obs_len + pred_len - 1``;
    windows with fewer than ``min_agents`` such agents are dropped; starts advance by ``skip``.
    Social-GAN's own loader keeps a window only when it holds more than ``min_ped = 1`` such agents, so
    ``min_agents=2`` reproduces its published test sets (the ETH/UCY fold configs use it); the default 1
    keeps single-agent windows too.
    Observations therefore only contain frames strictly before the first future frame.
    """
    if obs_len < 2 or pred_len < 1:
        raise ValueError(f"obs_len must be >= 2 and pred_len >= 1, got {obs_len}, {pred_len}")
    if skip < 1 or min_agents < 1:
        raise ValueError(f"skip and min_agents must be >= 1, got {skip}, {min_agents}")
    check_tracks(tracks, source=name)
    seq = obs_len + pred_len
    frame_ids, fidx = np.unique(tracks[:, 0], return_inverse=True)
    agent_ids, aidx = np.unique(tracks[:, 1], return_inverse=True)
    F, A = len(frame_ids), len(agent_ids)
    empty = SceneWindows(np.zeros((0, obs_len, 2), np.float32), np.zeros((0, pred_len, 2), np.float32),
                         np.zeros(1, np.int64), np.zeros(0), np.zeros(0, np.int64), [name])
    if F < seq:
        return empty
    present = np.zeros((F, A), dtype=bool)
    pos = np.zeros((F, A, 2), dtype=np.float64)
    present[fidx, aidx] = True
    pos[fidx, aidx] = tracks[:, 2:4]
    csum = np.concatenate([np.zeros((1, A), np.int64), np.cumsum(present, 0)])
    starts = np.arange(0, F - seq + 1, skip)
    full = (csum[starts + seq] - csum[starts]) == seq  # (W, A)
    counts = full.sum(1)
    keep = counts >= min_agents
    starts, full, counts = starts[keep], full[keep], counts[keep]
    if len(starts) == 0:
        return empty
    w_idx, a_idx = np.nonzero(full)  # row-major: grouped by window
    t = starts[w_idx, None] + np.arange(seq)[None, :]
    traj = pos[t, a_idx[:, None]].astype(np.float32)  # (M, seq, 2)
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return SceneWindows(traj[:, :obs_len].copy(), traj[:, obs_len:].copy(), ptr, frame_ids[starts],
                        np.zeros(len(starts), np.int64), [name])


def load_split(root: Union[str, Path], scene: str, split: str, obs_len: int = 8, pred_len: int = 12,
               skip: int = 1, min_agents: int = 1) -> SceneWindows:
    """Scene windows of one leave-one-out fold: every ``*.txt`` in ``<root>/<scene>/<split>/``.

    Args:
        root: folder holding ``eth, hotel, univ, zara1, zara2`` (e.g. ``../shared/data/eth_ucy``).
        scene: the held-out scene naming the fold.
        split: ``train``, ``val`` or ``test``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    folder = Path(root) / scene / split
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no folder '{folder}'; data.root must hold <scene>/{{train,val,test}}/*.txt "
            f"(scenes {', '.join(SCENES)})")
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"folder '{folder}' holds no *.txt trajectory files")
    return SceneWindows.concat([make_windows(read_tracks(f), obs_len, pred_len, skip, min_agents, name=f.name)
                                for f in files])


# ---------------------------------------------------------------------------------------------------
# tensors for the flow
# ---------------------------------------------------------------------------------------------------
def rotate(xy: torch.Tensor, theta: Union[float, torch.Tensor]) -> torch.Tensor:
    """Rotate points ``(..., 2)`` counter-clockwise by ``theta`` radians (scalar or broadcastable)."""
    theta = torch.as_tensor(theta, dtype=xy.dtype, device=xy.device)
    c, s = torch.cos(theta), torch.sin(theta)
    x, y = xy[..., 0], xy[..., 1]
    return torch.stack([c * x - s * y, s * x + c * y], dim=-1)


def heading(hist: torch.Tensor) -> torch.Tensor:
    """Each agent's heading ``(...,)`` in radians from its observed track ``hist (..., H, 2)``: the direction of
    the displacement over the last two observed steps, 0 when that displacement is under 1 mm (standing)."""
    d = hist[..., -1, :] - hist[..., -3, :]
    speed = d.norm(dim=-1)
    return torch.where(speed > 1e-3, torch.atan2(d[..., 1], d[..., 0]), torch.zeros_like(speed))


def scene_tensors(obs: np.ndarray, fut: Optional[np.ndarray] = None) -> Dict[str, torch.Tensor]:
    """Agent-relative tensors of one scene.

    Args:
        obs: ``(N, obs_len, 2)`` absolute observed positions; fut: ``(N, pred_len, 2)`` or ``None``.

    Returns:
        dict with ``hist (N, obs_len, 2)`` = obs - last observed position (so ``hist[:, -1] == 0``),
        ``pos (N, 2)`` = last observed position minus the scene mean of those positions, and, if ``fut``
        is given, ``fut (N, pred_len, 2)`` = fut - last observed position.
    """
    obs_t = torch.as_tensor(obs, dtype=torch.float32)
    last = obs_t[:, -1:, :]
    out = {"hist": obs_t - last, "pos": last[:, 0] - last[:, 0].mean(0, keepdim=True)}
    if fut is not None:
        out["fut"] = torch.as_tensor(fut, dtype=torch.float32) - last
    return out


def spatial_groups(pos: np.ndarray, size: int) -> List[np.ndarray]:
    """Partition agents at positions ``pos (N, 2)`` into groups of at most ``size`` neighbours: repeatedly
    take the left-most remaining agent together with its ``size - 1`` nearest remaining agents."""
    remaining = np.arange(len(pos))
    groups = []
    while len(remaining):
        seed = remaining[np.argmin(pos[remaining, 0])]
        d = np.linalg.norm(pos[remaining] - pos[seed], axis=1)
        take = remaining[np.argsort(d, kind="stable")[:size]]
        groups.append(np.sort(take))
        remaining = np.setdiff1d(remaining, take)
    return groups


class TrajectoryDataset(torch.utils.data.Dataset):
    """Scene windows as flow examples ``{"x1": fut (N, pred_len, 2), "cond": {"hist", "pos"}}``.

    Args:
        windows: :class:`SceneWindows`.
        augment_rotation: rotate every scene by an angle drawn uniformly in [0, 2 pi) each time it is read
            (all agents together, so pairwise distances are preserved).
        max_agents: scenes with more agents are split into spatial groups of at most ``max_agents``
            neighbouring agents (see :func:`spatial_groups`); ``None`` keeps whole scenes.
        augment_scale: ``(lo, hi)`` with 0 < lo <= hi: multiply all coordinates of a scene (history, future,
            positions) by a factor drawn log-uniformly in [lo, hi] each time it is read. At a fixed frame
            rate this scales every speed by the same factor (and the distances between agents), so the
            model sees faster and slower crowds than the training scenes hold. ``None``: no scaling.
        augment_mirror: with probability 1/2 reflect the whole scene across the x axis (y -> -y) each time it
            is read. Distances and speeds are kept; turning left becomes turning right, so the model cannot
            learn a handedness that the test scene may not share.
    """

    def __init__(self, windows: SceneWindows, augment_rotation: bool = False, max_agents: Optional[int] = None,
                 augment_scale: Optional[Sequence[float]] = None, augment_mirror: bool = False):
        self.windows = windows
        self.augment_rotation = bool(augment_rotation)
        self.augment_mirror = bool(augment_mirror)
        if augment_scale is not None:
            lo, hi = (float(v) for v in augment_scale)
            if not (0 < lo <= hi):
                raise ValueError(f"augment_scale must be (lo, hi) with 0 < lo <= hi, got {tuple(augment_scale)}")
            augment_scale = (lo, hi)
        self.augment_scale = augment_scale
        self.index: List[np.ndarray] = []
        for s in range(len(windows)):
            a, b = int(windows.ptr[s]), int(windows.ptr[s + 1])
            if max_agents is None or b - a <= max_agents:
                self.index.append(np.arange(a, b))
            else:
                self.index += [a + g for g in spatial_groups(windows.obs[a:b, -1], max_agents)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        idx = self.index[i]
        st = scene_tensors(self.windows.obs[idx], self.windows.fut[idx])
        if self.augment_mirror and bool(torch.rand(()) < 0.5):
            flip = torch.tensor([1.0, -1.0])
            st = {k: v * flip.to(v.dtype) for k, v in st.items()}
        if self.augment_rotation:
            theta = float(torch.rand(()) * 2 * math.pi)
            st = {k: rotate(v, theta) for k, v in st.items()}
        if self.augment_scale is not None:
            lo, hi = self.augment_scale
            f = math.exp(math.log(lo) + float(torch.rand(())) * (math.log(hi) - math.log(lo)))
            st = {k: v * f for k, v in st.items()}
        return {"x1": st["fut"], "cond": {"hist": st["hist"], "pos": st["pos"]}}


def collate_scenes(items: Sequence[dict]) -> dict:
    """Pad scenes to the largest agent count of the batch.

    Returns ``{"x1": (B, N, pred_len, 2), "cond": {"hist": (B, N, obs_len, 2), "pos": (B, N, 2),
    "mask": (B, N)}}`` with ``mask`` 1.0 for real agents, 0.0 for padding; padded entries are zero.
    """
    if not items:
        raise ValueError("cannot collate an empty list of scenes")
    n = max(int(it["x1"].shape[0]) for it in items)
    B = len(items)
    x1 = items[0]["x1"]
    hist0 = items[0]["cond"]["hist"]
    out_x = x1.new_zeros((B, n) + tuple(x1.shape[1:]))
    out_h = hist0.new_zeros((B, n) + tuple(hist0.shape[1:]))
    out_p = hist0.new_zeros((B, n, 2))
    mask = hist0.new_zeros((B, n))
    for i, it in enumerate(items):
        k = it["x1"].shape[0]
        out_x[i, :k] = it["x1"]
        out_h[i, :k] = it["cond"]["hist"]
        out_p[i, :k] = it["cond"]["pos"]
        mask[i, :k] = 1.0
    return {"x1": out_x, "cond": {"hist": out_h, "pos": out_p, "mask": mask}}


# ---------------------------------------------------------------------------------------------------
# social-force simulator (Helbing & Molnar 1995)
# ---------------------------------------------------------------------------------------------------
def simulate_social_force(n_scenes: int = 200, agents: Sequence[int] = (2, 6), frames: int = 40,
                          dt: float = 1 / FPS, substeps: int = 4, area: float = 8.0,
                          desired_speed: Sequence[float] = (0.9, 1.6), tau: float = 0.5,
                          repulsion: float = 2.0, range_: float = 0.3, radius: float = 0.3,
                          noise: float = 0.15, seed: int = 0) -> np.ndarray:
    """Simulate pedestrians with the social-force model and return a track table ``(R, 4)``.

    Each scene has a random number of agents in ``agents`` (inclusive), starting near the border of a
    ``area`` x ``area`` metre square and walking toward a goal on the opposite side with a preferred speed
    drawn from ``desired_speed`` (m/s). Per agent i the acceleration is

        (v0_i e_i - v_i) / tau  +  sum_j A exp((2 r - d_ij) / B) n_ij  +  sigma xi,

    with e_i the unit vector to the goal, n_ij the unit vector from j to i, A = ``repulsion`` (m/s^2),
    B = ``range_`` (m), r = ``radius`` (m) and xi white noise (Helbing & Molnar, Phys. Rev. E 51, 1995).
    Integration is semi-implicit Euler with ``substeps`` steps per recorded frame of ``dt`` seconds
    (2.5 Hz like ETH/UCY). Scenes are laid out far apart and frames of different scenes do not overlap.
    """
    rng = np.random.default_rng(seed)
    S, A = int(n_scenes), int(agents[1])
    n = rng.integers(agents[0], agents[1] + 1, size=S)
    real = np.arange(A)[None, :] < n[:, None]  # (S, A): all scenes are simulated together, padded
    side = rng.integers(0, 4, size=(S, A))
    u = rng.uniform(-area / 2, area / 2, size=(S, A))
    start = np.stack([np.where(side < 2, u, np.where(side == 2, -area / 2, area / 2)),
                      np.where(side < 2, np.where(side == 0, -area / 2, area / 2), u)], -1)
    goal = -start + rng.normal(0, area / 4, size=(S, A, 2))
    x = start + rng.normal(0, 0.5, size=(S, A, 2))
    v0 = rng.uniform(*desired_speed, size=(S, A))
    e = goal - x
    v = v0[..., None] * e / np.linalg.norm(e, axis=-1, keepdims=True)
    far = np.where(real, 0.0, 1e6)  # padded agents sit far away and exert no force
    h = dt / substeps
    out = np.zeros((frames, S, A, 2))
    eye = np.eye(A, dtype=bool)[None]
    for f in range(frames):
        for _ in range(substeps):
            e = goal - x
            e = e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-6)
            force = (v0[..., None] * e - v) / tau
            xx = x + far[..., None]
            d = xx[:, :, None, :] - xx[:, None, :, :]  # (S, A, A, 2), from j to i
            dn = np.linalg.norm(d, axis=-1)
            dn = np.where(eye, np.inf, dn)
            mag = repulsion * np.exp((2 * radius - dn) / range_)
            force += (mag[..., None] * d / np.maximum(dn, 1e-6)[..., None]).sum(2)
            force += noise * rng.normal(size=(S, A, 2)) / math.sqrt(h)
            v = v + h * force
            speed = np.linalg.norm(v, axis=-1, keepdims=True)
            v = v * np.minimum(1.0, 1.3 * v0[..., None] / np.maximum(speed, 1e-6))
            x = x + h * v
        out[f] = x
    base = np.arange(S) * (frames + 10) * 10
    fr = base[None, :, None] + 10 * np.arange(frames)[:, None, None]  # (F, S, 1)
    ids = np.cumsum(np.concatenate([[0], n[:-1]]))[:, None] + np.arange(A)[None]  # (S, A)
    frame_col = np.broadcast_to(fr, (frames, S, A))
    id_col = np.broadcast_to(ids[None], (frames, S, A))
    keep = np.broadcast_to(real[None], (frames, S, A))
    rows = np.stack([frame_col[keep], id_col[keep], out[..., 0][keep], out[..., 1][keep]], -1)
    order = np.lexsort((rows[:, 1], rows[:, 0]))
    return rows[order].astype(np.float64)


def simulated_windows(n_scenes: int = 200, seed: int = 0, obs_len: int = 8, pred_len: int = 12,
                      skip: int = 4, **kwargs) -> SceneWindows:
    """Scene windows from :func:`simulate_social_force` (default data set for a first run and tests)."""
    tracks = simulate_social_force(n_scenes=n_scenes, seed=seed, **kwargs)
    return make_windows(tracks, obs_len, pred_len, skip=skip, name=f"social_force(seed={seed})")
