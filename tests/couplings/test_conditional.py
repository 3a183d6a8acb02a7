"""Condition-aware OT never pairs across classes and is optimal inside each class."""
import numpy as np
import ot as pot
import pytest
import torch

from sciflow.couplings import build_coupling
from sciflow.couplings.ot import sq_euclidean_cost


@pytest.mark.parametrize("method", ["exact", "sparse", "auction", "sinkhorn"])
def test_no_pair_crosses_classes(method):
    g = torch.Generator().manual_seed(0)
    n = 90
    labels = torch.randint(0, 4, (n,), generator=g)
    x1 = torch.randn(n, 2, generator=g, dtype=torch.float64) + 3.0 * labels[:, None]
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    x0 = torch.cat([x0, labels[:, None].double()], 1)   # tag x0 rows with the class of their slot
    x1 = torch.cat([x1, labels[:, None].double()], 1)
    kw = {"epsilon": 0.01} if method == "sinkhorn" else {}
    y0, y1, c = build_coupling({"name": "conditional_ot", "method": method, **kw})(x0, x1, labels,
                                                                                    generator=torch.Generator().manual_seed(1))
    assert torch.equal(c, labels) and torch.equal(y1, x1)
    assert torch.equal(y0[:, 2].long(), labels)                        # x0 came from a slot of the same class
    if method in ("exact", "sparse"):
        for k in range(4):
            m = labels == k
            a, b = x0[m], x1[m]
            cc = sq_euclidean_cost(a, b).numpy()
            ref = (pot.emd(np.full(len(a), 1 / len(a)), np.full(len(a), 1 / len(a)), cc) * cc).sum()
            assert float((y0[m] - b).pow(2).sum(1).mean()) == pytest.approx(ref, rel=1e-9)


def test_continuous_condition_penalty_keeps_pairs_close_in_condition():
    g = torch.Generator().manual_seed(2)
    n = 60
    cond = torch.rand(n, 1, generator=g, dtype=torch.float64) * 10
    x1 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    idx = torch.arange(n, dtype=torch.float64)[:, None]
    y0, _, c = build_coupling("conditional_ot")(torch.cat([x0, idx], 1)[:, :2], x1, cond)
    # recover which slot each x0 came from
    src = torch.cdist(y0, x0).argmin(1)
    gap_pen = (cond[src] - cond).abs().mean()
    y0b, _, _ = build_coupling({"name": "conditional_ot", "cond_weight": 0.0})(x0, x1, cond)
    srcb = torch.cdist(y0b, x0).argmin(1)
    assert gap_pen < 0.2 * (cond[srcb] - cond).abs().mean()
    assert torch.equal(c, cond)


def test_conditional_errors():
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="needs cond"):
        build_coupling("conditional_ot")(x, x)
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        build_coupling("conditional_ot")(x, x, torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="equal batch"):
        build_coupling("conditional_ot")(torch.zeros(5, 2), x, torch.zeros(4, dtype=torch.long))
