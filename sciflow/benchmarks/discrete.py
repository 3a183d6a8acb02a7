"""Discrete benchmark: simplex-dimension toy (Stark et al. 2024) and a Markov-chain sequence task.

Run: ``sciflow benchmark configs/benchmarks/discrete.yaml`` (or
``python -m sciflow.benchmarks.discrete configs/benchmarks/discrete.yaml``).

a. **Simplex dimension.** For each K, L independent random target categoricals pi_l ~ Dirichlet(1, ..., 1)
   over K categories; linear simplex FM, Dirichlet FM and masked discrete FM, each with the same small
   transformer and training budget, generate N samples; we report mean over positions of
   KL(pi_l || empirical_l) (eps-smoothed) beside the same statistic for N true samples (the finite-sample
   floor, about (K - 1) / (2 N)).
b. **Markov sequences.** A random first-order Markov chain over 20 symbols, length 64; the exact mean
   log-likelihood (per sequence, nats) of generated sequences under the true chain against that of true
   samples (closer is better; higher than true means mode-seeking), plus bigram TV distances.
"""
from __future__ import annotations

import sys
import tempfile
import time
from typing import Any, Dict

import torch


def _train_toy(variant: str, pis: torch.Tensor, cfg: dict, seed: int):
    from sciflow.flow import Flow
    from sciflow.nn.sequence import SequenceTransformer
    from sciflow.paths.dirichlet import DirichletPath, LinearSimplexPath
    from sciflow.paths.discrete import MixturePath
    from sciflow.spaces import Simplex, Tokens
    from sciflow.training import fit

    length, k = pis.shape
    g = torch.Generator().manual_seed(seed)
    n_train = int(cfg.get("n_train", 20000))
    x = torch.stack([torch.multinomial(pis[i].float(), n_train, replacement=True, generator=g) for i in range(length)], 1)
    if variant == "masked":
        space, path, inp, ns = Tokens(length, k), MixturePath(k, source="mask"), "tokens", k + 1
        data = x
    else:
        space = Simplex(k, (length,))
        path = DirichletPath(k, alpha_max=float(cfg.get("alpha_max", 8.0))) if variant == "dirichlet" else LinearSimplexPath(k)
        inp, ns = "simplex", k
        data = torch.nn.functional.one_hot(x, k).float()
    torch.manual_seed(seed)
    model = SequenceTransformer(length, ns, k, input=inp, d_model=int(cfg.get("d_model", 64)),
                                depth=int(cfg.get("depth", 2)), heads=4)
    flow = Flow(model, space=space, path=path, prediction="logits")
    t0 = time.perf_counter()
    flow = fit(flow, data, max_steps=int(cfg.get("train_steps", 600)), batch_size=int(cfg.get("batch_size", 256)),
               lr=float(cfg.get("lr", 2e-3)), seed=seed, ema_decay=float(cfg.get("ema_decay", 0.99)))
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    torch.manual_seed(seed + 1)
    n = int(cfg.get("n_samples", 4096))
    sampler = "ctmc" if variant == "masked" else "simplex"
    res = flow.sample(n, sampler=sampler, steps=int(cfg.get("steps", 50)))
    samples = res.x if variant == "masked" else res.x.argmax(-1)
    return samples, train_s, time.perf_counter() - t0, res.nfe


def bench_simplex_dimension(cfg: dict, seed: int) -> list:
    from sciflow.metrics.categorical import categorical_kl

    rows = []
    length = int(cfg.get("length", 4))
    n = int(cfg.get("n_samples", 4096))
    eps = float(cfg.get("eps", 1e-6))
    for k in cfg.get("ks", [20, 40, 80, 160]):
        g = torch.Generator().manual_seed(seed + k)
        gam = torch._standard_gamma(torch.ones(length, k, dtype=torch.float64), generator=g)
        pis = gam / gam.sum(-1, keepdim=True)
        true = torch.stack([torch.multinomial(pis[i], n, replacement=True, generator=g) for i in range(length)], 1)
        floor = sum(categorical_kl(true[:, i], pis[i], eps=eps) for i in range(length)) / length
        row: Dict[str, Any] = {"K": k, "floor": floor}
        for variant in cfg.get("variants", ["linear_simplex", "dirichlet", "masked"]):
            samples, tr, sa, nfe = _train_toy(variant, pis, cfg, seed)
            kl = sum(categorical_kl(samples[:, i], pis[i], eps=eps) for i in range(length)) / length
            row[variant] = kl
            row[f"{variant}_s"] = tr + sa
            print(f"  K={k:4d} {variant:15s} KL={kl:.4f} (floor {floor:.4f}) train {tr:.0f}s sample {sa:.0f}s nfe {nfe}",
                  flush=True)
        rows.append(row)
    return rows


def bench_markov(cfg: dict, seed: int) -> list:
    from sciflow.training import train

    rows = []
    for variant in cfg.get("variants", ["masked"]):
        with tempfile.TemporaryDirectory() as tmp:
            conf = {
                "name": f"bench_markov_{variant}", "task": "discrete_sequences", "seed": seed, "run_dir": tmp,
                "data": {"source": "markov", "markov_states": int(cfg.get("states", 20)),
                         "length": int(cfg.get("length", 64)), "n_train": int(cfg.get("n_train", 8192)),
                         "variant": variant},
                "model": {"name": "sequence_transformer", "d_model": int(cfg.get("d_model", 64)),
                          "depth": int(cfg.get("depth", 2)), "heads": 4},
                "flow": {"path": "discrete_mixture", "scheduler": None, "prediction": "logits"},
                "trainer": {"max_steps": int(cfg.get("train_steps", 1000)), "batch_size": int(cfg.get("batch_size", 128)),
                            "lr": float(cfg.get("lr", 1e-3)), "ema_decay": 0.99, "progress": False,
                            "val_every": 10 ** 6, "ckpt_every": 10 ** 6, "log_every": 50},
                "sample": {"sampler": "simplex" if variant in ("dirichlet", "linear_simplex") else "ctmc",
                           "steps": int(cfg.get("steps", 64))},
                "eval": {"n_samples": int(cfg.get("n_samples", 1024)), "ngram": 2, "show": 0},
            }
            t0 = time.perf_counter()
            res = train(conf)
            m = dict(res.metrics)
            m["variant"], m["seconds"] = variant, time.perf_counter() - t0
            print(f"  markov {variant:10s} loglik gen {m['loglik_generated']:.2f} vs true {m['loglik_true']:.2f}  "
                  f"bigram TV {m['ngram2_tv']:.4f} (true-vs-true {m['ngram2_tv_true_vs_true']:.4f})  {m['seconds']:.0f}s",
                  flush=True)
            rows.append(m)
    return rows


def run(suite: dict, benchmarks_md: str = "BENCHMARKS.md") -> dict:
    """Run the discrete suite, print the figures and write the ``discrete`` section of ``benchmarks_md``."""
    from sciflow.benchmarking import machine_description, markdown_table, write_section

    seed = int(suite.get("seed", 0))
    if suite.get("num_threads"):
        torch.set_num_threads(int(suite["num_threads"]))
    t_start = time.perf_counter()
    out: Dict[str, Any] = {}
    parts = suite.get("parts", ["simplex_dimension", "markov"])
    if "simplex_dimension" in parts:
        print("[discrete] a. simplex dimension toy ...", flush=True)
        out["simplex_dimension"] = bench_simplex_dimension(suite.get("simplex_dimension", {}), seed)
    if "markov" in parts:
        print("[discrete] b. Markov sequences ...", flush=True)
        out["markov"] = bench_markov(suite.get("markov", {}), seed)
    out["wall_s"] = time.perf_counter() - t_start
    cmd = suite.get("_command", "sciflow benchmark configs/benchmarks/discrete.yaml")
    md = [f"## Discrete and Dirichlet flow matching\n\nCommand: `{cmd}`  \nMachine: {machine_description()}  \n"
          f"Total wall time: {out['wall_s']:.0f} s (shared machine; other jobs were running).\n"]
    if "simplex_dimension" in out:
        sd = suite.get("simplex_dimension", {})
        variants = sd.get("variants", ["linear_simplex", "dirichlet", "masked"])
        md.append(f"### a. Simplex-dimension toy\n\n{sd.get('length', 4)} independent random categoricals "
                  f"(Dirichlet(1) weights over K classes); each model: same transformer, {sd.get('train_steps', 600)} "
                  f"training steps of batch {sd.get('batch_size', 256)}, {sd.get('steps', 50)} sampling steps, "
                  f"{sd.get('n_samples', 4096)} samples. Mean over positions of KL(target || empirical samples) "
                  "in nats (eps-smoothed); 'data floor' is the same statistic for true samples of the same size.\n")
        header = ["K", "data floor"] + [f"KL {v}" for v in variants]
        rows = [[r["K"], r["floor"]] + [r[v] for v in variants] for r in out["simplex_dimension"]]
        md.append(markdown_table(header, rows))
    if "markov" in out:
        mc = suite.get("markov", {})
        md.append(f"\n### b. Markov-chain sequences\n\nRandom first-order chain over {mc.get('states', 20)} symbols "
                  f"(rows ~ Dirichlet(0.3)), length {mc.get('length', 64)}, {mc.get('n_train', 8192)} training sequences, "
                  f"{mc.get('train_steps', 1000)} steps of batch {mc.get('batch_size', 128)} through `sciflow.training`; "
                  f"{mc.get('n_samples', 1024)} generated vs fresh true sequences. Log-likelihood per sequence "
                  "(nats) under the true chain.\n")
        header = ["variant", "loglik generated", "loglik true", "perplexity gen", "perplexity true",
                  "bigram TV", "bigram TV true-vs-true", "NFE", "seconds"]
        rows = [[m["variant"], m["loglik_generated"], m["loglik_true"], m["perplexity_generated"],
                 m["perplexity_true"], m["ngram2_tv"], m["ngram2_tv_true_vs_true"], m["nfe"], m["seconds"]]
                for m in out["markov"]]
        md.append(markdown_table(header, rows))
    text = "\n".join(md)
    print(text)
    if benchmarks_md:
        write_section("discrete", text, benchmarks_md)
    return out


if __name__ == "__main__":  # pragma: no cover
    import yaml

    path = sys.argv[1] if len(sys.argv) > 1 else "configs/benchmarks/discrete.yaml"
    with open(path) as fh:
        suite = yaml.safe_load(fh)
    suite["_command"] = "python -m sciflow.benchmarks.discrete " + path
    run(suite)
