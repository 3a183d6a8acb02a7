"""Product flows (continuous + discrete), categorical metrics and the discrete_sequences task."""
import math

import pytest
import torch
from torch import nn

from sciflow import Flow
from sciflow.metrics.categorical import (categorical_kl, categorical_reverse_kl, markov_log_likelihood,
                                         markov_perplexity, ngram_distance)
from sciflow.paths import AffinePath
from sciflow.paths.discrete import MixturePath
from sciflow.paths.product import ProductPath
from sciflow.spaces import Euclidean, ProductSpace, Tokens


class JointNet(nn.Module):
    """Dict state {"pos": (B, N, 3), "types": (B, N)} -> {"pos": velocity, "types": logits (B, N, V)}."""

    def __init__(self, n=4, v=3, hidden=64):
        super().__init__()
        self.n, self.v = n, v
        self.emb = nn.Embedding(v + 1, 8)
        self.net = nn.Sequential(nn.Linear(n * (3 + 8) + 1, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, n * (3 + v)))

    def forward(self, x, t, cond=None):
        b = t.shape[0]
        h = torch.cat([x["pos"].reshape(b, -1), self.emb(x["types"]).reshape(b, -1), t[:, None]], -1)
        out = self.net(h).reshape(b, self.n, 3 + self.v)
        return {"pos": out[..., :3], "types": out[..., 3:]}


def _data(n_items, gen):
    types = torch.randint(0, 3, (n_items, 4), generator=gen)
    pos = 2.0 * types.unsqueeze(-1).float() + 0.1 * torch.randn(n_items, 4, 3, generator=gen)  # pos tied to type
    return {"pos": pos, "types": types}


def test_product_flow_trains_and_samples_with_right_shapes():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    space = ProductSpace({"pos": Euclidean((4, 3)), "types": Tokens(4, 3)})
    path = ProductPath({"pos": (AffinePath(), "velocity"), "types": (MixturePath(3), "logits")},
                       weights={"types": 0.5})
    flow = Flow(JointNet(), space=space, path=path, prediction="product")
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    losses = []
    for _ in range(200):
        loss = flow.loss(_data(64, gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-30:]) / 30 < 0.6 * sum(losses[:30]) / 30
    res = flow.sample(256, sampler="product", steps=10, return_trajectory=True)
    assert set(res.x) == {"pos", "types"} and res.nfe == 10
    assert res.x["pos"].shape == (256, 4, 3) and res.x["pos"].dtype == torch.float32
    assert res.x["types"].shape == (256, 4) and res.x["types"].dtype == torch.long
    assert int(res.x["types"].max()) < 3 and int(res.x["types"].min()) >= 0
    assert res.trajectory["types"].shape == (11, 256, 4)
    # the joint structure is learned: positions follow their own types (vs types of other samples)
    err = (res.x["pos"].mean(-1) - 2.0 * res.x["types"].float()).abs().mean()
    shuffled = (res.x["pos"].mean(-1) - 2.0 * res.x["types"].roll(1, 0).float()).abs().mean()
    assert float(err) < 0.6 * float(shuffled)


def test_product_path_losses_and_errors():
    path = ProductPath({"pos": {"name": "affine", "prediction": "velocity"},
                        "types": {"name": "discrete_mixture", "vocab_size": 3, "prediction": "logits"}})
    x1 = {"pos": torch.randn(5, 4, 3), "types": torch.randint(0, 3, (5, 4))}
    x0 = ProductSpace({"pos": Euclidean((4, 3)), "types": Tokens(4, 3)}).random_base(5)
    s = path.sample(x0, x1, torch.rand(5))
    parts = path.component_losses({"pos": torch.zeros(5, 4, 3), "types": torch.zeros(5, 4, 3)}, s)
    assert set(parts) == {"pos", "types"}
    assert torch.allclose(parts["types"] * (s.x_t["types"] == 3).sum(-1) / 4 * 0 + parts["types"], parts["types"])
    total = path.loss({"pos": torch.zeros(5, 4, 3), "types": torch.zeros(5, 4, 3)}, s)
    assert torch.allclose(total, parts["pos"] + parts["types"])
    with pytest.raises(ValueError, match="components"):
        path.sample({"pos": x0["pos"]}, x1, torch.rand(5))
    with pytest.raises(ValueError, match="unknown components"):
        ProductPath({"a": AffinePath()}, weights={"b": 1.0})


def test_categorical_metrics_closed_form():
    target = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    samples = torch.tensor([0, 0, 1, 2])  # empirical == target
    assert abs(categorical_kl(samples, target)) < 1e-12
    samples = torch.tensor([0, 0, 0, 1])  # empirical (0.75, 0.25, 0)
    assert categorical_kl(samples, target) == math.inf
    rev = categorical_reverse_kl(samples, target)
    assert abs(rev - (0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(1.0))) < 1e-12
    x = torch.tensor([[0, 1, 0, 1]])
    assert ngram_distance(x, x, n=2) == 0.0
    assert abs(ngram_distance(x, torch.tensor([[2, 2, 2, 2]]), n=2, vocab_size=3) - 1.0) < 1e-12
    init = torch.tensor([0.5, 0.5], dtype=torch.float64)
    trans = torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=torch.float64)
    ll = markov_log_likelihood(torch.tensor([[0, 0, 1]]), init, trans)
    assert abs(float(ll) - math.log(0.5 * 0.9 * 0.1)) < 1e-12
    assert abs(markov_perplexity(torch.tensor([[0, 0, 1]]), init, trans) - math.exp(-float(ll) / 3)) < 1e-9
    with pytest.raises(ValueError, match="ids"):
        categorical_kl(torch.tensor([5]), target)


def test_discrete_task_builds_and_trains_a_few_steps(tmp_path):
    from sciflow.config import load_config
    from sciflow.registry import build

    cfg = load_config("configs/discrete/strings_tiny.yaml", [f"run_dir={tmp_path}"])
    task = build("task", "discrete_sequences", config=cfg)
    flow = task.build_flow()
    (x1,) = task.train_dataset()[:8]
    assert x1.dtype == torch.long and x1.shape == (8, 8)
    loss = flow.loss(x1)
    loss.backward()
    assert torch.isfinite(loss)
    metrics = task.evaluate(flow.eval(), tmp_path)
    assert {"ngram2_tv", "unigram_kl", "nfe"} <= set(metrics)
    assert (tmp_path / "samples.txt").read_text().count("\n") == 8
    cfg = load_config("configs/discrete/markov_dirichlet.yaml",
                      ["data.n_train=16", "data.length=8", "eval.n_samples=8", "sample.steps=3"])
    task = build("task", "discrete_sequences", config=cfg)
    flow = task.build_flow()
    (x1,) = task.train_dataset()[:4]
    assert x1.shape == (4, 8, 20) and torch.isfinite(flow.loss(x1))
    m = task.evaluate(flow.eval(), tmp_path)
    assert m["loglik_true"] > m["loglik_generated"] - 1e9 and m["nfe"] == 3


def test_task_rejects_bad_strings():
    from sciflow.config import load_config
    from sciflow.registry import build

    cfg = load_config("configs/discrete/strings_tiny.yaml", ["data.strings=[AB, ABC]"])
    with pytest.raises(ValueError, match="same length"):
        build("task", "discrete_sequences", config=cfg)
