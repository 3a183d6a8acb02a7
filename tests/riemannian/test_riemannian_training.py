"""Short training runs on known densities (sphere, SO(3)) and the Earth task/loader."""
import math

import pytest
import torch

from sciflow import Flow
from sciflow.datasets.earth import load_latlon_csv, random_split
from sciflow.nn.mlp import MLP
from sciflow.paths.geodesic import GeodesicPath
from sciflow.spaces import IGSO3, SO3, Sphere
from sciflow.spaces.so3 import exp_so3
from shared_data import shared_data




def _train(flow, data, steps, lr=3e-3, batch=128, seed=0):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(flow.parameters(), lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, data.shape[0], (batch,), generator=g)
        loss = flow.loss(data[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return flow


def test_short_run_on_wrapped_normal_on_sphere_reaches_distance_threshold():
    torch.manual_seed(0)
    sp = Sphere(2)
    mu = torch.tensor([[0.0, 0.6, 0.8]])
    v = sp.proj_tangent(mu.expand(4000, 3), 0.25 * torch.randn(4000, 3))
    data = sp.exp(mu.expand(4000, 3), v)
    flow = _train(Flow(MLP(3, hidden=64, depth=3), space=sp, path=GeodesicPath(sp)), data, 250)
    x = flow.sample(1000, sampler="midpoint", steps=20).x
    sp.check(x, "samples")
    d = sp.dist(x, mu.expand_as(x))
    ref = sp.dist(data, mu.expand_as(data)).mean()  # ~0.25 sqrt(pi/2) * (2/2) ~ 0.31
    assert abs(d.mean() - ref) < 0.15  # uniform samples would give pi/2
    mean_dir = sp.proj(x.mean(0, keepdim=True))
    assert sp.dist(mean_dir, mu) < 0.15


def test_short_run_on_igso3_on_so3_reaches_distance_threshold():
    torch.manual_seed(0)
    so3 = SO3()
    r0 = exp_so3(torch.tensor([[0.3, -1.2, 0.5]]))
    data = r0 @ IGSO3(0.3).sample(4000, generator=torch.Generator().manual_seed(0))
    flow = _train(Flow(MLP((3, 3), hidden=96, depth=3), space=so3, path=GeodesicPath(so3)), data, 250)
    x = flow.sample(1000, sampler="midpoint", steps=20).x
    so3.check(x, "samples")
    d = so3.dist(x, r0.expand_as(x))
    ref = so3.dist(data, r0.expand_as(data)).mean()  # ~0.47; Haar-uniform would give pi/2 + 2/pi ~ 2.21
    assert abs(d.mean() - ref) < 0.25


def test_earth_loader_reads_both_files_and_splits():
    volc = load_latlon_csv(shared_data("earth", "volcano.csv"))
    quake = load_latlon_csv(shared_data("earth", "earthquake.csv"))
    assert volc.shape == (827, 2) and quake.shape == (6120, 2)
    s = random_split(volc, (0.8, 0.1, 0.1), seed=3)
    assert [len(s[k]) for k in ("train", "val", "test")] == [662, 83, 82]
    s2 = random_split(volc, (0.8, 0.1, 0.1), seed=3)
    assert torch.equal(s["test"], s2["test"])
    assert not torch.equal(s["test"], random_split(volc, (0.8, 0.1, 0.1), seed=4)["test"])


@pytest.mark.parametrize("content,match", [
    ("a,b\n1,2\n", "must name a latitude column"),
    ("lat,lon\n1,abc\n", "line 2: longitude 'abc' is not a number"),
    ("# c\nLatitude,Longitude\n95,0\n", "line 3: latitude 95.0 outside"),
    ("lat,lon\n", "no data rows"),
    ("lat,lon\nnan,3\n", "NaN"),
])
def test_earth_loader_errors(tmp_path, content, match):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_latlon_csv(f)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_latlon_csv(tmp_path / "missing.csv")


def test_earth_task_builds_flow_and_evaluates(tmp_path):
    from sciflow.config import ConfigError, load_config
    from sciflow.registry import get

    cfg = load_config("configs/riemannian/earth_volcano.yaml",
                      [f"data.path={shared_data('earth', 'volcano.csv')}", "model.hidden=16", "model.depth=1", "eval.nll_steps=2", "eval.grid_lat=4", "eval.grid_lon=8",
                       "eval.grid_steps=2", "eval.n_samples=50", "sample.steps=2"])
    task = get("task", "earth")(cfg)
    assert len(task.train_dataset()) == 662 and len(task.val_dataset()) == 83
    flow = task.build_flow()
    assert isinstance(flow.path, GeodesicPath) and isinstance(flow.space, Sphere)
    loss = flow.loss(task.splits["train"][:32])
    assert loss.ndim == 0 and torch.isfinite(loss)
    m = task.evaluate(flow, tmp_path)
    assert math.isfinite(m["test_nll"]) and m["n_test"] == 82
    assert (tmp_path / "earth_samples.png").exists()
    with pytest.raises(ConfigError, match="flow.path: geodesic"):
        get("task", "earth")(load_config("configs/riemannian/earth_volcano.yaml", ["flow.path=affine"])).build_flow()
    with pytest.raises(ConfigError, match="split"):
        get("task", "earth")(load_config("configs/riemannian/earth_volcano.yaml", ["data.split=[0.5,0.5,0.5]"]))
