"""Factorised mixture paths for discrete flow matching (Gat et al., "Discrete Flow Matching", NeurIPS 2024).

Each position i of a token sequence follows, given the data x1 and source x0,

    p_t(x^i | x0, x1) = kappa_t delta(x^i = x1^i) + (1 - kappa_t) delta(x^i = x0^i),

with a scheduler kappa_t increasing from kappa_0 = 0 (source) to kappa_1 = 1 (data); t = 0 is the source,
t = 1 the data, as everywhere in sciflow. The source is either the absorbing mask token (x0 = [MASK]...) or
uniform noise over the V real tokens. The network predicts posterior logits of p_{1|t}(x1^i | x_t),
shape ``(B, *shape, V)`` (prediction ``"logits"``), trained by cross-entropy or by the generalised KL
(the Bregman divergence between the conditional and model rates; Shaul et al. 2024, Gat et al. 2024).

The marginal generating velocity (CTMC rate) of position i towards token y != x^i is

    u_t^i(y | x) = kappa'_t / (1 - kappa_t) * p_{1|t}(y | x),

which :meth:`MixturePath.velocity` returns as a full rate tensor and :mod:`sciflow.samplers.ctmc` steps.

Schedulers: any affine scheduler of :mod:`sciflow.paths.schedulers` whose ``alpha`` runs from 0 to 1 is a
valid kappa (``alpha`` is used as kappa_t and ``d_alpha`` as kappa'_t): "linear"/"cond_ot" (kappa = t),
"polynomial" (kappa = t^n), "cosine" (kappa = sin(pi t / 2)).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from sciflow.paths.base import Path, PathSample, expand_like
from sciflow.paths.schedulers import Scheduler, build_scheduler
from sciflow.registry import register
from sciflow.spaces.discrete import mask_token_id, num_token_states

LOSSES = ("cross_entropy", "generalized_kl")


def build_kappa(spec) -> Scheduler:
    """A kappa scheduler from a name ("linear", "cond_ot", "polynomial", "cosine"), a mapping or an object."""
    if spec == "linear":
        spec = "cond_ot"
    if isinstance(spec, dict) and spec.get("name") == "linear":
        spec = {**spec, "name": "cond_ot"}
    return build_scheduler(spec)


@register("path", "discrete_mixture")
class MixturePath(Path):
    """Masked or uniform factorised mixture path on tokens.

    Args:
        vocab_size: number of real tokens V (the mask token, if any, has id V).
        source: "mask" or "uniform" (must match the :class:`~sciflow.spaces.Tokens` space's source).
        scheduler: kappa_t scheduler (name, mapping or object; default linear kappa_t = t).
        loss: "cross_entropy" (default; mean over positions of -log p_theta(x1^i | x_t), in nats per
            token; with a masked source only masked positions carry information, unmasked ones are
            excluded) or "generalized_kl" (kappa'/(1-kappa)-weighted Bregman divergence of rates).
    """

    predictions = ("logits",)

    def __init__(self, vocab_size: int, source: str = "mask", scheduler="linear", loss: str = "cross_entropy"):
        if int(vocab_size) < 2:
            raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
        if source not in ("mask", "uniform"):
            raise ValueError(f"source must be 'mask' or 'uniform', got {source!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.vocab_size = int(vocab_size)
        self.source = source
        self.scheduler = build_kappa(scheduler)
        self.loss_type = loss

    def __repr__(self) -> str:
        return (f"MixturePath(vocab_size={self.vocab_size}, source={self.source!r}, "
                f"scheduler={self.scheduler!r}, loss={self.loss_type!r})")

    @property
    def mask_token(self) -> Optional[int]:
        return mask_token_id(self.vocab_size, self.source)

    @property
    def num_states(self) -> int:
        return num_token_states(self.vocab_size, self.source)

    def kappa(self, t: torch.Tensor):
        """(kappa_t, kappa'_t), each of the shape of ``t``."""
        s = self.scheduler(t)
        return s.alpha, s.d_alpha

    # -- path --------------------------------------------------------------------------------------
    def _check_tokens(self, x: torch.Tensor, name: str, allow_mask: bool) -> None:
        if not isinstance(x, torch.Tensor) or x.is_floating_point():
            raise TypeError(f"{name} must be a long tensor of token ids, got "
                            f"{getattr(x, 'dtype', type(x).__name__)}")
        hi = self.num_states if allow_mask else self.vocab_size
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= hi):
            raise ValueError(f"{name} holds ids in [{int(x.min())}, {int(x.max())}], expected [0, {hi - 1}]")

    def sample(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, generator=None) -> PathSample:
        """x_t: each position independently equals x1 with probability kappa_t, else x0. Shapes ``(B, ...)``."""
        self._check_tokens(x1, "x1 (data)", allow_mask=False)
        self._check_tokens(x0, "x0 (source)", allow_mask=True)
        if x0.shape != x1.shape:
            raise ValueError(f"x0 shape {tuple(x0.shape)} != x1 shape {tuple(x1.shape)}")
        k, _ = self.kappa(t)
        u = torch.rand(x1.shape, device=x1.device, dtype=t.dtype, generator=generator)
        x_t = torch.where(u < expand_like(k, x1), x1, x0)
        return PathSample(x0=x0, x1=x1, t=t, x_t=x_t, dx_t=None)

    def marginal_probs(self, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Closed form p_t(x^i = s | x1) over all ``num_states`` ids, shape ``(B, *shape, S)``,
        averaged over the source: kappa_t delta_{x1} + (1 - kappa_t) p_0."""
        k, _ = self.kappa(t)
        k = expand_like(k, x1).unsqueeze(-1)
        onehot = F.one_hot(x1, self.num_states).to(t.dtype)
        if self.source == "mask":
            p0 = torch.zeros(self.num_states, dtype=t.dtype, device=x1.device)
            p0[self.vocab_size] = 1.0
        else:
            p0 = torch.full((self.num_states,), 1.0 / self.vocab_size, dtype=t.dtype, device=x1.device)
        return k * onehot + (1 - k) * p0

    # -- loss --------------------------------------------------------------------------------------
    def _check_logits(self, output: torch.Tensor, x_t: torch.Tensor) -> None:
        if output.shape != (*x_t.shape, self.vocab_size):
            raise ValueError(f"logits must have shape {(*x_t.shape, self.vocab_size)} (batch, *shape, vocab_size); "
                             f"got {tuple(output.shape)}")

    def loss(self, output: torch.Tensor, sample: PathSample, prediction: str = "logits") -> torch.Tensor:
        """Per-example loss ``(B,)``; ``output`` are posterior logits ``(B, *shape, V)``."""
        self.check_prediction(prediction)
        self._check_logits(output, sample.x_t)
        logp = torch.log_softmax(output.float(), -1).to(output.dtype)
        ll = logp.gather(-1, sample.x1.unsqueeze(-1)).squeeze(-1)  # log p(x1^i | x_t)
        if self.loss_type == "cross_entropy":
            if self.source == "mask":
                w = (sample.x_t == self.vocab_size).to(logp.dtype)
                return -(ll * w).flatten(1).sum(-1) / w[0].numel()
            return -ll.flatten(1).mean(-1)
        # generalized KL between conditional rate c (delta_{x1} - delta_x) and model rate c (p - delta_x):
        # D = c [ 1{x != x1} (-log p(x1|x)) + (1 - p(x^i|x)) - 1{x != x1} ]; the constant -1{..} is dropped.
        k, dk = self.kappa(sample.t)
        c = expand_like(dk / (1 - k), sample.x1)
        differ = (sample.x_t != sample.x1).to(logp.dtype)
        cur = sample.x_t.clamp_max(self.vocab_size - 1)
        p_cur = logp.exp().gather(-1, cur.unsqueeze(-1)).squeeze(-1)
        if self.source == "mask":
            p_cur = torch.where(sample.x_t == self.vocab_size, torch.zeros_like(p_cur), p_cur)
        return (c * (differ * (-ll) + 1 - p_cur)).flatten(1).mean(-1)

    # -- velocity ----------------------------------------------------------------------------------
    def rate_coefficient(self, t: torch.Tensor) -> torch.Tensor:
        """c_t = kappa'_t / (1 - kappa_t), shape of ``t`` (infinite at t = 1)."""
        k, dk = self.kappa(t)
        return dk / (1 - k)

    def velocity(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, prediction: str = "logits") -> torch.Tensor:
        """Marginal CTMC rates ``(B, *shape, S)`` over all ``num_states`` ids: u(y) = c_t p(y | x) for
        y != x^i and u(x^i) = -sum of the others (rows sum to zero). With a masked source unmasked
        positions have zero rate (their posterior is exactly delta_{x^i})."""
        self.check_prediction(prediction)
        self._check_logits(output, x_t)
        p = torch.softmax(output, -1)
        if self.source == "mask":
            p = torch.cat([p, torch.zeros_like(p[..., :1])], -1)
        onehot = F.one_hot(x_t, self.num_states).to(p.dtype)
        c = expand_like(self.rate_coefficient(t), x_t).unsqueeze(-1)
        rates = c * p * (1 - onehot)
        if self.source == "mask":
            rates = rates * (x_t == self.vocab_size).unsqueeze(-1).to(p.dtype)
        return rates - onehot * rates.sum(-1, keepdim=True)
