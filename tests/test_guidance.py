"""Classifier-free guidance: the mix at w = 0 / 1 / w, condition dropping rates, null conditions."""
import pytest
import torch
from torch import nn

from sciflow import Flow
from sciflow.guidance import drop_condition, guided, null_condition
from sciflow.nn.mlp import MLP
from sciflow.spaces.euclidean import Euclidean


class ToyConditional(nn.Module):
    """v(x, t, c) = x * t + offset[c] with offset[-1] (the null label) = 0: unconditional field is x * t."""

    def __init__(self):
        super().__init__()
        self.offsets = nn.Parameter(torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 1.0]], dtype=torch.float64))
        self.calls = 0

    def forward(self, x, t, cond=None):
        self.calls += 1
        base = x * t[:, None]
        if cond is None:
            return base
        off = torch.where((cond >= 0)[:, None], self.offsets[cond.clamp(min=0)], torch.zeros_like(base))
        return base + off


def _inputs(n=5):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    t = torch.rand(n, generator=g, dtype=torch.float64)
    cond = torch.tensor([0, 1, 2, 1, 0])[:n]
    return x, t, cond


def test_guided_scales_0_and_1_and_linear_mix():
    m = ToyConditional()
    x, t, c = _inputs()
    uncond = m(x, t, null_condition(c))
    condo = m(x, t, c)
    torch.testing.assert_close(uncond, x * t[:, None])
    torch.testing.assert_close(guided(m, x, t, c, 0.0), uncond)
    torch.testing.assert_close(guided(m, x, t, c, 1.0), condo)
    for w in (0.5, 2.0, 4.0):
        torch.testing.assert_close(guided(m, x, t, c, w), uncond + w * (condo - uncond))
    # w = 3: the offset is amplified 3x
    torch.testing.assert_close(guided(m, x, t, c, 3.0) - uncond, 3 * m.offsets[c])


def test_guided_uses_one_batched_call_and_none_cond_passthrough():
    m = ToyConditional()
    x, t, c = _inputs()
    m.calls = 0
    guided(m, x, t, c, 2.5)
    assert m.calls == 1
    torch.testing.assert_close(guided(m, x, t, None, 7.0), x * t[:, None])


def test_flow_velocity_and_sample_with_guidance():
    m = ToyConditional()
    flow = Flow(m, space=Euclidean(2))
    x, t, c = _inputs()
    torch.testing.assert_close(flow.velocity(x, t, c, guidance_scale=0.0), flow.velocity(x, t, null_condition(c)))
    torch.testing.assert_close(flow.velocity(x, t, c, guidance_scale=1.0), m(x, t, c))
    # sampling dx/dt = x t + w * offset from x0: x(1) = e^{1/2} (x0 + w * offset * int_0^1 e^{-s^2/2} ds)
    x0 = torch.zeros(5, 2, dtype=torch.float64)
    out = flow.sample(x0=x0, cond=c, sampler="rk4", steps=50, guidance_scale=2.0)
    s = torch.linspace(0, 1, 20001, dtype=torch.float64)
    integral = torch.trapezoid(torch.exp(-s**2 / 2), s)
    expected = torch.exp(torch.tensor(0.5, dtype=torch.float64)) * 2.0 * m.offsets[c].detach() * integral
    torch.testing.assert_close(out.x, expected, rtol=1e-6, atol=1e-6)


def test_guidance_with_mlp_label_and_vector_conditions():
    torch.manual_seed(0)
    for kwargs, cond in [({"num_classes": 3}, torch.tensor([0, 2, 1])), ({"cond_dim": 4}, torch.randn(3, 4))]:
        net = MLP(2, hidden=16, depth=1, **kwargs)
        x, t = torch.randn(3, 2), torch.rand(3)
        u, c = net(x, t, null_condition(cond)), net(x, t, cond)
        assert torch.isfinite(u).all()
        torch.testing.assert_close(guided(net, x, t, cond, 0.0), u)
        torch.testing.assert_close(guided(net, x, t, cond, 1.5), u + 1.5 * (c - u), rtol=1e-5, atol=1e-5)


def test_null_condition_types():
    lab = torch.tensor([3, 0, 7])
    n = null_condition(lab)
    assert n.dtype == lab.dtype and n.shape == lab.shape and torch.all(n == -1)
    vec = torch.randn(4, 3, dtype=torch.float64)
    nv = null_condition(vec)
    assert nv.dtype == torch.float64 and nv.shape == (4, 3) and torch.isnan(nv).all()
    d = null_condition({"label": lab, "vec": vec})
    assert set(d) == {"label", "vec"} and torch.all(d["label"] == -1) and torch.isnan(d["vec"]).all()


def test_drop_condition_rate_and_rows():
    g = torch.Generator().manual_seed(0)
    lab = torch.randint(0, 5, (20000,), generator=g)
    for p in (0.1, 0.5):
        dropped = drop_condition(lab, p, generator=g)
        frac = (dropped == -1).float().mean().item()
        assert abs(frac - p) < 0.015
        kept = dropped != -1
        assert torch.equal(dropped[kept], lab[kept])
    vec = torch.randn(20000, 3, generator=g)
    dv = drop_condition(vec, 0.3, generator=g)
    nan_rows = torch.isnan(dv)
    # whole rows are dropped, never single entries
    assert torch.equal(nan_rows.all(-1), nan_rows.any(-1))
    assert abs(nan_rows.all(-1).float().mean().item() - 0.3) < 0.015
    assert torch.equal(dv[~nan_rows.any(-1)], vec[~nan_rows.any(-1)])


def test_drop_condition_edge_cases_and_reproducibility():
    lab = torch.arange(100)
    assert drop_condition(None, 0.5) is None
    assert drop_condition(lab, 0.0) is lab
    a = drop_condition(lab, 0.5, generator=torch.Generator().manual_seed(1))
    b = drop_condition(lab, 0.5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    # a mapping is dropped per component
    d = drop_condition({"a": lab, "b": lab.double()[:, None]}, 0.5, generator=torch.Generator().manual_seed(2))
    assert set(d) == {"a", "b"}


def test_flow_drops_condition_only_in_training():
    seen = []

    class Rec(ToyConditional):
        def forward(self, x, t, cond=None):
            seen.append(cond)
            return super().forward(x, t, cond)

    flow = Flow(Rec(), space=Euclidean(2), cond_dropout=0.4)
    x1 = torch.randn(4000, 2, dtype=torch.float64)
    cond = torch.randint(0, 3, (4000,))
    flow.train()
    flow.loss(x1, cond)
    assert abs((seen[-1] == -1).float().mean().item() - 0.4) < 0.03
    flow.eval()
    flow.loss(x1, cond)
    assert torch.equal(seen[-1], cond)


def test_drop_condition_drops_mapping_components_together():
    lab = torch.arange(10000)
    d = drop_condition({"a": lab, "b": lab.double()[:, None]}, 0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(d["a"] == -1, torch.isnan(d["b"][:, 0]))
