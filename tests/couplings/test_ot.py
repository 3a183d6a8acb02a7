"""Minibatch OT couplings and solvers, checked against POT's exact network simplex (ot.emd)."""
import numpy as np
import ot as pot
import pytest
import torch

from sciflow.couplings import build_coupling
from sciflow.couplings.ot import assignment, auction, ot_plan, sinkhorn, sq_euclidean_cost


def _batches(n=64, d=3, shift=0.7, seed=0, event=None):
    g = torch.Generator().manual_seed(seed)
    shape = (n, *(event or (d,)))
    return torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64) + shift


def _emd_cost(x0, x1):
    c = sq_euclidean_cost(x0, x1).numpy()
    n0, n1 = c.shape
    return float((pot.emd(np.full(n0, 1 / n0), np.full(n1, 1 / n1), c) * c).sum())


def _pair_cost(x0, x1):
    return float((x0 - x1).flatten(1).pow(2).sum(1).mean())


@pytest.mark.parametrize("name,kw", [("exact_ot", {}), ("exact_ot", {"method": "sparse", "k": 3}),
                                     ("exact_ot", {"method": "exact"}), ("exact_ot", {"method": "emd"}),
                                     ("ot", {"method": "exact"})])
@pytest.mark.parametrize("d,shift", [(2, 0.0), (2, 1.5), (12, 0.3)])
def test_exact_couplings_reach_emd_optimum(name, kw, d, shift):
    x0, x1 = _batches(n=96, d=d, shift=shift, seed=d)
    cond = torch.arange(96)
    y0, y1, c = build_coupling({"name": name, **kw})(x0, x1, cond)
    assert torch.equal(y1, x1) and torch.equal(c, cond)               # data and cond keep their order
    assert sorted(map(tuple, y0.tolist())) == sorted(map(tuple, x0.tolist()))  # x0 permuted
    assert _pair_cost(y0, y1) == pytest.approx(_emd_cost(x0, x1), rel=1e-10, abs=1e-12)
    assert _pair_cost(y0, y1) < _pair_cost(x0, x1)


def test_exact_ot_on_multi_dim_events_and_float32():
    x0, x1 = _batches(n=40, event=(4, 3), seed=3)
    y0, y1, _ = build_coupling("exact_ot")(x0.float(), x1.float())
    assert y0.shape == (40, 4, 3) and y0.dtype == torch.float32
    assert _pair_cost(y0.double(), x1) == pytest.approx(_emd_cost(x0, x1), rel=1e-5)


def test_sparse_solver_certifies_optimum_with_tiny_candidate_lists():
    # k=1 candidates are far from enough: the dual check must add edges until optimal
    x0, x1 = _batches(n=120, d=2, shift=2.0, seed=4)
    cost = sq_euclidean_cost(x0, x1)
    col = assignment(cost, "sparse", k=1, max_rounds=50)
    assert torch.unique(col).numel() == 120
    assert float(cost[torch.arange(120), col].sum()) / 120 == pytest.approx(_emd_cost(x0, x1), rel=1e-10)


def test_auction_certified_gap():
    x0, x1 = _batches(n=80, d=4, shift=0.5, seed=5)
    cost = sq_euclidean_cost(x0, x1)
    opt = _emd_cost(x0, x1) * 80
    for tol in (1e-2, 1e-6):
        col, prices, gap = auction(cost, tol=tol)
        assert torch.unique(col).numel() == 80
        val = float(cost[torch.arange(80), col].sum())
        assert gap <= tol
        assert opt <= val + 1e-9 and val <= opt * (1 + gap) + 1e-9   # certificate really bounds the gap
    y0, _, _ = build_coupling({"name": "ot", "tol": 1e-3})(x0, x1)
    assert _pair_cost(y0, x1) <= _emd_cost(x0, x1) * (1 + 1e-3) + 1e-12


def test_unequal_batches():
    x0, _ = _batches(n=50, d=2, seed=6)
    _, x1 = _batches(n=20, d=2, seed=7)
    y0, y1, _ = build_coupling("exact_ot")(x0, x1)
    assert y0.shape == (20, 2) and torch.equal(y1, x1)
    assert len({tuple(r) for r in y0.tolist()}) == 20                 # distinct x0 for every x1
    # rectangular assignment cost equals the exact min over injective maps (brute check via LSA on POT)
    c = sq_euclidean_cost(x1, x0).numpy()
    from scipy.optimize import linear_sum_assignment
    r, cc = linear_sum_assignment(c)
    assert _pair_cost(y0, y1) == pytest.approx(c[r, cc].mean())
    # sampling from the exact (POT) plan for unequal sizes
    y0s, y1s, _ = build_coupling({"name": "exact_ot", "sample": True})(x0, x1, generator=torch.Generator().manual_seed(0))
    assert y0s.shape == (20, 2)
    with pytest.raises(ValueError, match="at least as many source"):
        build_coupling("exact_ot")(x1, x0)
    with pytest.raises(ValueError, match="square"):
        build_coupling({"name": "ot", "method": "auction"})(x0, x1)


def test_ot_plan_marginals_and_exact_plan():
    x0, x1 = _batches(n=30, d=2, seed=8)
    cost = sq_euclidean_cost(x0, x1)
    plan = ot_plan(cost, "exact")
    assert torch.allclose(plan.sum(0), torch.full((30,), 1 / 30, dtype=plan.dtype))
    assert float((plan * cost).sum()) == pytest.approx(_emd_cost(x0, x1))
    with pytest.raises(ValueError, match="unknown OT method"):
        ot_plan(cost, "hungarian")


def test_sinkhorn_plan_converges_to_marginals_and_approaches_emd():
    x0, x1 = _batches(n=50, d=2, seed=9)
    cost = sq_euclidean_cost(x0, x1)
    plan, f, g = sinkhorn(cost, epsilon=0.05, max_iter=3000, tol=1e-10)
    assert torch.allclose(plan.sum(1), torch.full((50,), 1 / 50, dtype=plan.dtype), atol=1e-8)
    assert torch.allclose(plan.sum(0), torch.full((50,), 1 / 50, dtype=plan.dtype), atol=1e-8)
    exact = _emd_cost(x0, x1)
    val = float((plan * cost).sum())
    assert exact <= val <= exact * 1.5
    # POT's log-domain Sinkhorn with the same absolute epsilon gives the same plan
    eps_abs = 0.05 * float(cost.mean())
    ref = pot.sinkhorn(np.full(50, 1 / 50), np.full(50, 1 / 50), cost.numpy(), eps_abs, method="sinkhorn_log",
                       numItermax=3000, stopThr=1e-10)
    assert np.abs(plan.numpy() - ref).max() < 1e-6
    # annealing reaches the same plan
    plan2, _, _ = sinkhorn(cost, epsilon=0.05, max_iter=3000, tol=1e-10, anneal=4.0)
    assert torch.allclose(plan, plan2, atol=1e-6)


def test_sinkhorn_coupling_sampling_is_seeded_and_float32():
    x0, x1 = _batches(n=64, d=2, seed=10)
    x0, x1 = x0.float(), x1.float()
    cp = build_coupling({"name": "sinkhorn", "epsilon": 0.01})
    a = cp(x0, x1, generator=torch.Generator().manual_seed(1))[0]
    b = cp(x0, x1, generator=torch.Generator().manual_seed(1))[0]
    assert torch.equal(a, b) and a.dtype == torch.float32
    assert _pair_cost(a, x1) < 0.5 * _pair_cost(x0, x1)               # much straighter than independent
    am = build_coupling({"name": "sinkhorn", "epsilon": 0.001, "sample": False, "max_iter": 3000})(x0, x1)[0]
    assert _pair_cost(am.double(), x1.double()) == pytest.approx(_emd_cost(x0.double(), x1.double()), rel=0.05)


def test_bad_inputs():
    with pytest.raises(ValueError, match="exact_ot method"):
        build_coupling({"name": "exact_ot", "method": "auction"})
    with pytest.raises(ValueError, match="event size"):
        build_coupling("exact_ot")(torch.zeros(3, 2), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="epsilon"):
        sinkhorn(torch.rand(3, 3), epsilon=0)
