"""Core benchmark: sciflow against hand-written torch, torchcfm and flow_matching, measured in one run.

Three parts, all parameterised by ``configs/benchmarks/core.yaml``:

a. **Training-step time** (forward + loss + backward + Adam step) of one and the same network class,
   :class:`TimeConcatMLP` (a plain torch MLP on ``[x, t]``), trained by

   * raw torch: a hand-written conditional flow-matching loss (x_t = t x1 + (1 - t) x0, target x1 - x0);
   * sciflow: ``Flow(net, space=Euclidean(d)).loss(x1)``;
   * torchcfm: ``ConditionalFlowMatcher(sigma=0).sample_location_and_conditional_flow``;
   * flow_matching: ``AffineProbPath(CondOTScheduler()).sample``;
   * exact minibatch OT: sciflow ``Flow(coupling="exact_ot")`` vs torchcfm
     ``ExactOptimalTransportConditionalFlowMatcher``.

   Contenders are interleaved round by round in a shuffled order (a noisy shared machine drifts over
   time; interleaving spreads the drift over everyone), each round times a block of steps, warm-up
   rounds are discarded and the median ms/step is reported together with the ratio to the reference.

b. **OT couplings**: time and transport cost (mean squared distance of the returned pairs) of sciflow's
   couplings vs POT's exact ``ot.emd`` on Gaussian source vs eight-Gaussians data, with the gap in % of
   the exact cost.

c. **Sample quality**: W2 (POT exact, ``n_eval`` held-out vs ``n_eval`` generated) against the number
   of network evaluations (NFE) for models trained with independent and OT couplings, sampled with
   euler / midpoint / dopri5.

Run: ``python -m sciflow.benchmarks.core configs/benchmarks/core.yaml`` (or ``sciflow benchmark
configs/benchmarks/core.yaml``). Prints the tables and writes the ``core`` section of BENCHMARKS.md.
Time convention: t = 0 source (noise), t = 1 data.
"""
from __future__ import annotations

import copy
import math
import random
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
from torch import nn

SECTION = "core"


# ------------------------------------------------------------------------------------------------
# the shared network
# ------------------------------------------------------------------------------------------------
class TimeConcatMLP(nn.Module):
    """Plain MLP on ``[x, t]``: ``depth`` hidden layers of ``hidden`` units with SiLU.

    ``forward(x, t, cond=None)`` with x ``(B, d)`` and t ``(B,)`` (t = 0 source, t = 1 data); returns
    ``(B, d)``. Every contender of the benchmark trains this same class so the frameworks, not the
    networks, are compared (sciflow's own :class:`sciflow.nn.MLP` adds a sinusoidal time embedding).
    """

    def __init__(self, dim: int = 2, hidden: int = 256, depth: int = 3):
        super().__init__()
        layers: List[nn.Module] = []
        width = dim + 1
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any = None) -> torch.Tensor:
        return self.net(torch.cat([x, t.reshape(-1, 1).to(x.dtype)], dim=-1))


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def _toy(name: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """Toy data from sciflow.datasets.toy when present, else an inline eight-Gaussians mixture."""
    try:
        from sciflow.registry import get

        return get("dataset", name)(n, generator=generator).float()
    except (ImportError, ValueError):
        if name != "eight_gaussians":
            raise
        k = torch.randint(0, 8, (n,), generator=generator).float() * (2 * math.pi / 8)
        centres = 3.0 * torch.stack([torch.cos(k), torch.sin(k)], -1)
        return centres + 0.3 * torch.randn(n, 2, generator=generator)


def _coupling_or_none(spec: Any):
    """sciflow's coupling from a name or ``{"name": ..., **kwargs}``, or ``None`` when it is not
    registered (yet)."""
    from sciflow.couplings import build_coupling

    try:
        return build_coupling(spec)
    except (ValueError, TypeError, ImportError):
        return None


def _is_ot(contender: str) -> bool:
    """Whether a training-step contender uses exact minibatch OT (timed against torchcfm's exact OT)."""
    return "exact-OT" in contender or "exact_ot" in contender


def _split_max_batch(spec: Any):
    """``({name, **kw}, max_batch)`` from a spec that may carry a ``max_batch`` limit."""
    if isinstance(spec, dict) and "max_batch" in spec:
        spec = dict(spec)
        return spec, int(spec.pop("max_batch"))
    return spec, None


def _spec_label(spec: Any) -> str:
    """``"exact_ot"`` or ``"exact_ot(method=sparse)"`` for a coupling spec."""
    if isinstance(spec, dict):
        kw = {k: v for k, v in spec.items() if k != "name"}
        return spec["name"] + ("(" + ", ".join(f"{k}={v}" for k, v in kw.items()) + ")" if kw else "")
    return str(spec)


def w2_exact(a: torch.Tensor, b: torch.Tensor) -> float:
    """Exact 2-Wasserstein distance between two equally weighted point clouds ``(n, d)`` and ``(m, d)``
    (POT network simplex on the squared Euclidean cost)."""
    import ot

    a64, b64 = a.detach().double().cpu().numpy(), b.detach().double().cpu().numpy()
    m = ot.dist(a64, b64)
    wa, wb = np.full(len(a64), 1 / len(a64)), np.full(len(b64), 1 / len(b64))
    return math.sqrt(max(float(ot.emd2(wa, wb, m, numItermax=10_000_000)), 0.0))


def _load() -> Optional[float]:
    """1-minute load average (other processes competing for the cores), or None where unavailable."""
    try:
        import os

        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _command(suite_path: Optional[str]) -> str:
    argv = list(sys.argv)
    if argv and argv[0].endswith("sciflow/benchmarks/core.py"):
        return "python -m sciflow.benchmarks.core " + " ".join(argv[1:])
    if argv and argv[0].rsplit("/", 1)[-1] == "sciflow":
        return "sciflow " + " ".join(argv[1:])
    return f"sciflow benchmark {suite_path or 'configs/benchmarks/core.yaml'}"


# ------------------------------------------------------------------------------------------------
# a. training-step time
# ------------------------------------------------------------------------------------------------
def _make_contenders(cfg: dict, base: nn.Module, dim: int) -> Dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """name -> (model, loss_fn(x1) -> scalar). Each contender gets a copy of the same initial network."""
    from sciflow import Flow
    from sciflow.spaces.euclidean import Euclidean

    out: Dict[str, Any] = {}

    # raw torch: the textbook CFM loss, written by hand
    net = copy.deepcopy(base)

    def raw_loss(x1, net=net):
        x0 = torch.randn_like(x1)
        t = torch.rand(x1.shape[0], dtype=x1.dtype)
        tt = t[:, None]
        xt = tt * x1 + (1 - tt) * x0
        return (net(xt, t) - (x1 - x0)).pow(2).mean()

    out["raw torch"] = (net, raw_loss)

    flow = Flow(copy.deepcopy(base), space=Euclidean(dim))
    out["sciflow"] = (flow, lambda x1, flow=flow: flow.loss(x1))

    try:
        from torchcfm.conditional_flow_matching import ConditionalFlowMatcher

        net = copy.deepcopy(base)
        fm = ConditionalFlowMatcher(sigma=0.0)

        def cfm_loss(x1, net=net, fm=fm):
            x0 = torch.randn_like(x1)
            t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
            return (net(xt, t) - ut).pow(2).mean()

        out["torchcfm"] = (net, cfm_loss)
    except ImportError:
        pass

    try:
        from flow_matching.path import AffineProbPath
        from flow_matching.path.scheduler import CondOTScheduler

        net = copy.deepcopy(base)
        path = AffineProbPath(scheduler=CondOTScheduler())

        def fmm_loss(x1, net=net, path=path):
            x0 = torch.randn_like(x1)
            t = torch.rand(x1.shape[0], dtype=x1.dtype)
            s = path.sample(t=t, x_0=x0, x_1=x1)
            return (net(s.x_t, s.t) - s.dx_t).pow(2).mean()

        out["flow_matching"] = (net, fmm_loss)
    except ImportError:
        pass

    ot_specs = cfg.get("exact_ot", ["exact_ot"])
    if ot_specs:
        if ot_specs is True:
            ot_specs = ["exact_ot"]
        for spec in ot_specs:
            ot_coupling = _coupling_or_none(spec)
            if ot_coupling is not None:
                flow_ot = Flow(copy.deepcopy(base), space=Euclidean(dim), coupling=ot_coupling)
                out[f"sciflow {_spec_label(spec)}"] = (flow_ot, lambda x1, flow=flow_ot: flow.loss(x1))
        try:
            from torchcfm.conditional_flow_matching import ExactOptimalTransportConditionalFlowMatcher

            net = copy.deepcopy(base)
            fm_ot = ExactOptimalTransportConditionalFlowMatcher(sigma=0.0)

            def cfm_ot_loss(x1, net=net, fm=fm_ot):
                x0 = torch.randn_like(x1)
                t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
                return (net(xt, t) - ut).pow(2).mean()

            out["torchcfm exact-OT"] = (net, cfm_ot_loss)
        except ImportError:
            pass
    return out


def bench_training_step(cfg: dict, seed: int = 0, data: str = "eight_gaussians") -> dict:
    """Median ms per training step for each contender; see the module docstring."""
    dim, bs = int(cfg.get("dim", 2)), int(cfg.get("batch_size", 256))
    torch.manual_seed(seed)
    base = TimeConcatMLP(dim, int(cfg.get("hidden", 256)), int(cfg.get("depth", 3)))
    contenders = _make_contenders(cfg, base, dim)
    lr = float(cfg.get("lr", 1e-3))
    opts = {k: torch.optim.Adam(m.parameters(), lr=lr) for k, (m, _) in contenders.items()}
    g = torch.Generator().manual_seed(seed)
    pool = [_toy(data, bs, g) for _ in range(int(cfg.get("data_batches", 16)))]
    if dim != 2:
        pool = [torch.randn(bs, dim, generator=g) for _ in pool]
    steps = int(cfg.get("steps_per_round", 20))
    warmup, rounds = int(cfg.get("warmup_rounds", 3)), int(cfg.get("rounds", 30))
    # exact OT is 3-4x slower per step: fewer steps per round keep the rounds comparable in length
    ot_steps = max(1, int(cfg.get("ot_steps_per_round", max(1, steps // 4))))
    times: Dict[str, List[float]] = {k: [] for k in contenders}
    order = list(contenders)
    rng = random.Random(seed)
    counter = 0
    for r in range(warmup + rounds):
        rng.shuffle(order)
        for name in order:
            model, loss_fn = contenders[name]
            opt = opts[name]
            n = ot_steps if _is_ot(name) else steps
            t0 = time.perf_counter()
            for _ in range(n):
                x1 = pool[counter % len(pool)]
                counter += 1
                loss = loss_fn(x1)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            dt = (time.perf_counter() - t0) / n
            if r >= warmup:
                times[name].append(dt * 1e3)
    res = {}
    for name, ts in times.items():
        res[name] = {"median_ms": statistics.median(ts), "q25_ms": float(np.percentile(ts, 25)),
                     "q75_ms": float(np.percentile(ts, 75)), "rounds": len(ts)}
    return res


def profile_flow_overhead(cfg: dict, seed: int = 0, reps: int = 2000) -> Dict[str, float]:
    """Microseconds per call of the non-network parts of ``Flow.loss`` (batch ``batch_size``, dim ``dim``),
    next to the hand-written equivalents, to locate any framework overhead."""
    from sciflow import Flow
    from sciflow.spaces.euclidean import Euclidean

    dim, bs = int(cfg.get("dim", 2)), int(cfg.get("batch_size", 256))
    torch.manual_seed(seed)
    flow = Flow(nn.Identity(), space=Euclidean(dim))
    x1 = torch.randn(bs, dim)
    x0 = torch.randn(bs, dim)
    t = torch.rand(bs)
    sample = flow.path.sample(x0, x1, t)
    out = torch.randn(bs, dim)

    def timeit(fn):
        for _ in range(50):
            fn()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t0) / reps * 1e6

    def raw_all():
        x0_ = torch.randn_like(x1)
        t_ = torch.rand(bs)
        tt = t_[:, None]
        xt = tt * x1 + (1 - tt) * x0_
        return (out - (x1 - x0_)).pow(2).mean()

    class _Const(nn.Module):
        def forward(self, x, t, cond=None):
            return out

    flow_const = Flow(_Const(), space=Euclidean(dim))
    return {
        "Flow.loss without network": timeit(lambda: flow_const.loss(x1)),
        "hand-written loss without network": timeit(raw_all),
        "  source: space.random_base": timeit(lambda: flow.sample_source(bs, dtype=x1.dtype)),
        "  coupling (independent)": timeit(lambda: flow.coupling(x0, x1, None)),
        "  time_sampler (uniform)": timeit(lambda: flow.time_sampler(bs, dtype=x1.dtype)),
        "  path.sample (cond-OT)": timeit(lambda: flow.path.sample(x0, x1, t)),
        "  path.loss + mean": timeit(lambda: flow.path.loss(out, sample, "velocity").mean()),
    }


# ------------------------------------------------------------------------------------------------
# b. OT couplings
# ------------------------------------------------------------------------------------------------
def bench_ot(cfg: dict, seed: int = 0, data: str = "eight_gaussians") -> List[dict]:
    """Time and transport cost of sciflow couplings vs POT ``ot.emd`` per batch size."""
    import ot

    sizes = [int(s) for s in cfg.get("batch_sizes", [256, 1024, 4096])]
    repeats = [int(r) for r in cfg.get("repeats", [5, 3, 1])]
    pot_max_repeats = cfg.get("pot_repeats")
    names = list(cfg.get("couplings", ["exact_ot", "sinkhorn"]))
    rows = []
    for i, n in enumerate(sizes):
        reps = repeats[i] if i < len(repeats) else 1
        g = torch.Generator().manual_seed(seed + n)
        x0 = torch.randn(n, 2, generator=g)
        x1 = _toy(data, n, g)
        # POT exact
        a64, b64 = x0.double().numpy(), x1.double().numpy()
        w = np.full(n, 1.0 / n)
        pot_reps = reps if pot_max_repeats is None else min(reps, int(pot_max_repeats[i]))
        pot_times = []
        for _ in range(max(1, pot_reps)):
            t0 = time.perf_counter()
            m = ot.dist(a64, b64)
            plan = ot.emd(w, w, m, numItermax=10_000_000)
            pot_times.append(time.perf_counter() - t0)
        exact_cost = float((plan * m).sum())
        indep_cost = float((x0 - x1).pow(2).sum(-1).mean())
        rows.append({"batch": n, "method": "POT ot.emd (exact)", "seconds": statistics.median(pot_times),
                     "cost": exact_cost, "gap_pct": 0.0, "repeats": len(pot_times)})
        rows.append({"batch": n, "method": "independent (no OT)", "seconds": 0.0, "cost": indep_cost,
                     "gap_pct": 100 * (indep_cost - exact_cost) / exact_cost, "repeats": 0})
        for spec in names:
            spec, max_batch = _split_max_batch(spec)
            if max_batch is not None and n > max_batch:
                continue
            name = _spec_label(spec)
            coupling = _coupling_or_none(spec)
            if coupling is None:
                rows.append({"batch": n, "method": f"sciflow {name}", "seconds": float("nan"), "cost": float("nan"),
                             "gap_pct": float("nan"), "repeats": 0, "note": "not registered"})
                continue
            ts, costs = [], []
            for r in range(max(1, reps)):
                gen = torch.Generator().manual_seed(seed + r)
                t0 = time.perf_counter()
                p0, p1, _ = coupling(x0, x1, None, generator=gen)
                ts.append(time.perf_counter() - t0)
                costs.append(float((p0 - p1).pow(2).sum(-1).mean()))
            cost = statistics.mean(costs)
            rows.append({"batch": n, "method": f"sciflow {name}", "seconds": statistics.median(ts), "cost": cost,
                         "gap_pct": 100 * (cost - exact_cost) / exact_cost, "repeats": len(ts)})
    return rows


# ------------------------------------------------------------------------------------------------
# c. sample quality vs NFE
# ------------------------------------------------------------------------------------------------
def bench_quality(cfg: dict, seed: int = 0, data: str = "eight_gaussians") -> dict:
    """Train one model per coupling, then W2 vs NFE for each sampler setting."""
    from sciflow import Flow
    from sciflow.spaces.euclidean import Euclidean

    bs, steps = int(cfg.get("batch_size", 256)), int(cfg.get("train_steps", 2000))
    lr, n_eval = float(cfg.get("lr", 1e-3)), int(cfg.get("n_eval", 2000))
    g = torch.Generator().manual_seed(seed + 1)
    heldout = _toy(data, n_eval, g)
    # finite-sample floor: W2 between independent data samples of the same size (mode counts of a
    # mixture fluctuate, so a single draw is noisy: report the median and range of a few)
    floors = [w2_exact(_toy(data, n_eval, g), heldout) for _ in range(int(cfg.get("floor_draws", 5)))]
    results = {"data_vs_data_w2": statistics.median(floors), "data_vs_data_w2_range": (min(floors), max(floors)),
               "runs": [], "train": {}}
    settings = ([("euler", {"steps": s}) for s in cfg.get("euler_steps", [1, 2, 4, 8, 16, 32])]
                + [("midpoint", {"steps": s}) for s in cfg.get("midpoint_steps", [1, 2, 4, 8, 16])]
                + [("dopri5", {"atol": float(tol), "rtol": float(tol)}) for tol in cfg.get("dopri5_tol", [1e-2, 1e-3, 1e-5])])
    for cspec in cfg.get("couplings", ["independent", "exact_ot"]):
        cname = _spec_label(cspec)
        coupling = _coupling_or_none(cspec)
        if coupling is None:
            results["train"][cname] = {"note": "not registered"}
            continue
        torch.manual_seed(seed)
        net = TimeConcatMLP(2, int(cfg.get("hidden", 256)), int(cfg.get("depth", 3)))
        flow = Flow(net, space=Euclidean(2), coupling=coupling)
        opt = torch.optim.Adam(flow.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        dg = torch.Generator().manual_seed(seed + 2)
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = flow.loss(_toy(data, bs, dg))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        train_s = time.perf_counter() - t0
        results["train"][cname] = {"seconds": train_s, "steps": steps, "final_loss": float(loss)}
        flow.eval()
        for sname, kw in settings:
            out = flow.sample(n_eval, sampler=sname, generator=torch.Generator().manual_seed(seed + 3), **kw)
            w2 = w2_exact(out.x, heldout)
            label = f"steps={kw['steps']}" if "steps" in kw else f"tol={kw['atol']:g}"
            results["runs"].append({"coupling": cname, "sampler": sname, "setting": label, "nfe": int(out.nfe),
                                    "w2": w2})
            print(f"  quality {cname:12s} {sname:8s} {label:10s} NFE {out.nfe:4d}  W2 {w2:.4f}", flush=True)
    return results


# ------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------
def _fmt_load(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def _markdown(results: dict, suite: dict, command: str, machine: str) -> str:
    from sciflow.benchmarking import markdown_table

    ts = results.get("training_step", {})
    tcfg = suite.get("training_step", {})
    lines = ["## Core: sciflow vs raw torch, torchcfm, flow_matching", "",
             f"Command: `{command}`  ", f"Machine: {machine}  ",
             f"torch threads: {results['threads']}; wall time of the whole run: {results['wall_s']:.0f} s; "
             f"1-min load average at start / end: {_fmt_load(results.get('load_start'))} / "
             f"{_fmt_load(results.get('load_end'))} (a load above the core count inflates absolute times: "
             f"compare the ratios, measured interleaved)", ""]
    if ts:
        ref = ts.get("torchcfm", ts.get("raw torch"))["median_ms"]
        lines += [f"### a. Training-step time (forward + loss + backward + Adam step)", "",
                  f"Same network class for every contender: `TimeConcatMLP` (plain torch MLP on `[x, t]`, "
                  f"{tcfg.get('depth', 3)} hidden layers of {tcfg.get('hidden', 256)}, SiLU), "
                  f"{tcfg.get('dim', 2)}-D eight-Gaussians data, batch {tcfg.get('batch_size', 256)}. "
                  f"Contenders interleaved in shuffled order, {tcfg.get('warmup_rounds', 3)} warm-up rounds "
                  f"dropped, median over {tcfg.get('rounds', 30)} rounds.", ""]
        rows = []
        for name, r in ts.items():
            if _is_ot(name):
                r_ref = ts.get("torchcfm exact-OT", {}).get("median_ms")
                ratio = r["median_ms"] / r_ref if r_ref else float("nan")
                ref_name = "torchcfm exact-OT"
            else:
                ratio, ref_name = r["median_ms"] / ref, "torchcfm"
            rows.append([name, r["median_ms"], f"{r['q25_ms']:.3g}-{r['q75_ms']:.3g}", ratio, ref_name])
        lines += [markdown_table(["contender", "median ms/step", "IQR ms", "ratio", "ratio to"], rows), ""]
        prof = results.get("flow_overhead")
        if prof:
            lines += ["Non-network cost of one loss evaluation (microseconds per call):", "",
                      markdown_table(["part", "us"], [[k.strip(), v] for k, v in prof.items()]), ""]
    ot_rows = results.get("ot")
    if ot_rows:
        lines += ["### b. Minibatch OT couplings (N(0, I) source vs eight-Gaussians data)", "",
                  "cost = mean squared distance of the returned pairs; gap = (cost - exact) / exact.", ""]
        lines += [markdown_table(["batch", "method", "seconds", "cost", "gap %", "repeats"],
                                 [[r["batch"], r["method"], r["seconds"], r["cost"], r["gap_pct"],
                                   r.get("note", r["repeats"])] for r in ot_rows]), ""]
    q = results.get("quality")
    if q:
        qc = suite.get("quality", {})
        train_txt = "; ".join(
            f"{k}: {v['seconds']:.0f} s, final loss {v['final_loss']:.3f}" if "seconds" in v else f"{k}: {v['note']}"
            for k, v in q["train"].items())
        lines += ["### c. Sample quality vs NFE (eight Gaussians)", "",
                  f"`TimeConcatMLP` trained {qc.get('train_steps', 2000)} steps (batch {qc.get('batch_size', 256)}, "
                  f"Adam {qc.get('lr', 1e-3)}, cosine decay) per coupling ({train_txt}). "
                  f"W2 = exact POT W2 between {qc.get('n_eval', 2000)} generated and {qc.get('n_eval', 2000)} "
                  f"held-out points; independent data samples of that size are {q['data_vs_data_w2']:.3f} "
                  f"(median; range {q['data_vs_data_w2_range'][0]:.3f}-{q['data_vs_data_w2_range'][1]:.3f}) "
                  f"from the held-out set (finite-sample floor).", ""]
        couplings = list(dict.fromkeys(r["coupling"] for r in q["runs"]))
        keys = list(dict.fromkeys((r["sampler"], r["setting"]) for r in q["runs"]))
        table = []
        for sname, setting in keys:
            row = [sname, setting]
            for c in couplings:
                hit = [r for r in q["runs"] if r["coupling"] == c and r["sampler"] == sname and r["setting"] == setting]
                row += [hit[0]["nfe"], hit[0]["w2"]] if hit else ["", ""]
            table.append(row)
        header = ["sampler", "setting"] + [h for c in couplings for h in (f"NFE ({c})", f"W2 ({c})")]
        lines += [markdown_table(header, table), ""]
    return "\n".join(lines)


def run(suite: dict, benchmarks_md: str = "BENCHMARKS.md") -> dict:
    """Run the core suite described by ``suite`` (the YAML's mapping), print the tables, write the
    ``core`` section of ``benchmarks_md`` (skipped when it is ``None``) and return all figures."""
    from sciflow.benchmarking import machine_description, publish

    seed = int(suite.get("seed", 0))
    threads = suite.get("num_threads")
    if threads:
        torch.set_num_threads(int(threads))
    data = suite.get("dataset", "eight_gaussians")
    parts = suite.get("parts", ["training_step", "ot", "quality"])
    t_start = time.perf_counter()
    results: Dict[str, Any] = {"threads": torch.get_num_threads(), "load_start": _load()}
    if "training_step" in parts:
        print("[core] a. training-step time ...", flush=True)
        results["training_step"] = bench_training_step(suite.get("training_step", {}), seed, data)
        results["flow_overhead"] = profile_flow_overhead(suite.get("training_step", {}), seed)
        for k, v in results["training_step"].items():
            print(f"  {k:20s} {v['median_ms']:7.3f} ms/step (IQR {v['q25_ms']:.3f}-{v['q75_ms']:.3f})", flush=True)
        for k, v in results["flow_overhead"].items():
            print(f"  {k:36s} {v:8.1f} us", flush=True)
    if "ot" in parts:
        print("[core] b. OT couplings ...", flush=True)
        results["ot"] = bench_ot(suite.get("ot", {}), seed, data)
        for r in results["ot"]:
            print(f"  n={r['batch']:5d} {r['method']:24s} {r['seconds']:9.4f} s  cost {r['cost']:.4f}  "
                  f"gap {r['gap_pct']:7.2f} %", flush=True)
    if "quality" in parts:
        print("[core] c. sample quality vs NFE ...", flush=True)
        results["quality"] = bench_quality(suite.get("quality", {}), seed, data)
    results["wall_s"] = time.perf_counter() - t_start
    results["load_end"] = _load()
    command = suite.get("_command") or suite.get("command") or _command(suite.get("_path"))
    md = _markdown(results, suite, command, machine_description())
    publish(SECTION, md, benchmarks_md)
    return results


def main(argv: Optional[List[str]] = None) -> int:
    from sciflow.benchmarking import benchmark_main

    return benchmark_main(run, "sciflow core benchmark", "configs/benchmarks/core.yaml", argv)


if __name__ == "__main__":
    sys.exit(main())
