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
   samples (closer is better; higher than true means mode-seeking), plus bigram TV distances, and the
   network's held-out masked cross-entropy beside that of the exact posterior (forward-backward on the true
   chain, :func:`markov_posterior_logits`), which is the lowest loss any network can reach.

``parts`` in the suite file selects which parts run (``[markov]`` runs only b). When part a is not run, the
part-a text already recorded in the ``discrete`` section of BENCHMARKS.md is kept (marked as such).
"""
from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional

import torch


def markov_posterior_logits(x: torch.Tensor, vocab: int, initial: torch.Tensor, transition: torch.Tensor) -> torch.Tensor:
    """Exact log p(x1^i | x_t), shape ``(B, L, V)`` (float64), for a first-order Markov chain under a masked path.

    ``x`` (B, L) holds tokens or the mask id ``vocab``; ``initial`` (V,), ``transition`` (V, V). Forward-backward
    messages over the unmasked tokens: p(x^i = s | obs) is proportional to P(x^i = s, obs_<i) P(obs_>i | x^i = s)
    (times the delta on the observed token at unmasked positions). Messages are renormalised at every step.
    """
    b, length = x.shape
    initial = initial.to(device=x.device, dtype=torch.float64)
    transition = transition.to(device=x.device, dtype=torch.float64)
    obs = torch.nn.functional.one_hot(x, vocab + 1)[..., :vocab].to(torch.float64)
    obs = torch.where((x == vocab)[..., None], torch.ones_like(obs), obs)
    fwd = torch.empty(b, length, vocab, dtype=torch.float64, device=x.device)
    bwd = torch.empty_like(fwd)
    cur = initial.expand(b, vocab)
    for i in range(length):
        fwd[:, i] = cur
        nxt = (cur * obs[:, i]) @ transition
        cur = nxt / nxt.sum(-1, keepdim=True)
    cur = torch.ones(b, vocab, dtype=torch.float64, device=x.device)
    for i in range(length - 1, -1, -1):
        bwd[:, i] = cur
        nxt = (cur * obs[:, i]) @ transition.T
        cur = nxt / nxt.sum(-1, keepdim=True)
    post = fwd * bwd * obs
    return torch.log((post / post.sum(-1, keepdim=True)).clamp_min(1e-300))


def heldout_masked_loss(flow, task, n: int = 1024, seed: int = 12345) -> Dict[str, float]:
    """Masked-path cross-entropy (``MixturePath.loss`` units: nats summed over masked positions / L) of the
    network and of the exact posterior on ``n`` fresh chain sequences at uniform times."""
    from sciflow.tasks.discrete import sample_markov

    v = task.vocab_size
    x1 = sample_markov(n, task.length, *task.chain, seed=seed)
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g)
    s = flow.path.sample(torch.full_like(x1, v), x1, t, generator=g)
    with torch.no_grad():
        net = float(flow.path.loss(flow.predict(s.x_t, t), s).mean())
    exact = float(flow.path.loss(markov_posterior_logits(s.x_t, v, *task.chain), s).mean())
    return {"heldout_loss": net, "exact_posterior_loss": exact}


def recorded_part(benchmarks_md: Optional[str], heading: str, next_heading: Optional[str]) -> Optional[str]:
    """The text of a recorded subsection (from ``heading`` up to ``next_heading``) of the discrete section."""
    if not benchmarks_md or not Path(benchmarks_md).exists():
        return None
    m = re.search(r"<!-- begin:discrete -->(.*?)<!-- end:discrete -->", Path(benchmarks_md).read_text(), re.S)
    if not m or heading not in m.group(1):
        return None
    part = m.group(1).split(heading, 1)[1]
    if next_heading and next_heading in part:
        part = part.split(next_heading, 1)[0]
    return heading + part.rstrip()


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
                          "depth": int(cfg.get("depth", 2)), "heads": int(cfg.get("heads", 4)),
                          "conv_kernel": int(cfg.get("conv_kernel", 0)), "rel_pos": bool(cfg.get("rel_pos", False))},
                "flow": {"path": "discrete_mixture", "scheduler": None, "prediction": "logits"},
                "trainer": {"max_steps": int(cfg.get("train_steps", 1000)), "batch_size": int(cfg.get("batch_size", 128)),
                            "lr": float(cfg.get("lr", 1e-3)), "ema_decay": float(cfg.get("ema_decay", 0.99)),
                            "lr_schedule": cfg.get("lr_schedule", "constant"),
                            "warmup_steps": int(cfg.get("warmup_steps", 0)), "progress": False,
                            "val_every": 10 ** 6, "ckpt_every": 10 ** 6, "log_every": 50},
                "sample": {"sampler": "simplex" if variant in ("dirichlet", "linear_simplex") else "ctmc",
                           "steps": int(cfg.get("steps", 64))},
                "eval": {"n_samples": int(cfg.get("n_samples", 1024)), "ngram": 2, "show": 0},
            }
            t0 = time.perf_counter()
            res = train(conf)
            m = dict(res.metrics)
            m["variant"], m["seconds"] = variant, time.perf_counter() - t0
            if variant == "masked":
                m.update(heldout_masked_loss(res.flow, res.task))
                print(f"  markov masked held-out loss {m['heldout_loss']:.4f} (exact posterior "
                      f"{m['exact_posterior_loss']:.4f})", flush=True)
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
    if "_command" not in suite and list(parts) != ["simplex_dimension", "markov"]:
        cmd += f" 'parts=[{','.join(parts)}]'"  # the CLI does not pass its overrides on; record the usual one
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
    else:
        old = recorded_part(benchmarks_md, "### a. Simplex-dimension toy", "### b. Markov-chain sequences")
        if old and "*(Recorded by an earlier" in old:
            md.append(old + "\n")
        elif old:
            md.append(old.replace("### a. Simplex-dimension toy\n", "### a. Simplex-dimension toy\n\n"
                                  "*(Recorded by an earlier full run of this suite; this run had "
                                  f"`parts: {list(parts)}`, so part a was not re-run.)*\n", 1) + "\n")
    if "markov" in out:
        mc = suite.get("markov", {})
        net = (f"sequence transformer d_model {mc.get('d_model', 64)}, depth {mc.get('depth', 2)}, "
               f"conv_kernel {mc.get('conv_kernel', 0)}, rel_pos {bool(mc.get('rel_pos', False))}")
        md.append(f"\n### b. Markov-chain sequences\n\nRandom first-order chain over {mc.get('states', 20)} symbols "
                  f"(rows ~ Dirichlet(0.3)), length {mc.get('length', 64)}, {mc.get('n_train', 8192)} training sequences; "
                  f"{net}; {mc.get('train_steps', 1000)} steps of batch {mc.get('batch_size', 128)}, lr "
                  f"{mc.get('lr', 1e-3)} ({mc.get('lr_schedule', 'constant')}, {mc.get('warmup_steps', 0)} warm-up "
                  f"steps) through `sciflow.training`; {mc.get('steps', 64)} CTMC steps; "
                  f"{mc.get('n_samples', 1024)} generated vs fresh true sequences. Log-likelihood per sequence "
                  "(nats) under the true chain. 'held-out loss' is the training objective on fresh sequences: "
                  "-log p(x1^i | x_t) summed over masked positions, divided by L (uniform t, linear kappa); 'exact posterior' is the same loss of the "
                  "true posterior (forward-backward on the chain), the floor for any network.\n")
        header = ["variant", "loglik generated", "loglik true", "perplexity gen", "perplexity true",
                  "bigram TV", "bigram TV true-vs-true", "held-out loss", "exact posterior", "NFE", "seconds"]
        rows = [[m["variant"], m["loglik_generated"], m["loglik_true"], m["perplexity_generated"],
                 m["perplexity_true"], m["ngram2_tv"], m["ngram2_tv_true_vs_true"], m.get("heldout_loss", "-"),
                 m.get("exact_posterior_loss", "-"), m["nfe"], m["seconds"]]
                for m in out["markov"]]
        md.append(markdown_table(header, rows))
    if suite.get("notes"):
        md.append("\n" + str(suite["notes"]).strip())
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
