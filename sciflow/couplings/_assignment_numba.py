"""Compiled (numba) Gauss-Seidel auction with epsilon scaling and certified primal-dual gap.

Used by :func:`sciflow.couplings.solvers.assignment` as ``method="sparse_auction"``. Requires the optional
dependency ``numba``; importing this module without it raises ImportError.

Algorithm (Bertsekas, 1988, "The auction algorithm: a distributed relaxation method for the assignment
problem", Ann. Oper. Res. 14; Bertsekas & Castanon, 1991, "Parallel synchronous and asynchronous
implementations of the auction algorithm"; epsilon scaling as in Bertsekas, 1992, "Auction algorithms
for network flow problems: a tutorial introduction", Comput. Optim. Appl. 1), written for a *minimum*
cost assignment with column prices ``p``:

* Gauss-Seidel bidding: one unassigned row ``i`` at a time finds its best column ``j1`` (smallest
  ``C_ij + p_j``, value ``w1``) and a lower bound ``w2`` on the second-best value, raises
  ``p_j1 += w2 - w1 + eps`` and takes ``j1`` (evicting its previous owner). Using a *lower bound* on the
  second-best value keeps eps-complementary slackness (the winner's value ends at ``w2 + eps`` or less,
  within eps of every alternative) and every bid still raises a price by at least eps.
* Candidate lists: each row keeps the columns whose value was below a threshold ``thr_i`` when the list
  was built. Prices only increase, so every non-candidate column still has value ``>= thr_i``; a bid
  scans only the list when its best candidate is ``<= thr_i`` (then the best is exact and
  ``min(second candidate, thr_i)`` is a valid lower bound for ``w2``), otherwise the row is re-scanned
  densely and its list rebuilt. Bids therefore cost O(list) instead of O(B), with the same guarantees
  as the dense auction.
* Epsilon scaling: phases with eps divided by ``factor`` (prices kept, assignment reset). After each
  phase the dual bound ``D(p) = sum_i min_j (C_ij + p_j) - sum_j p_j <= optimum`` (weak LP duality) is
  evaluated exactly (candidate minima, dense re-scan of rows whose bound is not certified) and the solver
  stops once ``primal - D <= tol * |D|``: for non-negative costs the returned assignment costs at most
  ``(1 + tol)`` times the optimum.
* Warm start: optional initial prices (the coupling passes the dual potential of the Gaussian (affine
  Brenier map) approximation of the two batches), then a Hungarian row/column reduction, which makes the
  first dual bound exact for those prices and sets the first eps relative to ``D / B``.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _rebuild(C, i, p, kmax, k, cand, cc, cnt, thr, delta, lb):
    """Dense scan of row i: exact best/second value and column; new candidate list
    ``{j : C_ij + p_j < t}`` with ``t ~ best + delta_i`` (at most ``kmax`` entries); ``thr_i = t``."""
    n = C.shape[1]
    best = np.inf
    second = np.inf
    jb = 0
    t = lb + delta[i]  # lb <= current best: one pass builds the list and finds the bid
    c = 0
    over = False
    for j in range(n):
        v = C[i, j] + p[j]
        if v < second:
            if v < best:
                second = best
                best = v
                jb = j
            else:
                second = v
        if v < t:
            if c < kmax:
                cand[i, c] = j
                cc[i, c] = C[i, j]
                c += 1
            else:
                over = True
    if over:
        delta[i] *= 0.5
    elif c < 2:  # the lower bound was stale: redo around the true best with a wider radius
        over = True
        delta[i] *= 1.5
    while over:
        t = best + delta[i]
        c = 0
        over = False
        for j in range(n):
            v = C[i, j] + p[j]
            if v < t:
                if c == kmax:
                    over = True
                    delta[i] *= 0.5
                    break
                cand[i, c] = j
                cc[i, c] = C[i, j]
                c += 1
    cnt[i] = c
    thr[i] = t
    if c < k // 2:
        delta[i] *= 1.5
    elif c > 2 * k:
        delta[i] *= 0.75
    return best, second, jb


@njit(cache=True, nogil=True)
def _row_min(C, i, p, cand, cc, cnt, thr):
    """Exact ``min_j C_ij + p_j`` (from the candidates when certified by ``thr_i``, else dense)."""
    m = np.inf
    for t in range(cnt[i]):
        v = cc[i, t] + p[cand[i, t]]
        if v < m:
            m = v
    if m > thr[i]:
        for j in range(C.shape[1]):
            v = C[i, j] + p[j]
            if v < m:
                m = v
    return m


@njit(cache=True, nogil=True)
def auction_solve(C, p0, warm, tol, k, factor, eps0_rel, max_bids):
    """Square min-cost assignment of ``C`` (n, n), float64, finite. Returns
    ``(col, prices, certified_gap, bids, phases, ok)``; ``ok`` is False if ``max_bids`` was hit or eps
    reached its round-off floor before the gap certificate reached ``tol`` (the caller falls back)."""
    n = C.shape[0]
    p = p0.copy()
    # Hungarian reduction relative to the warm prices: u_i = min_j C_ij + p0_j, then lower every column
    # price so each column has a zero reduced cost. Gives a feasible dual with D(p) = sum u - sum p.
    u = np.empty(n)
    for i in range(n):
        m = np.inf
        for j in range(n):
            v = C[i, j] + p0[j]
            if v < m:
                m = v
        u[i] = m
    cm = np.full(n, np.inf)
    for i in range(n):
        for j in range(n):
            v = C[i, j] + p0[j] - u[i]
            if v < cm[j]:
                cm[j] = v
    scale = 0.0
    for j in range(n):
        p[j] = p0[j] - cm[j]
        scale = max(scale, abs(p[j]))
    spread = 0.0
    cmax = 0.0
    for i in range(n):
        for j in range(n):
            cmax = max(cmax, abs(C[i, j]))
            v = C[i, j] + p[j] - u[i]
            if v > spread:
                spread = v
    d0 = u.sum() - p.sum()
    k = max(2, min(k, n))
    kmax = min(4 * k, n)
    cand = np.empty((n, kmax), np.int64)
    cc = np.empty((n, kmax))
    cnt = np.zeros(n, np.int64)
    thr = np.empty(n)
    delta = np.empty(n)
    # initial list radius: the k-th smallest reduced cost of row 0, then adapted row by row
    r0 = np.empty(n)
    for j in range(n):
        r0[j] = C[0, j] + p[j] - u[0]
    d = np.partition(r0, min(k, n - 1))[min(k, n - 1)]
    if not d > 0:
        d = spread * 1e-3 + 1e-300
    for i in range(n):
        delta[i] = d
        _rebuild(C, i, p, kmax, k, cand, cc, cnt, thr, delta, u[i])
        d = delta[i]
    # eps floor: far above the float64 spacing of prices and costs so every bid changes a price
    eps_min = 1e-11 * (scale + cmax + spread) + 1e-300
    # first eps: relative to the mean dual value per row when warm prices were given (the bound is then
    # close to the optimum), else to the spread of the reduced costs (the Hungarian bound can be ~0)
    if warm and d0 > 0:
        eps = eps0_rel * d0 / n
    else:
        eps = 0.05 * spread
    eps = max(eps, eps_min)
    assign = np.full(n, -1, np.int64)
    owner = np.full(n, -1, np.int64)
    stack = np.empty(n, np.int64)
    bids = 0
    phases = 0
    gap = np.inf
    ok = True
    while True:
        phases += 1
        top = 0
        for i in range(n):
            assign[i] = -1
            owner[i] = -1
            stack[top] = n - 1 - i
            top += 1
        while top > 0:
            top -= 1
            i = stack[top]
            best = np.inf
            second = np.inf
            jb = -1
            for t in range(cnt[i]):
                j = cand[i, t]
                v = cc[i, t] + p[j]
                if v < second:
                    if v < best:
                        second = best
                        best = v
                        jb = j
                    else:
                        second = v
            if best <= thr[i]:
                if second > thr[i]:
                    second = thr[i]  # lower bound on the true second-best value
            else:
                best, second, jb = _rebuild(C, i, p, kmax, k, cand, cc, cnt, thr, delta, min(best, thr[i]))
            if second == np.inf:  # n == 1
                second = best
            p[jb] += second - best + eps
            bids += 1
            o = owner[jb]
            owner[jb] = i
            assign[i] = jb
            if o >= 0:
                assign[o] = -1
                stack[top] = o
                top += 1
            if bids > max_bids:
                ok = False
                break
        if not ok:
            break
        primal = 0.0
        for i in range(n):
            primal += C[i, assign[i]]
        dual = -p.sum()
        for i in range(n):
            dual += _row_min(C, i, p, cand, cc, cnt, thr)
        gap = (primal - dual) / max(abs(dual), 1e-300)
        if gap <= tol:
            break
        if eps <= eps_min:
            ok = False
            break
        eps = max(eps / factor, eps_min)
    return assign, p, gap, bids, phases, ok


def sparse_auction(cost: np.ndarray, prices=None, tol: float = 1e-2, k: int = 32, factor: float = 6.0,
                   eps0: float = 0.1, max_bids=None):
    """Numpy front end: ``cost`` (n, n) float array, optional warm ``prices`` (n,) for the columns.

    Returns ``(col, prices, certified_gap, ok)``; see :func:`auction_solve`.
    """
    c = np.ascontiguousarray(cost, dtype=np.float64)
    n = c.shape[0]
    p0 = np.zeros(n) if prices is None else np.ascontiguousarray(prices, dtype=np.float64)
    if max_bids is None:
        max_bids = 2000 * n + 10_000
    col, p, gap, _, _, ok = auction_solve(c, p0, prices is not None, float(tol), int(k), float(factor), float(eps0), int(max_bids))
    return col, p, float(gap), bool(ok)


@njit(cache=True, nogil=True)
def _sq_dists_t(y, xt, out):
    n, d = y.shape
    m = xt.shape[1]
    for i in range(n):
        for j in range(m):
            out[i, j] = 0.0
        for t in range(d):
            yt = y[i, t]
            for j in range(m):  # contiguous inner loop: vectorised by LLVM
                z = yt - xt[t, j]
                out[i, j] += z * z


def sq_dists(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``C_ij = |y_i - x_j|^2`` for (n, d) and (m, d) float64 arrays, fused (no n x m temporaries; the
    exact differences, not the |y|^2 + |x|^2 - 2 y.x expansion, so no cancellation)."""
    out = np.empty((y.shape[0], x.shape[0]))
    _sq_dists_t(np.ascontiguousarray(y, dtype=np.float64), np.ascontiguousarray(x.T, dtype=np.float64), out)
    return out


def warmup() -> None:
    """Compile (or load from numba's on-disk cache) once, so a training step never pays for it."""
    c = sq_dists(np.array([[0.0], [1.0], [2.5]]), np.array([[0.2], [1.0], [2.0]]))
    sparse_auction(c)
    sparse_auction(c, prices=np.zeros(3))
