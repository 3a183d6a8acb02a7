"""Compiled sparse auction (method "sparse_auction"): certified gap vs POT's exact ot.emd optimum."""
import numpy as np
import ot as pot
import pytest
import torch

pytest.importorskip("numba")

from sciflow.couplings import build_coupling  # noqa: E402
from sciflow.couplings.ot import _gaussian_prices, assignment, sq_euclidean_cost  # noqa: E402


def _opt(c):
    n = c.shape[0]
    c = c.double().numpy()
    return float((pot.emd(np.full(n, 1 / n), np.full(n, 1 / n), c, numItermax=10**7) * c).sum()) * n


def _datasets():
    g = torch.Generator().manual_seed(0)
    n = 200
    k = torch.randint(0, 8, (n,), generator=g).double() * (2 * np.pi / 8)
    eight = 3.0 * torch.stack([k.cos(), k.sin()], -1) + 0.3 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(torch.arange(10.), torch.arange(20.), indexing="ij"), -1).reshape(-1, 2).double()
    line = torch.zeros(n, 2, dtype=torch.float64)
    line[:, 0] = torch.randn(n, generator=g, dtype=torch.float64)
    return {
        "gauss_shift_2d": (torch.randn(n, 2, generator=g, dtype=torch.float64),
                           torch.randn(n, 2, generator=g, dtype=torch.float64) + 0.5),
        "eight_gaussians": (torch.randn(n, 2, generator=g, dtype=torch.float64), eight),
        "gauss_32d": (torch.randn(n, 32, generator=g, dtype=torch.float64),
                      torch.randn(n, 32, generator=g, dtype=torch.float64) + 0.3),
        # degenerate 2-D: integer grid (massive ties), points on a line (singular covariance), duplicates
        "grid_vs_shifted_grid": (grid, grid + torch.tensor([0.5, 0.0], dtype=torch.float64)),
        "line_vs_gauss": (line, torch.randn(n, 2, generator=g, dtype=torch.float64)),
        "duplicates": (torch.randn(n, 2, generator=g, dtype=torch.float64).round(),
                       torch.randn(n, 2, generator=g, dtype=torch.float64).round()),
    }


@pytest.mark.parametrize("name", list(_datasets()))
@pytest.mark.parametrize("tol", [1e-2, 1e-4])
def test_coupling_within_certified_tol_of_emd(name, tol):
    x0, x1 = _datasets()[name]
    cost = sq_euclidean_cost(x0, x1)
    opt = _opt(cost)
    y0, y1, _ = build_coupling({"name": "ot", "method": "sparse_auction", "tol": tol})(x0, x1)
    assert torch.equal(y1, x1)
    assert sorted(map(tuple, y0.tolist())) == sorted(map(tuple, x0.tolist()))   # a permutation of x0
    val = float((y0 - y1).pow(2).sum(1).sum())
    assert opt - 1e-9 <= val <= opt * (1 + tol) + 1e-9


def test_assignment_without_warm_start_and_float32():
    x0, x1 = _datasets()["eight_gaussians"]
    cost = sq_euclidean_cost(x0.float(), x1.float())
    col = assignment(cost, "sparse_auction", tol=1e-3)
    assert col.dtype == torch.long and torch.unique(col).numel() == cost.shape[0]
    val = float(cost.double()[torch.arange(cost.shape[0]), col].sum())
    assert val <= _opt(cost) * (1 + 1e-3) + 1e-6
    y0, _, _ = build_coupling("ot")(x0.float(), x1.float())        # "auto" -> sparse_auction here
    assert y0.dtype == torch.float32 and y0.device == x0.device
    assert build_coupling("ot").method == "sparse_auction"


def test_zero_optimum_falls_back_to_exact():
    # identical batches: optimum 0, a relative certificate is impossible -> exact solver, cost exactly 0
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y0, y1, _ = build_coupling({"name": "ot", "method": "sparse_auction"})(x, x[torch.randperm(50)])
    assert float((y0 - y1).pow(2).sum()) == 0.0


def test_gaussian_prices_are_dual_feasible_and_tight_for_gaussian_maps():
    # columns x, rows y = A x + b exactly: u + v <= C everywhere with equality on the true pairs
    g = torch.Generator().manual_seed(2)
    x = torch.randn(60, 3, generator=g, dtype=torch.float64)
    a = torch.tensor([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 0.5]], dtype=torch.float64)
    y = x @ a + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    p = _gaussian_prices(x, y)
    red = sq_euclidean_cost(y, x) + p[None, :]       # rows y, columns x
    rowmin = red.min(1).values
    assert torch.allclose(red.diagonal(), rowmin, atol=1e-6)   # y_i's best column is its own preimage x_i


def test_sparse_auction_errors():
    with pytest.raises(ValueError, match="square"):
        assignment(torch.rand(3, 4), "sparse_auction")
    with pytest.raises(ValueError, match="equal batch sizes"):
        build_coupling({"name": "ot", "method": "sparse_auction"})(torch.randn(6, 2), torch.randn(4, 2))
    with pytest.raises(ValueError, match="factor"):
        assignment(torch.rand(4, 4), "sparse_auction", factor=1.0)
    with pytest.raises(ValueError, match="prices"):
        assignment(torch.rand(4, 4), "sparse_auction", prices=torch.zeros(3))
    assert assignment(torch.rand(1, 1), "sparse_auction").tolist() == [0]
