"""Closed-form oracles for stochastic interpolants with Gaussian-mixture end points.

x0 ~ sum_i w_i N(m_i, C_i), x1 ~ sum_j v_j N(n_j, D_j), z ~ N(0, I), all independent, and
x_t = a x0 + b x1 + gamma z. Given the component pair k = (i, j), (x0, x1, z, x_t) are jointly Gaussian:

    x_t | k ~ N(mu_k, S_k),  mu_k = a m_i + b n_j,  S_k = a^2 C_i + b^2 D_j + gamma^2 I.

With responsibilities pi_k(x) = w_i v_j N(x; mu_k, S_k) / sum(...) and r_k = S_k^{-1} (x - mu_k):

    score    s(x)  = -sum_k pi_k r_k
    drift    b(x)  = sum_k pi_k [a' m_i + b' n_j + (a' a C_i + b' b D_j + gamma gamma' I) r_k]
    velocity v(x)  = sum_k pi_k [a' m_i + b' n_j + (a' a C_i + b' b D_j) r_k]       (E[dI | x])
    E[z | x]       = sum_k pi_k gamma r_k,   E[x0 | x] = sum_k pi_k (m_i + a C_i r_k),
    E[x1 | x]      = sum_k pi_k (n_j + b D_j r_k).

(Conditional expectations of jointly Gaussian vectors: E[u | x, k] = E[u | k] + Cov(u, x_t | k) S_k^{-1} (x - mu_k).)
An affine path alpha x1 + sigma x0 is the case a = sigma, b = alpha, gamma = 0.
"""
from __future__ import annotations

import math
from typing import Dict, Sequence

import torch
from torch import nn


class GaussianMixture:
    """A Gaussian mixture in R^d: weights ``(K,)``, means ``(K, d)``, covariances ``(K, d, d)``."""

    def __init__(self, weights: Sequence[float], means, covs):
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.weights = self.weights / self.weights.sum()
        self.means = torch.as_tensor(means, dtype=torch.float64)
        self.covs = (torch.stack([torch.as_tensor(c, dtype=torch.float64) for c in covs])
                     if isinstance(covs, (list, tuple)) else torch.as_tensor(covs, dtype=torch.float64))
        self.dim = self.means.shape[1]

    @classmethod
    def gaussian(cls, mean, cov):
        mean = torch.as_tensor(mean, dtype=torch.float64)
        return cls([1.0], mean[None], torch.as_tensor(cov, dtype=torch.float64)[None])

    @classmethod
    def standard(cls, d: int):
        return cls.gaussian(torch.zeros(d), torch.eye(d))

    def sample(self, n: int, generator=None, dtype=torch.float64) -> torch.Tensor:
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        chol = torch.linalg.cholesky(self.covs)
        eps = torch.randn(n, self.dim, dtype=torch.float64, generator=generator)
        x = self.means[k] + (chol[k] @ eps[..., None])[..., 0]
        return x.to(dtype)

    def mean(self) -> torch.Tensor:
        return (self.weights[:, None] * self.means).sum(0)

    def cov(self) -> torch.Tensor:
        m = self.mean()
        d = self.means - m
        return (self.weights[:, None, None] * (self.covs + d[:, :, None] * d[:, None, :])).sum(0)


def interpolant_fields(coef: Dict[str, torch.Tensor], p0: GaussianMixture, p1: GaussianMixture,
                       x: torch.Tensor, log_prob: bool = True) -> Dict[str, torch.Tensor]:
    """Exact marginal fields at states ``x (B, d)`` for coefficients ``coef`` (a, b, da, db, gamma, gdg: ``(B,)``)."""
    dt = x.dtype
    x = x.to(torch.float64)
    c = {k: torch.as_tensor(v, dtype=torch.float64).reshape(-1) for k, v in coef.items()}
    a, b, da, db, g, gdg = (c[k][:, None, None, None] for k in ("a", "b", "da", "db", "gamma", "gdg"))
    d = x.shape[1]
    eye = torch.eye(d, dtype=torch.float64)
    # component pairs (i, j) flattened to K = K0 * K1
    m0 = p0.means[:, None, :].expand(-1, p1.means.shape[0], -1).reshape(-1, d)
    m1 = p1.means[None, :, :].expand(p0.means.shape[0], -1, -1).reshape(-1, d)
    C0 = p0.covs[:, None].expand(-1, p1.covs.shape[0], -1, -1).reshape(-1, d, d)
    C1 = p1.covs[None].expand(p0.covs.shape[0], -1, -1, -1).reshape(-1, d, d)
    w = (p0.weights[:, None] * p1.weights[None, :]).reshape(-1)
    a2, b2 = a[..., 0], b[..., 0]  # (B, 1, 1)
    mu = a2 * m0[None] + b2 * m1[None]  # (B, K, d)
    # covariances depend on t only: invert them once per distinct time (sampling uses one time per step)
    t_key = torch.stack([c["a"], c["b"], c["gamma"]], -1)
    if bool((t_key == t_key[:1]).all()):
        uniq, inv = t_key[:1], torch.zeros(t_key.shape[0], dtype=torch.long)
    else:
        uniq, inv = torch.unique(t_key, dim=0, return_inverse=True)
    ua, ub, ug = (uniq[:, i, None, None, None] for i in range(3))
    S_u = ua * ua * C0[None] + ub * ub * C1[None] + ug * ug * eye  # (U, K, d, d)
    S_inv = torch.linalg.inv(S_u)[inv]  # (B, K, d, d)
    logdet = torch.linalg.slogdet(S_u)[1][inv]
    diff = x[:, None, :] - mu
    r = (S_inv @ diff[..., None])[..., 0]  # (B, K, d)
    logp = -0.5 * (diff * r).sum(-1) - 0.5 * logdet - 0.5 * d * math.log(2 * math.pi) + w.log()[None]
    pi = torch.softmax(logp, dim=1)[..., None]  # (B, K, 1)
    cov_ux = da * a * C0[None] + db * b * C1[None]  # Cov(dI, x_t | k)
    vel_k = da[..., 0] * m0[None] + db[..., 0] * m1[None] + (cov_ux @ r[..., None])[..., 0]
    out = {
        "score": -(pi * r).sum(1),
        "velocity": (pi * vel_k).sum(1),
        "drift": (pi * (vel_k + gdg[..., 0] * r)).sum(1),
        "z": (pi * g[..., 0] * r).sum(1),
        "x0": (pi * (m0[None] + ((a * C0[None]) @ r[..., None])[..., 0])).sum(1),
        "x1": (pi * (m1[None] + ((b * C1[None]) @ r[..., None])[..., 0])).sum(1),
    }
    if log_prob:
        out["log_prob"] = torch.logsumexp(logp, dim=1)
    return {k: v.to(dt) for k, v in out.items()}


def path_coefficients(path, t: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Oracle coefficients of a StochasticInterpolantPath or an AffinePath at times ``t (B,)``."""
    from sciflow.paths.affine import AffinePath

    if isinstance(path, AffinePath):
        s = path.scheduler(t)
        zero = torch.zeros_like(t)
        return {"a": s.sigma, "b": s.alpha, "da": s.d_sigma, "db": s.d_alpha, "gamma": zero, "gdg": zero}
    c = path.coefficients(t)
    return {"a": c["a"], "b": c["b"], "da": c["da"], "db": c["db"], "gamma": c["gamma"],
            "gdg": path.gamma.gamma_dot_gamma(t)}


class OracleModel(nn.Module):
    """A "network" returning the exact fields of ``path`` between ``p0`` and ``p1`` for ``prediction``.

    Stochastic interpolant predictions: "drift", "drift_score", "drift_denoiser", "velocity_denoiser",
    "score", "denoiser" (returned as a mapping); affine predictions: "velocity", "x1", "noise".
    """

    def __init__(self, path, p0: GaussianMixture, p1: GaussianMixture, prediction: str, concat: bool = False):
        super().__init__()
        self.path, self.p0, self.p1, self.prediction, self.concat = path, p0, p1, prediction, concat
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))  # so Flow can read device/dtype

    def forward(self, x, t, cond=None):
        f = interpolant_fields(path_coefficients(self.path, t), self.p0, self.p1, x, log_prob=False)
        p = self.prediction
        if p in ("velocity", "x1", "noise"):
            return {"velocity": f["velocity"], "x1": f["x1"], "noise": f["x0"]}[p]
        zeta = f["x0"] if getattr(self.path.interpolant, "gaussian_source", False) else f["z"]
        fields = {"drift": f["drift"], "score": f["score"], "denoiser": zeta, "velocity": f["velocity"]}
        names = {"drift": ["drift"], "score": ["score"], "denoiser": ["denoiser"],
                 "drift_score": ["drift", "score"], "drift_denoiser": ["drift", "denoiser"],
                 "velocity_denoiser": ["velocity", "denoiser"]}[p]
        if len(names) == 1:
            return fields[names[0]]
        if self.concat:
            return torch.cat([fields[k] for k in names], dim=1)
        return {k: fields[k] for k in names}
