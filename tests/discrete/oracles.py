"""Closed-form posterior "networks" for small categorical targets (test oracles)."""
import itertools

import torch
from torch import nn


class JointOracle(nn.Module):
    """Exact posterior logits p(x1^i | x_t) for a joint target pi over V^L (small) under a mixture path.

    cond (optional): labels selecting rows of ``pis`` (C, V^L); label -1 = the label-marginal ``pi``.
    """

    def __init__(self, pis, length, vocab, path, label_probs=None):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))
        pis = torch.as_tensor(pis, dtype=torch.float64)
        if pis.dim() == 1:
            pis = pis.unsqueeze(0)
        self.register_buffer("pis", pis)
        lp = torch.full((pis.shape[0],), 1.0 / pis.shape[0], dtype=torch.float64) if label_probs is None else label_probs
        self.register_buffer("label_probs", torch.as_tensor(lp, dtype=torch.float64))
        self.register_buffer("states", torch.tensor(list(itertools.product(range(vocab), repeat=length))))
        self.L, self.V, self.path = length, vocab, path

    def joint_posterior(self, x, t, cond=None):
        """p(x1 = s | x_t) over all V^L states s, shape (B, V^L)."""
        if cond is None:
            prior = (self.label_probs[:, None] * self.pis).sum(0).expand(x.shape[0], -1)
        else:
            marg = (self.label_probs[:, None] * self.pis).sum(0)
            prior = torch.where((cond < 0)[:, None], marg, self.pis[cond.clamp_min(0)])
        k, _ = self.path.kappa(t.to(torch.float64))
        k = k[:, None, None]
        eq = (self.states[None] == x[:, None, :]).to(torch.float64)  # (B, S, L)
        if self.path.source == "mask":
            masked = (x == self.V)[:, None, :]
            lik = torch.where(masked, torch.ones_like(eq), eq).prod(-1)
        else:
            lik = (k * eq + (1 - k) / self.V).prod(-1)
        post = prior * lik
        return post / post.sum(-1, keepdim=True)

    def forward(self, x, t, cond=None):
        post = self.joint_posterior(x, t, cond)
        onehot = torch.nn.functional.one_hot(self.states, self.V).to(torch.float64)  # (S, L, V)
        marg = torch.einsum("bs,slv->blv", post, onehot)
        return torch.log(marg.clamp_min(1e-300))


def empirical_joint(x, vocab):
    """Frequencies of the V^L joint states of samples x (N, L), shape (V^L,)."""
    length = x.shape[1]
    idx = (x * (vocab ** torch.arange(length - 1, -1, -1))).sum(-1)
    return torch.bincount(idx, minlength=vocab ** length).to(torch.float64) / x.shape[0]


# exact forward-backward posterior of a Markov chain under a masked path (lives with the benchmark that
# reports it; checked against the brute-force JointOracle in test_sequence_net.py)
from sciflow.benchmarks.discrete import markov_posterior_logits  # noqa: E402,F401
