"""Tests of the trajectories domain: loader, windows, augmentation, metrics, baselines, task, training."""

import numpy as np
import pytest
from shared_data import shared_data
import torch

from sciflow.domains import trajectories as tj
from sciflow.domains.trajectories.task import TrajectoryTask





def _grid_tracks():
    """Agents whose x coordinate encodes the frame id: x = frame / 10, y = agent id."""
    rows = []
    for agent, (f0, f1) in enumerate([(0, 300), (50, 250), (100, 130)]):
        for f in range(f0, f1, 10):
            rows.append((f, agent, f / 10.0, float(agent)))
    return np.asarray(rows, dtype=np.float64)


# -- windows -----------------------------------------------------------------------------------------
def test_windows_never_put_future_frames_in_the_observation():
    w = tj.make_windows(_grid_tracks(), obs_len=8, pred_len=12)
    assert len(w) > 0
    frames_obs = w.obs[..., 0] * 10  # frame ids of observed steps
    frames_fut = w.fut[..., 0] * 10
    # strictly increasing, consecutive 10-frame steps, every observed frame before every future frame
    seq = np.concatenate([frames_obs, frames_fut], axis=1)
    assert np.allclose(np.diff(seq, axis=1), 10.0)
    assert (frames_obs.max(1) < frames_fut.min(1)).all()
    # agent 2 lives only 3 frames: never in a window; agent 1 only in windows fully inside its life
    ys = w.obs[:, 0, 1]
    assert 2.0 not in set(ys.tolist())
    a1 = w.obs[ys == 1.0]
    assert (a1[:, 0, 0] * 10 >= 50).all() and ((w.fut[ys == 1.0][:, -1, 0]) * 10 < 250).all()
    # agent 0 has 30 frames -> 11 windows; agent 1 has 20 -> 1 window
    assert (ys == 0.0).sum() == 11 and (ys == 1.0).sum() == 1
    # scene offsets group agents by window
    assert w.ptr[-1] == w.num_agents and np.all(np.diff(w.ptr) >= 1)


def test_scene_tensors_are_relative_to_last_observation():
    w = tj.make_windows(_grid_tracks())
    st = tj.scene_tensors(*w.scene(0))
    assert torch.allclose(st["hist"][:, -1], torch.zeros(2))
    assert torch.allclose(st["fut"][:, 0, 0], torch.full((st["fut"].shape[0],), 1.0))  # one frame later


def test_min_agents_drops_sparse_windows():
    w1 = tj.make_windows(_grid_tracks(), min_agents=1)
    w2 = tj.make_windows(_grid_tracks(), min_agents=2)
    assert len(w2) == 1 and len(w1) == 11 and np.diff(w2.ptr)[0] == 2


def test_rotation_augmentation_preserves_pairwise_distances():
    w = tj.make_windows(tj.simulate_social_force(n_scenes=3, agents=(4, 5), frames=25, seed=1), skip=3)
    plain = tj.TrajectoryDataset(w)
    aug = tj.TrajectoryDataset(w, augment_rotation=True)
    torch.manual_seed(0)
    for i in range(len(plain)):
        a, b = plain[i], aug[i]

        def absolute(item):
            pos = item["cond"]["pos"][:, None]
            return torch.cat([item["cond"]["hist"] + pos, item["x1"] + pos], 1)  # (N, 20, 2)

        pa, pb = absolute(a), absolute(b)
        da = (pa[:, None] - pa[None]).norm(dim=-1)
        db = (pb[:, None] - pb[None]).norm(dim=-1)
        assert torch.allclose(da, db, atol=1e-4)
        assert not torch.allclose(pa, pb, atol=1e-3)  # it did rotate
        # each agent's own speed profile is unchanged too
        assert torch.allclose(a["x1"].norm(dim=-1), b["x1"].norm(dim=-1), atol=1e-4)


def test_scale_augmentation_multiplies_every_coordinate_by_one_factor_in_range():
    w = tj.make_windows(tj.simulate_social_force(n_scenes=3, agents=(4, 5), frames=25, seed=1), skip=3)
    plain = tj.TrajectoryDataset(w)
    aug = tj.TrajectoryDataset(w, augment_scale=(0.5, 2.0))
    torch.manual_seed(0)
    factors = []
    for i in range(len(plain)):
        a, b = plain[i], aug[i]
        f = (b["x1"].norm() / a["x1"].norm()).item()
        assert 0.5 - 1e-5 <= f <= 2.0 + 1e-5
        for key in ("hist", "pos"):
            assert torch.allclose(b["cond"][key], f * a["cond"][key], atol=1e-4)
        assert torch.allclose(b["x1"], f * a["x1"], atol=1e-4)
        factors.append(f)
    assert max(factors) / min(factors) > 1.2  # it does draw different factors
    with pytest.raises(ValueError, match="augment_scale"):
        tj.TrajectoryDataset(w, augment_scale=(2.0, 1.0))


def test_mirror_augmentation_reflects_y_of_whole_scenes_about_half_the_time():
    w = tj.make_windows(tj.simulate_social_force(n_scenes=6, agents=(4, 5), frames=25, seed=1), skip=3)
    plain = tj.TrajectoryDataset(w)
    aug = tj.TrajectoryDataset(w, augment_mirror=True)
    torch.manual_seed(0)
    flipped = 0
    for i in range(len(plain)):
        a, b = plain[i], aug[i]
        pairs = [(a["x1"], b["x1"]), (a["cond"]["hist"], b["cond"]["hist"]), (a["cond"]["pos"], b["cond"]["pos"])]
        assert all(torch.equal(x[..., 0], y[..., 0]) for x, y in pairs)  # x is never touched
        if not torch.equal(a["x1"], b["x1"]):
            flipped += 1
            assert all(torch.equal(y[..., 1], -x[..., 1]) for x, y in pairs)  # every agent of the scene, together
    assert 0.2 * len(plain) < flipped < 0.8 * len(plain)


def test_spatial_groups_partition_agents():
    pos = np.random.default_rng(0).normal(size=(37, 2)) * 5
    groups = tj.spatial_groups(pos, 8)
    allidx = np.sort(np.concatenate(groups))
    assert np.array_equal(allidx, np.arange(37)) and max(len(g) for g in groups) <= 8


# -- loader errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, match", [
    ("1 2 3.0\n", "expected 4"),
    ("1 2 a 4\n", "must be numbers"),
    ("1 2 nan 4\n", "non-finite"),
    ("10 1 0 0\n10 1 1 1\n", "duplicated"),
    ("", "no rows"),
])
def test_malformed_files_raise_clear_errors(tmp_path, text, match):
    f = tmp_path / "bad.txt"
    f.write_text(text)
    with pytest.raises(ValueError, match=match):
        tj.read_tracks(f)


def test_missing_split_folder_names_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="train,val,test"):
        tj.load_split(tmp_path, "eth", "test")


def test_dataframe_tracks():
    pd = pytest.importorskip("pandas")
    arr = _grid_tracks()
    df = pd.DataFrame(arr, columns=["frame", "agent", "x", "y"])
    assert np.array_equal(tj.tracks_from_dataframe(df), arr)
    with pytest.raises(ValueError, match="lacks the column"):
        tj.tracks_from_dataframe(df.drop(columns="y"))


# -- metrics -----------------------------------------------------------------------------------------
def test_metrics_on_hand_made_tracks():
    T = 12
    steps = torch.arange(1, T + 1, dtype=torch.float64)
    gt = torch.zeros(1, 2, T, 2, dtype=torch.float64)
    gt[0, 0, :, 0] = steps          # agent 0 walks +x at 1 m/step
    gt[0, 1, :, 1] = steps          # agent 1 walks +y
    pred = gt.unsqueeze(1).repeat(1, 2, 1, 1, 1)
    pred[0, 0, 0, :, 1] += 1.0      # sample 0: agent 0 off by 1 m everywhere, agent 1 exact
    pred[0, 1, 1, :, 0] += 2.0      # sample 1: agent 0 exact, agent 1 off by 2 m
    mask = torch.ones(1, 2, dtype=torch.float64)
    m = tj.min_ade_fde(pred, gt, mask)
    assert m["minADE"] == pytest.approx(0.0) and m["minFDE"] == pytest.approx(0.0)
    # joint: sample 0 costs (1 + 0) / 2, sample 1 costs (0 + 2) / 2 -> 0.5
    assert m["jointADE"] == pytest.approx(0.5) and m["jointFDE"] == pytest.approx(0.5)
    # an error growing linearly in time: ADE = mean(0.1 * j) = 0.65, FDE = 1.2
    pred2 = gt.unsqueeze(1).clone()
    pred2[0, 0, 0, :, 1] += 0.1 * steps
    m2 = tj.min_ade_fde(pred2, gt, mask)
    assert m2["minADE"] == pytest.approx((0.65 + 0) / 2) and m2["minFDE"] == pytest.approx(0.6)
    # padded agents do not count
    pad = torch.cat([pred2, torch.full_like(pred2[:, :, :1], 9.0)], 2)
    gpad = torch.cat([gt, torch.zeros_like(gt[:, :1])], 1)
    m3 = tj.min_ade_fde(pad, gpad, torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64))
    assert m3["minADE"] == pytest.approx(m2["minADE"])


def test_standard_error_of_min_fde_accumulates_exactly_over_batches():
    # K = 1 predictions that miss each agent's end point by a known distance d_i (agents split over scenes,
    # padding included): minFDE_1 = mean(d) and its standard error = std(d, ddof=1) / sqrt(n)
    d = torch.tensor([0.5, 1.0, 3.0, 0.25, 2.0], dtype=torch.float64)
    gt = torch.zeros(3, 2, 12, 2, dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    pred = gt.clone()
    pred[mask.bool()] += torch.stack([torch.zeros_like(d), d], -1)[:, None, :]  # constant offset d_i in y
    pred[~mask.bool()] += 7.0                                                     # padding, must not count
    batches = [{"x1": gt[i:i + 1], "cond": {"mask": mask[i:i + 1], "pos": torch.zeros(1, 2, 2, dtype=torch.float64)},
                "pred": pred[i:i + 1]} for i in range(3)]
    it = iter(batches)
    out = tj.evaluate_predictor(lambda cond, k: next(it)["pred"][:, None], batches, k=1)
    assert out["minFDE_1"] == pytest.approx(float(d.mean()))
    assert out["minFDE_1_se"] == pytest.approx(float(d.std() / 5 ** 0.5))
    assert out["minADE_1_se"] == pytest.approx(float(d.std() / 5 ** 0.5))


def test_speed_bins_split_min_fde_by_each_agents_observed_speed():
    # five real agents (one padded slot) walking at known speeds along x, each predicted with a known final
    # miss d_i; bins cut at 0.1 and 0.5 m/step: agents at 0.02, 0.05 | 0.3 | 0.8, 1.2; a fourth bin stays empty
    speeds = torch.tensor([[0.02, 0.3, 0.8], [0.05, 1.2, 9.0]], dtype=torch.float64)
    d = torch.tensor([[0.5, 1.0, 3.0], [0.25, 2.0, 99.0]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
    steps = torch.arange(-7, 1, dtype=torch.float64)                       # last observed position at 0
    hist = torch.stack([speeds[..., None] * steps, torch.zeros(2, 3, 8, dtype=torch.float64)], -1)
    gt = torch.zeros(2, 3, 12, 2, dtype=torch.float64)
    pred = gt.clone()[:, None]
    pred[..., -1, 1] = d[:, None]                                         # only the final position misses
    batch = {"x1": gt, "cond": {"mask": mask, "pos": torch.zeros(2, 3, 2, dtype=torch.float64), "hist": hist}}
    out = tj.evaluate_predictor(lambda cond, k: pred, [batch], k=1, speed_bins=[0.1, 0.5, 2.0])
    assert out["agents/speed_<0.1"] == 2 and out["minFDE_1/speed_<0.1"] == pytest.approx(0.375)
    assert out["agents/speed_0.1-0.5"] == 1 and out["minFDE_1/speed_0.1-0.5"] == pytest.approx(1.0)
    assert out["agents/speed_0.5-2"] == 2 and out["minFDE_1/speed_0.5-2"] == pytest.approx(2.5)
    assert out["agents/speed_>=2"] == 0 and "minFDE_1/speed_>=2" not in out  # the padded agent is left out
    assert out["minADE_1/speed_0.5-2"] == pytest.approx(2.5 / 12)
    assert out["minFDE_1"] == pytest.approx(float(d[mask.bool()].mean()))
    with pytest.raises(ValueError, match="speed_bins"):
        tj.evaluate_predictor(lambda cond, k: pred, [batch], k=1, speed_bins=[0.5, 0.1])
    from sciflow.config import load_config

    with pytest.raises(ValueError, match="speed_bins"):  # refused with the config, before any training
        TrajectoryTask(load_config({"task": "trajectories", "data": {"sim_scenes": 10},
                                    "eval": {"speed_bins": [0.2, 0.2]}}))


def test_collision_rate_on_crossing_paths():
    T = 12
    s = torch.linspace(-3, 3, T)
    a = torch.stack([s, torch.zeros(T)], -1)            # along x through the origin
    b = torch.stack([torch.zeros(T), s], -1)            # along y through the origin: meet at t = T/2
    c = torch.stack([s, torch.full((T,), 5.0)], -1)     # parallel to a, 5 m away
    paths = torch.stack([a, b, c])[None, None]          # (1, 1, 3, T, 2)
    col = tj.collisions(paths, torch.ones(1, 3), radius=0.6)
    assert col["collided"] == 1 and col["pairs"] == 3


# -- baselines ---------------------------------------------------------------------------------------
def test_baselines_exact_on_straight_lines():
    v = torch.tensor([0.3, -0.4])
    obs = torch.arange(-7, 1, dtype=torch.float32)[:, None] * v   # ends at the origin
    fut = torch.arange(1, 13, dtype=torch.float32)[:, None] * v
    hist = obs[None, None]
    assert torch.allclose(tj.constant_velocity(hist)[0, 0], fut, atol=1e-5)
    assert torch.allclose(tj.linear_fit(hist)[0, 0], fut, atol=1e-5)
    s = tj.cvm_sampled(hist, k=5, sigma_deg=0.0)
    assert s.shape == (1, 5, 1, 12, 2) and torch.allclose(s[0, 3, 0], fut, atol=1e-5)
    # CVM-S keeps the speed and rotates the heading
    s = tj.cvm_sampled(hist, k=50, sigma_deg=30.0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(s[..., -1, :].norm(dim=-1), fut[-1].norm().expand(1, 50, 1), atol=1e-4)
    assert s[0, :, 0, -1].std(0).sum() > 0.5


def test_linear_fit_averages_noise_unlike_constant_velocity():
    obs = torch.tensor([[0.0, 0], [1, 0], [2, 0], [3, 0], [4, 0], [5, 0], [6.5, 0], [7, 0]]) - torch.tensor([7.0, 0])
    lin = tj.linear_fit(obs[None])[0]
    cv = tj.constant_velocity(obs[None])[0]
    assert cv[-1, 0] == pytest.approx(0.5 * 12)
    assert 0.9 < (lin[-1, 0] - lin[-2, 0]).item() < 1.1  # the fitted slope is close to 1 m/step


# -- task and model ----------------------------------------------------------------------------------
def _task(model=None, **data):
    from sciflow.config import load_config

    cfg = load_config({"task": "trajectories", "data": {"sim_scenes": 40, **data},
                       "model": {"d_model": 32, "depth": 1, "heads": 2, "time_dim": 16, **(model or {})},
                       "sample": {"sampler": "euler", "steps": 4}})
    return TrajectoryTask(cfg)


def test_config_errors():
    from sciflow.config import ConfigError

    with pytest.raises(ConfigError, match="scene"):
        _task(source="eth_ucy")
    with pytest.raises(ConfigError, match="unknown key 'data.foo'"):
        _task(foo=1)
    with pytest.raises(FileNotFoundError, match="data.root|no folder"):
        _task(source="eth_ucy", scene="eth", root="/nonexistent").train_dataset()


@pytest.mark.parametrize("interaction", ["distance", "relative"])
def test_padded_agents_cost_nothing_and_stay_zero(interaction):
    task = _task(model={"interaction": interaction})
    flow = task.build_flow()
    ds = task.train_dataset()
    item = ds[0]
    n = item["x1"].shape[0]
    big = {"x1": torch.zeros(n + 3, 12, 2), "cond": {"hist": torch.zeros(n + 3, 8, 2), "pos": torch.zeros(n + 3, 2)}}
    one = task.collate([item])
    padded = task.collate([item, big])
    assert padded["x1"].shape[1] == n + 3 and padded["cond"]["mask"][0].sum() == n
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    x0 = flow.sample_source(1, cond=one["cond"], generator=g1)
    x0p = torch.zeros(1, n + 3, 12, 2)
    x0p[:, :n] = x0
    t = torch.full((1,), 0.3)
    cond1 = one["cond"]
    condp = {k: v[:1] for k, v in padded["cond"].items()}
    out1 = flow.model(0.7 * one["x1"] + 0.3 * x0, t, cond1)
    outp = flow.model(0.7 * padded["x1"][:1] + 0.3 * x0p, t, condp)
    assert torch.allclose(outp[:, :n], out1, atol=1e-5)      # padding does not change real agents
    assert (outp[:, n:] == 0).all()                          # and padded outputs are exactly zero
    lp = flow.loss_per_example(padded["x1"][:1], condp, x0=x0p, generator=g2)
    l1 = flow.loss_per_example(one["x1"], cond1, x0=x0, generator=torch.Generator().manual_seed(0))
    assert lp.item() * (n + 3) == pytest.approx(l1.item() * n, rel=1e-4)
    # with the task's mask weights the padded scene's loss is the mean over its real agents only
    w = task.loss_weight({"x1": padded["x1"][:1], "cond": condp})
    assert w.shape == (1, n + 3, 1, 1)
    lw = flow.loss_per_example(padded["x1"][:1], condp, x0=x0p, generator=torch.Generator().manual_seed(0),
                               weight=w)
    assert lw.item() == pytest.approx(l1.item(), rel=1e-4)
    src = flow.sample_source(2, cond=padded["cond"])
    assert (src[0, n:] == 0).all()


def test_relative_interaction_biases_see_neighbours_from_the_query_heading():
    torch.manual_seed(0)
    net = tj.AgentTransformer(d_model=16, heads=2, depth=2, time_dim=8, interaction="relative")
    hist = torch.cumsum(torch.randn(2, 4, 8, 2) * 0.3, 2)
    hist = hist - hist[:, :, -1:]
    pos = torch.randn(2, 4, 2) * 3
    v = hist[:, :, -1] - hist[:, :, -2]
    theta = torch.atan2(v[..., 1], v[..., 0])
    dist = (pos.unsqueeze(1) - pos.unsqueeze(2)).norm(dim=-1)
    biases = net._pair_biases(pos, v, theta, dist)
    assert len(biases) == 2 and biases[0].shape == (2, 2, 4, 4)
    a = 1.1  # rotating the whole scene rotates every heading by the same angle: biases are unchanged
    rot = net._pair_biases(tj.rotate(pos, a), tj.rotate(v, a), theta + a, dist)
    assert all(torch.allclose(b, r, atol=1e-5) for b, r in zip(biases, rot))
    # a neighbour ahead of agent 0 and the same neighbour behind it get different biases
    pos2 = pos.clone()
    pos2[:, 1] = 2 * pos[:, 0] - pos[:, 1]
    flipped = net._pair_biases(pos2, v, theta, (pos2.unsqueeze(1) - pos2.unsqueeze(2)).norm(dim=-1))
    assert not torch.allclose(biases[0][:, :, 0, 1], flipped[0][:, :, 0, 1], atol=1e-4)
    with pytest.raises(ValueError, match="interaction"):
        tj.AgentTransformer(interaction="graph")


def test_mode_attention_starts_as_the_plain_network_then_couples_only_an_agents_own_codes():
    torch.manual_seed(0)
    C, B, N = 3, 2, 4
    plain = tj.AgentTransformer(d_model=16, heads=2, depth=2, time_dim=8, interaction="relative")
    modes = tj.AgentTransformer(d_model=16, heads=2, depth=2, time_dim=8, interaction="relative", modes=C)
    missing = modes.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("mode_blocks.") for k in missing)
    hist = torch.cumsum(torch.randn(B, N, 8, 2) * 0.3, 2)
    cond = {"hist": hist - hist[:, :, -1:], "pos": torch.randn(B, N, 2) * 3, "mask": torch.ones(B, N)}
    rep = {k: v.repeat_interleave(C, 0) for k, v in cond.items()}  # scene-major, as the codebook prior draws
    x, t = torch.randn(B * C, N, 12, 2), torch.zeros(B * C)
    assert torch.allclose(modes(x, t, rep), plain(x, t, rep), atol=1e-6)  # zero-initialised: same field
    for blk in modes.mode_blocks:
        torch.nn.init.normal_(blk.out.weight, std=0.3)
    out = modes(x, t, rep)
    x2 = x.clone()
    x2[1, 2] += 1.0  # scene 0, code 1, agent 2
    diff = (modes(x2, t, rep) - out).abs().amax(dim=(-1, -2))  # (B*C, N)
    assert diff[:C, 2].min() > 1e-4  # every code of that agent sees the change
    assert diff[C:].max() < 1e-6  # another scene does not
    # other agents of the same scene only through agent attention: in the plain network code 0 of agent 2
    # would not move at all
    assert (plain(x2, t, rep) - plain(x, t, rep)).abs()[0, 2].max() < 1e-6
    with pytest.raises(ValueError, match="multiple of 3"):
        modes(x[:4], t[:4], {k: v[:4] for k, v in rep.items()})
    with pytest.raises(ValueError, match="copies of one scene"):
        modes(x, t, {k: v.repeat(C, *[1] * (v.dim() - 1)) for k, v in cond.items()})  # scenes interleaved
    with pytest.raises(ValueError, match="modes must be >= 2"):
        tj.AgentTransformer(modes=1)
    from sciflow.config import ConfigError
    with pytest.raises(ConfigError, match="prior_codes"):
        _task(model={"mode_attention": True})


def test_sample_futures_shapes_and_masking():
    task = _task()
    flow = task.build_flow().eval()
    batch = task.collate([task.val_dataset()[i] for i in range(3)])
    fut = tj.sample_futures(flow, batch["cond"], k=5, sampler="euler", steps=3)
    N = batch["cond"]["mask"].shape[1]
    assert fut.shape == (3, 5, N, 12, 2)
    assert (fut[batch["cond"]["mask"][:, None].expand(3, 5, N) == 0] == 0).all()


def test_model_trained_briefly_on_simulator_beats_constant_velocity(one_thread):
    torch.manual_seed(0)
    from sciflow.config import load_config

    cfg = load_config({"task": "trajectories", "data": {"sim_scenes": 150},
                       "model": {"d_model": 64, "depth": 2, "heads": 4, "time_dim": 32},
                       "sample": {"sampler": "euler", "steps": 8}, "eval": {"max_scenes": 64, "batch_size": 32}})
    task = TrajectoryTask(cfg)
    flow = task.build_flow()
    dl = torch.utils.data.DataLoader(task.train_dataset(), batch_size=32, shuffle=True, collate_fn=task.collate)
    opt = torch.optim.Adam(flow.parameters(), 2e-3)
    step = 0
    while step < 200:  # tiny manual loop (tests only; real training is sciflow.training)
        for b in dl:
            loss = flow.loss(b["x1"], b["cond"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step >= 200:
                break
    flow.eval()
    loader = task.eval_loader()
    g = torch.Generator().manual_seed(0)
    ours = tj.evaluate_predictor(task.flow_predictor(flow, g), loader, k=20)
    cv = tj.evaluate_predictor(tj.baseline_predictor("constant_velocity"), loader, k=20)
    assert ours["minADE_20"] < 0.8 * cv["minADE_20"]
    assert ours["minFDE_20"] < 0.8 * cv["minFDE_20"]


def test_constant_velocity_on_eth_matches_reference():
    # Constant velocity on the eth test scene, every agent in every 20-frame window (Social-GAN rule).
    w = tj.load_split(shared_data("eth_ucy"), "eth", "test")
    loader = torch.utils.data.DataLoader(tj.TrajectoryDataset(w), batch_size=64, collate_fn=tj.collate_scenes)
    r = tj.evaluate_predictor(tj.baseline_predictor("constant_velocity"), loader, k=1)
    assert r["minADE_1"] == pytest.approx(1.075, abs=0.01) and r["minFDE_1"] == pytest.approx(2.282, abs=0.01)


def test_final_position_clustering_keeps_one_sample_per_mode():
    # 3 well-separated endpoint modes, 30 samples each; K = 3 must return one sample from each mode
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[5.0, 0.0], [0.0, 5.0], [-5.0, 0.0]])
    ends = centres.repeat_interleave(30, 0) + 0.1 * torch.randn(90, 2, generator=g)
    ends = ends[torch.randperm(90, generator=g)]
    ramp = torch.linspace(1 / 12, 1, 12)[:, None]
    samples = (ramp[None] * ends[:, None, :])[None, :, None]  # (1, 90, 1, 12, 2)
    out = tj.final_position_clustering(samples, 3)
    assert out.shape == (1, 3, 1, 12, 2)
    got = out[0, :, 0, -1]
    nearest = torch.cdist(got, centres).argmin(-1)
    assert sorted(nearest.tolist()) == [0, 1, 2]
    assert torch.cdist(got, centres).min(-1).values.max() < 0.5
    # every kept future is one of the input samples (no averaging of trajectories)
    flat = samples[0, :, 0].reshape(90, -1)
    assert all((flat - out[0, k, 0].reshape(1, -1)).abs().sum(-1).min() < 1e-6 for k in range(3))
    # keep="mean": each kept future is the mean trajectory of its mode's 30 members
    mean = tj.final_position_clustering(samples, 3, keep="mean")[0, :, 0]
    modes = torch.cdist(ends, centres).argmin(-1)
    for k in range(3):
        mode = torch.cdist(mean[k, -1:], centres).argmin().item()
        expect = samples[0, modes == mode, 0].mean(0)
        assert torch.allclose(mean[k], expect, atol=1e-5)
    with pytest.raises(ValueError, match="keep"):
        tj.final_position_clustering(samples, 3, keep="median")


def test_teacher_samples_use_the_evaluation_temperature_and_padded_imle_loss_ignores_padding():
    from sciflow.config import load_config
    from sciflow.distill import imle_loss

    def task_with(scale):
        cfg = load_config({"task": "trajectories", "data": {"sim_scenes": 40},
                           "model": {"d_model": 32, "depth": 1, "heads": 2, "time_dim": 16},
                           "sample": {"sampler": "euler", "steps": 2}, "eval": {"noise_scale": scale}})
        return TrajectoryTask(cfg)

    torch.manual_seed(0)
    cold, hot = task_with(1.0), task_with(3.0)
    flow = cold.build_flow().eval()
    batch = cold.collate([cold.val_dataset()[i] for i in range(3)])
    cond, mask = batch["cond"], batch["cond"]["mask"]
    a = cold.teacher_samples(flow, cond, 50, generator=torch.Generator().manual_seed(0))
    b = hot.teacher_samples(flow, cond, 50, generator=torch.Generator().manual_seed(0))
    N = mask.shape[1]
    assert a.shape == (3, 50, N, 12, 2)
    real = mask[:, None, :, None, None].expand_as(a) > 0
    assert (a[~real] == 0).all() and (b[~real] == 0).all()
    # 3x the source noise: the spread of the sampled endpoints grows (the untrained field is ~linear in x0)
    spread = lambda x: x[..., -1, :].std(dim=1)[mask > 0].mean()
    assert spread(b) > 1.5 * spread(a)
    # IMLE on padded scenes: adding padded agents to the targets changes nothing
    w = cold.loss_weight(batch).unsqueeze(1)
    l1 = imle_loss(flow, a, cond, candidates=4, weight=w, generator=torch.Generator().manual_seed(1))
    a2 = a.clone()
    a2[~real] = 5.0  # garbage in padded slots must not reach the loss
    l2 = imle_loss(flow, a2, cond, candidates=4, weight=w, generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(l1) and l1.item() == pytest.approx(l2.item(), rel=1e-5)


def test_codebook_prior_gives_every_scene_all_codes_in_each_agents_heading_frame():
    from sciflow.domains.trajectories.task import TrajectoryPrior, repeat_cond

    C, T = 5, 12
    prior = TrajectoryPrior(T, codes=C, std=1.0)
    g = torch.Generator().manual_seed(0)
    hist = torch.cumsum(torch.randn(2, 3, 8, 2, generator=g), dim=2)
    hist = hist - hist[:, :, -1:]
    cond = {"hist": hist, "mask": torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])}
    rep = repeat_cond(cond, C)
    x0 = prior(2 * C, rep)
    noise = (x0 - tj.constant_velocity(rep["hist"], T) * rep["mask"][:, :, None, None]).view(2, C, 3, T, 2)
    ramp = torch.arange(1, T + 1) / T
    theta = tj.heading(hist)  # (2, 3)
    for b in range(2):
        for a in range(3 if b == 0 else 2):
            # undo the ramp and the agent's heading: code c for row c of every scene
            code = tj.rotate(noise[b, :, a] / ramp[:, None], -theta[b, a])
            assert torch.allclose(code, prior.codebook, atol=1e-5)
    assert (noise[1, :, 2] == 0).all()  # padded agent
    # the same codes again for a second draw, and a rotated scene gets rotated draws
    assert torch.equal(prior(2 * C, rep), x0)
    rot = {**rep, "hist": tj.rotate(rep["hist"], 0.7)}
    assert torch.allclose(prior(2 * C, rot), tj.rotate(x0, 0.7), atol=1e-5)
    with pytest.raises(ValueError, match="multiple of 5"):
        prior(7, {k: v[:7] for k, v in rep.items()})


def test_codebook_student_config_must_sample_exactly_its_codes():
    from sciflow.config import load_config

    base = {"task": "trajectories", "data": {"sim_scenes": 10}, "model": {"prior_codes": 20}}
    with pytest.raises(ValueError, match="eval.k \\* eval.oversample = 20"):
        TrajectoryTask(load_config({**base, "eval": {"k": 20, "oversample": 10}}))
    with pytest.raises(ValueError, match="eval.noise_scale = 1"):
        TrajectoryTask(load_config({**base, "eval": {"k": 20, "noise_scale": 1.25}}))
    TrajectoryTask(load_config({**base, "eval": {"k": 20}}))


@pytest.mark.parametrize("fde_weight", [1.0, 2.5])
def test_imle_distance_is_ade_plus_weighted_fde_over_real_agents(fde_weight):
    from sciflow.config import load_config

    task = TrajectoryTask(load_config({"task": "trajectories", "data": {"sim_scenes": 10},
                                       "model": {"imle_fde_weight": fde_weight}}))
    g = torch.Generator().manual_seed(0)
    y, x = torch.randn(3, 2, 4, 12, 2, generator=g), torch.randn(3, 5, 4, 12, 2, generator=g)
    w = torch.ones(3, 1, 4, 1, 1)
    w[1, :, 2:] = 0.0
    d = task.imle_distance(y, x, w)
    assert d.shape == (3, 2, 5)
    for gi, n in ((0, 4), (1, 2)):
        err = (y[gi, :, None, :n] - x[gi, None, :, :n]).norm(dim=-1)  # (S, M, n, T)
        assert torch.allclose(d[gi], err.mean(dim=(-1, -2)) + fde_weight * err[..., -1].mean(-1), atol=1e-5)
    # per-agent groups (distill.match_dims=1): padded groups cost nothing
    from sciflow.distill.imle import split_matched_dims

    wa = split_matched_dims(torch.broadcast_to(w, (3, 1, 4, 12, 2)), 1)
    da = task.imle_distance(split_matched_dims(y, 1), split_matched_dims(x, 1), wa)
    assert da.shape == (12, 2, 5) and (da.view(3, 4, 2, 5)[1, 2:] == 0).all()
    # model.imle_match=separate: the same two terms, returned apart so that each picks its own code
    sep = TrajectoryTask(load_config({"task": "trajectories", "data": {"sim_scenes": 10},
                                      "model": {"imle_fde_weight": fde_weight, "imle_match": "separate"}}))
    ds = sep.imle_distance(y, x, w)
    assert ds.shape == (2, 3, 2, 5) and torch.allclose(ds.sum(0), d, atol=1e-6)
    err = (y[0, :, None] - x[0, None]).norm(dim=-1)  # (S, M, N, T)
    assert torch.allclose(ds[1, 0], fde_weight * err[..., -1].mean(-1), atol=1e-5)


@pytest.mark.parametrize("mode_attention", [False, True])
def test_multiple_choice_student_distils_on_the_simulator(tmp_path, one_thread, monkeypatch, capsys, mode_attention):
    """sciflow distill with a codebook prior and the task's distance: runs, evaluates its 4 codes, records them,
    and matches with the distance of the overridden (student) config, not the teacher's. A student with mode
    attention starts from the teacher's weights plus its own new blocks, and says so."""
    from sciflow.training import train
    from sciflow.training.distill import distill

    fde_weights = []
    real_distance = TrajectoryTask.imle_distance

    def recording_distance(self, *args):
        fde_weights.append(self.model_cfg.imle_fde_weight)
        return real_distance(self, *args)

    monkeypatch.setattr(TrajectoryTask, "imle_distance", recording_distance)

    cfg = {"task": "trajectories", "data": {"sim_scenes": 30}, "run_dir": str(tmp_path / "t"),
           "model": {"d_model": 32, "depth": 1, "heads": 2, "time_dim": 16},
           "trainer": {"max_steps": 5, "batch_size": 8, "progress": False},
           "sample": {"sampler": "euler", "steps": 2}, "eval": {"k": 4, "plot": False, "baselines": False}}
    teacher = train(cfg, [], evaluate=False)
    res = distill(teacher.run_dir, ["distill.targets=data", "distill.match_dims=1", "distill.candidates=4",
                                    "distill.distance=task", "model.prior_codes=4", "distill.max_steps=3",
                                    "distill.batch_size=4", "trainer.progress=false", "model.imle_fde_weight=3",
                                    f"model.mode_attention={str(mode_attention).lower()}"])
    assert set(fde_weights) == {3.0}
    assert ("keep their own initialisation: ['model.mode_blocks.0']" in capsys.readouterr().out) == mode_attention
    assert hasattr(res.flow.model, "mode_blocks") == mode_attention
    m = res.metrics
    assert m["codes"] == 4 and m["nfe_per_sample"] == 1 and np.isfinite(m["minFDE_4"])
    assert res.flow.source.codes == 4


@pytest.mark.parametrize("student_nfe,label,codes", [(1, "one-step student (IMLE, 1 NFE)", None), (5, "student (IMLE, 5 NFE)", None),
                                                    (1, "one-step multiple-choice student (20 fixed codes, 1 NFE)", 20)])
def test_benchmark_table_labels_students_by_their_nfe_and_averages_folds(student_nfe, label, codes):
    from sciflow.domains.trajectories.benchmark import _markdown

    def metrics(ade, fde):
        m = {"minADE_20": ade, "minFDE_20": fde, "jointADE_20": 1.0, "jointFDE_20": 2.0, "sec_per_scene": 0.1,
             "collision_rate": 0.0, "gt_collision_rate": 0.0, "scenes": 3, "agents": 7, "nfe_per_sample": 5,
             "oversample": 10, "noise_scale": 1.25, "fpc_keep": "mean", "steps": 10, "train_seconds": 1.0}
        m.update({f"student/{k}": v for k, v in m.items()})
        m.update({"student/nfe_per_sample": student_nfe, "student/distill_steps": 3, "student/distill_seconds": 2.0,
                  "student/minFDE_20": fde / 2})
        if codes:
            m["student/codes"] = codes
        return m

    md = _markdown({"eth": metrics(0.5, 1.0), "zara1": metrics(0.2, 0.4)}, ["eth", "zara1"],
                   {"name": "t", "distill": ["distill.max_steps=3"]}, "BENCHMARKS.md")
    flow_row = next(line for line in md.splitlines() if line.startswith("| **sciflow flow"))
    assert flow_row.endswith("| 0.350 / 0.700 |")                     # the average of the two folds, 3 decimals
    student_row = next(line for line in md.splitlines() if label in line)
    assert student_row.endswith("| 0.350 / 0.350 |")
    assert "published" not in md                                      # two folds: no five-fold averages
    assert "all windows of the test scene" in " ".join(md.split())                     # metrics without min_agents: rule 1
    two = {s: {**metrics(0.2, 0.4), "min_agents": 2} for s in ("eth", "zara1")}
    md2 = _markdown(two, ["eth", "zara1"], {"name": "t"}, "BENCHMARKS.md")
    assert "at least two such agents (the Social-GAN loader's rule) of the test scene" in " ".join(md2.split())
    assert "Standard error" not in md2                                 # results stored without errors: no line
    three = {s: {**metrics(0.2, 0.4), "student/minADE_20_se": 0.03, "student/minFDE_20_se": se}
             for s, se in (("eth", 0.08), ("zara1", 0.06))}
    md3 = " ".join(_markdown(three, ["eth", "zara1"], {"name": "t", "distill": []}, "BENCHMARKS.md").split())
    # the average of two independent folds: sqrt(0.08^2 + 0.06^2) / 2 = 0.05; sqrt(2 * 0.03^2) / 2 = 0.021
    assert "eth 0.030 / 0.080, zara1 0.030 / 0.060; of the average 0.021 / 0.050" in md3
    assert "observed speed" not in md3                                 # results stored without speed bins
    binned = {s: {**metrics(0.2, 0.4), "agents/speed_<0.2": 4.0, "minFDE_20/speed_<0.2": 0.1,
                  "student/minFDE_20/speed_<0.2": 0.05, "agents/speed_>=0.2": 0.0} for s in ("eth", "zara1")}
    md4 = _markdown(binned, ["eth", "zara1"], {"name": "t", "distill": []}, "BENCHMARKS.md")
    assert "| fold | speed <0.2 | speed >=0.2 |" in md4 and "| eth | 0.10 / 0.05 (4) | (0) |" in md4
    # the mode-attention sentence follows the suite's distill overrides, and only for a codebook student
    suite = {"name": "t", "distill": ["model.prior_codes=20", "model.mode_attention=true"]}
    md5 = " ".join(_markdown({"eth": metrics(0.5, 1.0)}, ["eth"], suite, "BENCHMARKS.md").split())
    assert ("attends over the codes of each agent (mode attention)" in md5) == bool(codes)


def _tiny_eth_ucy(root):
    """Five scenes x three splits of straight walkers (frame, agent, x, y at 10-frame steps)."""
    for i, scene in enumerate(tj.SCENES):
        for split in ("train", "val", "test"):
            folder = root / scene / split
            folder.mkdir(parents=True)
            lines = [f"{10 * f}\t{a}\t{0.3 * f * (1 + 0.1 * i) + a}\t{0.5 * a + 0.05 * f}"
                     for f in range(24) for a in range(3)]
            (folder / f"{scene}_{split}.txt").write_text("\n".join(lines) + "\n")


def test_benchmark_resume_reuses_finished_folds_and_retrains_changed_ones(tmp_path, monkeypatch):
    import sciflow.training
    import sciflow.training.distill
    from sciflow.domains.trajectories.benchmark import run

    _tiny_eth_ucy(tmp_path / "data")
    suite = {"root": str(tmp_path / "data"), "scenes": ["hotel"], "run_root": str(tmp_path / "runs"), "resume": True,
             "overrides": ["trainer.max_steps=2", "trainer.batch_size=2", "model.d_model=16", "model.depth=1",
                           "model.heads=2", "model.time_dim=16", "sample.steps=2", "eval.oversample=1",
                           "eval.plot=false"],
             "distill": ["distill.max_steps=2", "distill.batch_size=2"]}
    md = str(tmp_path / "B.md")
    first = run(suite, md)["results"]["hotel"]
    assert (tmp_path / "runs" / "hotel" / "distill" / "metrics.json").exists()
    assert first["steps"] == 2 and first["student/distill_steps"] == 2

    calls = []
    real_train, real_distill = sciflow.training.train, sciflow.training.distill.distill
    monkeypatch.setattr(sciflow.training, "train", lambda *a, **k: calls.append("train") or real_train(*a, **k))
    monkeypatch.setattr(sciflow.training.distill, "distill",
                        lambda *a, **k: calls.append("distill") or real_distill(*a, **k))
    again = run(suite, md)["results"]["hotel"]
    assert calls == [] and again == first
    longer = run({**suite, "distill": ["distill.max_steps=3", "distill.batch_size=2"]}, md)["results"]["hotel"]
    assert calls == ["distill"] and longer["student/distill_steps"] == 3 and longer["steps"] == 2


def test_benchmark_seeds_train_each_fold_per_seed_and_report_their_mean_and_spread(tmp_path):
    import json

    from sciflow.domains.trajectories.benchmark import run

    _tiny_eth_ucy(tmp_path / "data")
    suite = {"root": str(tmp_path / "data"), "scenes": ["hotel", "zara1"], "run_root": str(tmp_path / "runs"),
             "resume": True, "seeds": [3, 4], "name": "t",
             "overrides": ["trainer.max_steps=2", "trainer.batch_size=2", "model.d_model=16", "model.depth=1",
                           "model.heads=2", "model.time_dim=16", "sample.steps=2", "eval.oversample=1",
                           "eval.plot=false", "eval.baselines=false"]}
    md_path = tmp_path / "B.md"
    out = run(suite, str(md_path))
    per_seed = json.loads((tmp_path / "runs" / "results_per_seed.json").read_text())
    assert sorted(per_seed) == ["3", "4"] and (tmp_path / "runs" / "zara1-seed4" / "metrics.json").exists()
    fde = {seed: [per_seed[seed][s]["minFDE_20"] for s in ("hotel", "zara1")] for seed in per_seed}
    assert fde["3"] != fde["4"]                                           # the seed reached the training
    for i, scene in enumerate(("hotel", "zara1")):
        assert out["results"][scene]["minFDE_20"] == pytest.approx((fde["3"][i] + fde["4"][i]) / 2)
    avg = {seed: sum(v) / 2 for seed, v in fde.items()}
    text = " ".join(md_path.read_text().split())
    assert "mean over 2 training seeds" in text and "seed 3 " in text
    mean, sd = (avg["3"] + avg["4"]) / 2, abs(avg["3"] - avg["4"]) / 2 ** 0.5
    assert f"mean {sum(out['results'][s]['minADE_20'] for s in ('hotel', 'zara1')) / 2:.3f} / {mean:.3f}" in text
    assert f"{sd:.3f} (the standard errors" in text
    with pytest.raises(ValueError, match="seeds must be a non-empty list of distinct integers"):
        run({**suite, "seeds": [1, 1]}, str(md_path))


def test_eval_speed_scale_scales_every_window_and_the_errors_of_constant_velocity():
    from sciflow.config import load_config

    def task(scale):
        return TrajectoryTask(load_config({"task": "trajectories", "data": {"sim_scenes": 20},
                                           "eval": {"k": 1, "speed_scale": scale}}))

    base, fast = next(iter(task(1.0).eval_loader())), next(iter(task(2.5).eval_loader()))
    assert torch.allclose(fast["x1"], 2.5 * base["x1"]) and torch.allclose(fast["cond"]["hist"], 2.5 * base["cond"]["hist"])
    cv = {s: tj.evaluate_predictor(tj.baseline_predictor("constant_velocity"), task(s).eval_loader(), k=1)
          for s in (1.0, 0.5)}
    assert cv[1.0]["minFDE_1"] > 0 and abs(cv[0.5]["minFDE_1"] - 0.5 * cv[1.0]["minFDE_1"]) < 1e-5


def test_train_splits_refit_on_train_and_val_holds_both_splits_windows():
    from sciflow.config import ConfigError

    refit = _task(sim_scenes=8, train_splits=["train", "val"])
    assert refit.data_cfg.train_splits == ("train", "val")
    n_train, n_val = len(refit.windows("train")), len(refit.windows("val"))
    assert n_train > n_val > 0
    assert len(refit.train_dataset()) == n_train + n_val
    assert len(_task(sim_scenes=8).train_dataset()) == n_train
    with pytest.raises(ConfigError, match="train_splits"):
        _task(train_splits=["train", "train"])
    with pytest.raises(ConfigError, match="train_splits"):
        _task(train_splits=["test"])
