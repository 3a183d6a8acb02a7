"""Config-driven discrete sequence task: sequences from a list of strings, a text file, or a random Markov chain.

``sciflow train configs/discrete/markov_masked.yaml`` trains a discrete flow on sequences from a random
first-order Markov chain (20 symbols, length 64 by default) and evaluates the exact log-likelihood of
generated sequences under the true chain against that of true samples. The ``variant`` selects the
model family: "masked" / "uniform" discrete flow matching (Gat et al. 2024; CTMC sampling),
"dirichlet" (Stark et al. 2024) or "linear_simplex" (simplex flows with one-hot data; samples are
decoded by argmax).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple

import torch
from pydantic import Field

from sciflow.registry import register
from sciflow.task import StrictModel, Task

VARIANTS = ("masked", "uniform", "dirichlet", "linear_simplex")


# -- data -------------------------------------------------------------------------------------------
def random_markov_chain(num_states: int, seed: int = 0, concentration: float = 0.3) -> Tuple[torch.Tensor, torch.Tensor]:
    """(initial (V,), transition (V, V)) with rows ~ Dirichlet(concentration) (float64, CPU, seeded)."""
    g = torch.Generator().manual_seed(seed)
    gam = torch._standard_gamma(torch.full((num_states + 1, num_states), float(concentration), dtype=torch.float64),
                                generator=g)
    probs = gam / gam.sum(-1, keepdim=True)
    return probs[0], probs[1:]


def sample_markov(n: int, length: int, initial: torch.Tensor, transition: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``n`` sequences ``(n, length)`` (long) from the chain."""
    g = torch.Generator().manual_seed(seed)
    x = torch.empty(n, length, dtype=torch.long)
    x[:, 0] = torch.multinomial(initial.expand(n, -1), 1, generator=g).squeeze(-1)
    for i in range(1, length):
        x[:, i] = torch.multinomial(transition[x[:, i - 1]], 1, generator=g).squeeze(-1)
    return x


def encode_strings(strings: List[str], alphabet: Optional[str] = None) -> Tuple[torch.Tensor, str]:
    """Equal-length strings -> long tensor (N, L) and the alphabet used (sorted characters if not given)."""
    if not strings:
        raise ValueError("data.strings is empty")
    lengths = {len(s) for s in strings}
    if len(lengths) != 1:
        raise ValueError(f"all sequences must have the same length (pad them first); got lengths {sorted(lengths)[:10]}")
    alphabet = alphabet or "".join(sorted(set("".join(strings))))
    index = {c: i for i, c in enumerate(alphabet)}
    bad = sorted(set("".join(strings)) - set(index))
    if bad:
        raise ValueError(f"characters {bad} are not in data.alphabet {alphabet!r}")
    return torch.tensor([[index[c] for c in s] for s in strings], dtype=torch.long), alphabet


def decode_strings(x: torch.Tensor, alphabet: str) -> List[str]:
    return ["".join(alphabet[i] for i in row) for row in x.tolist()]


class DiscreteDataConfig(StrictModel):
    """``data`` section: where sequences come from and which flow family models them."""

    source: Literal["markov", "strings", "file"] = "markov"
    strings: Optional[List[str]] = None
    path: Optional[str] = None
    alphabet: Optional[str] = None
    length: int = Field(64, gt=0)
    markov_states: int = Field(20, ge=2)
    markov_seed: int = 0
    markov_concentration: float = Field(0.3, gt=0)
    n_train: int = Field(4096, gt=0)
    variant: Literal["masked", "uniform", "dirichlet", "linear_simplex"] = "masked"
    scheduler: Optional[str] = "linear"
    alpha_max: float = Field(8.0, gt=0)


class DiscreteEvalConfig(StrictModel):
    """``eval`` section."""

    n_samples: int = Field(512, gt=0)
    ngram: int = Field(2, ge=1)
    show: int = Field(8, ge=0)


@register("task", "discrete_sequences")
class DiscreteSequenceTask(Task):
    """Discrete / simplex flow matching on token sequences."""

    DataConfig = DiscreteDataConfig
    EvalConfig = DiscreteEvalConfig

    def __init__(self, config):
        super().__init__(config)
        dc = self.data_cfg
        self.chain = None
        if dc.source == "markov":
            self.chain = random_markov_chain(dc.markov_states, dc.markov_seed, dc.markov_concentration)
            self.tokens = sample_markov(dc.n_train, dc.length, *self.chain, seed=config.seed * 7 + 1)
            self.alphabet = dc.alphabet or "".join(chr(ord("a") + i) if i < 26 else chr(ord("A") + i - 26)
                                                   for i in range(dc.markov_states))
        else:
            if dc.source == "strings":
                if not dc.strings:
                    raise ValueError("data.source is 'strings' but data.strings is empty")
                strings = list(dc.strings)
            else:
                if not dc.path:
                    raise ValueError("data.source is 'file' but data.path is not set")
                p = Path(dc.path)
                if not p.exists():
                    raise ValueError(f"data.path '{p}' does not exist")
                strings = [line.rstrip("\n") for line in p.read_text().splitlines() if line.strip()]
            self.tokens, self.alphabet = encode_strings(strings, dc.alphabet)
        if len(self.alphabet) < 2:
            raise ValueError("need at least 2 distinct symbols")
        self.vocab_size = len(self.alphabet)
        self.length = self.tokens.shape[1]

    # -- data -----------------------------------------------------------------------------------
    @property
    def simplex(self) -> bool:
        return self.data_cfg.variant in ("dirichlet", "linear_simplex")

    def _as_data(self, x: torch.Tensor) -> torch.Tensor:
        if self.simplex:
            return torch.nn.functional.one_hot(x, self.vocab_size).to(torch.get_default_dtype())
        return x

    def train_dataset(self):
        return torch.utils.data.TensorDataset(self._as_data(self.tokens))

    # -- flow -----------------------------------------------------------------------------------
    def build_space_path(self):
        from sciflow.paths.dirichlet import DirichletPath, LinearSimplexPath
        from sciflow.paths.discrete import MixturePath
        from sciflow.spaces import Simplex, Tokens

        dc, v = self.data_cfg, self.vocab_size
        if dc.variant in ("masked", "uniform"):
            src = "mask" if dc.variant == "masked" else "uniform"
            return Tokens(self.length, v, source=src), MixturePath(v, source=src, scheduler=dc.scheduler or "linear")
        if dc.variant == "dirichlet":
            return Simplex(v, (self.length,)), DirichletPath(v, alpha_max=dc.alpha_max)
        return Simplex(v, (self.length,)), LinearSimplexPath(v)

    def build_flow(self):
        from sciflow.flow import Flow

        space, path = self.build_space_path()
        num_states = space.num_states if not self.simplex else self.vocab_size
        model = self.build_model(length=self.length, num_states=num_states, out_dim=self.vocab_size,
                                 input="simplex" if self.simplex else "tokens")
        fc = self.config.flow
        return Flow(model, space=space, path=path, coupling=fc.coupling, time_sampler=fc.time_sampler,
                    prediction="logits", cond_dropout=fc.cond_dropout)

    def sampler_name(self) -> str:
        s = self.config.sample.sampler
        if isinstance(s, str) and s in ("ctmc", "simplex", "product"):
            return s
        return "simplex" if self.simplex else "ctmc"

    def generate(self, flow, n: int, seed: int = 0) -> Tuple[torch.Tensor, int]:
        """``n`` generated token sequences ``(n, L)`` and the NFE used."""
        torch.manual_seed(seed)
        res = flow.sample(n, sampler=self.sampler_name(), steps=self.config.sample.steps)
        x = res.x.argmax(-1) if self.simplex else res.x
        return x, res.nfe

    def save_samples(self, flow, n, out, generator=None):
        x, nfe = self.generate(flow, n, seed=self.config.seed + 4242)
        out = Path(out)
        torch.save({"x": x, "nfe": nfe, "alphabet": self.alphabet}, out)
        return out

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self, flow, run_dir: Path) -> Dict[str, float]:
        from sciflow.metrics.categorical import (categorical_kl, empirical_distribution, markov_log_likelihood,
                                                 markov_perplexity, ngram_distance)

        ec = self.eval_cfg
        x, nfe = self.generate(flow, ec.n_samples, seed=self.config.seed + 999)
        metrics: Dict[str, float] = {"nfe": nfe}
        if self.chain is not None:
            ref = sample_markov(ec.n_samples, self.length, *self.chain, seed=self.config.seed * 7 + 2)
        else:
            ref = self.tokens
        metrics[f"ngram{ec.ngram}_tv"] = ngram_distance(x, ref, n=ec.ngram, vocab_size=self.vocab_size)
        metrics["unigram_kl"] = categorical_kl(x, empirical_distribution(ref, self.vocab_size), eps=1e-6)
        if self.chain is not None:
            metrics["loglik_generated"] = float(markov_log_likelihood(x, *self.chain).mean())
            metrics["loglik_true"] = float(markov_log_likelihood(ref, *self.chain).mean())
            metrics["perplexity_generated"] = markov_perplexity(x, *self.chain)
            metrics["perplexity_true"] = markov_perplexity(ref, *self.chain)
            metrics[f"ngram{ec.ngram}_tv_true_vs_true"] = ngram_distance(
                sample_markov(ec.n_samples, self.length, *self.chain, seed=self.config.seed * 7 + 3), ref,
                n=ec.ngram, vocab_size=self.vocab_size)
        if ec.show:
            run_dir = Path(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "samples.txt").write_text("\n".join(decode_strings(x[: ec.show], self.alphabet)) + "\n")
        return metrics
