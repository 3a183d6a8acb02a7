"""Stochastic-interpolant benchmark: sample quality (W2, MMD) against NFE for the probability-flow ODE
and for SDEs with several diffusion levels epsilon, on two 2-D tasks, and our SDE sampler against the
same SDE run through ``torchsde.sdeint`` (speed and quality).

Tasks (time t = 0 source, t = 1 data):

* ``gaussian_to_data``: x0 ~ N(0, I) -> eight Gaussians, linear interpolant + Brownian gamma, one network
  pair (drift, denoiser) trained with antithetic sampling;
* ``data_to_data``: two moons -> eight Gaussians through the flow's ``source=`` (a data source), Brownian
  bridge noise sigma and the Schrodinger-bridge entropic OT coupling (SF2M: drift + denoiser).

Training uses :func:`sciflow.training.fit` (Lightning, EMA weights). Metrics are
:func:`sciflow.metrics.w2` (exact, POT) and :func:`sciflow.metrics.mmd` (RBF, median heuristic) against
held-out target samples; the "data floor" row is the same metric between two independent target draws.

Run: ``python -m sciflow.benchmarks.interpolants configs/benchmarks/interpolants.yaml`` or
``sciflow benchmark configs/benchmarks/interpolants.yaml``.
"""
from __future__ import annotations

import statistics
import sys
import time
from typing import Any, Dict, List, Optional

import torch

SECTION = "interpolants"


def _toy(name: str, n: int, seed: int) -> torch.Tensor:
    from sciflow.datasets.toy import sample_toy

    return sample_toy(name, n, seed=seed)


def _make_source(name: str):
    from sciflow.registry import get

    fn = get("dataset", name)

    def source(n, cond=None, device=None, dtype=None, generator=None):
        return fn(n, generator=generator).to(device=device, dtype=dtype)

    return source


def _build(task: Dict[str, Any], cfg: Dict[str, Any]):
    import sciflow
    from sciflow.couplings.bridge import schrodinger_bridge
    from sciflow.paths.interpolants import MultiFieldModel, StochasticInterpolantPath, interpolant_flow

    hidden, depth = int(cfg.get("hidden", 128)), int(cfg.get("depth", 3))
    net = MultiFieldModel(drift=sciflow.nn.MLP(2, hidden=hidden, depth=depth),
                          denoiser=sciflow.nn.MLP(2, hidden=hidden, depth=depth))
    space = sciflow.spaces.Euclidean(2)
    if task["kind"] == "gaussian_to_data":
        path = StochasticInterpolantPath(task.get("interpolant", "linear"),
                                         {"name": "brownian", "scale": float(task.get("gamma_scale", 1.0))},
                                         antithetic=bool(task.get("antithetic", True)))
        return interpolant_flow(net, path, "drift_denoiser", space=space), None
    sb = schrodinger_bridge(sigma=float(task["sigma"]))
    flow = interpolant_flow(net, sb["path"], sb["prediction"], space=space, coupling=sb["coupling"],
                            source=_make_source(task["source"]))
    return flow, sb["epsilon"]


def _metrics(x: torch.Tensor, ref: torch.Tensor) -> Dict[str, float]:
    from sciflow.metrics import mmd, w2

    if not torch.isfinite(x).all():
        return {"w2": float("nan"), "mmd": float("nan")}
    return {"w2": w2(x, ref), "mmd": mmd(x, ref)}


def bench_task(name: str, task: Dict[str, Any], cfg: Dict[str, Any], seed: int) -> Dict[str, Any]:
    from sciflow.training import fit

    torch.manual_seed(seed)
    flow, eps_sb = _build(task, cfg)
    x1 = _toy(task["target"], int(cfg.get("n_train", 20000)), seed)
    t0 = time.perf_counter()
    flow = fit(flow, x1, max_steps=int(cfg["train_steps"]), batch_size=int(cfg.get("batch_size", 256)),
               lr=float(cfg.get("lr", 1e-3)), seed=seed)
    train_s = time.perf_counter() - t0
    n_eval = int(cfg.get("n_eval", 1500))
    ref = _toy(task["target"], n_eval, seed + 1000)
    floor = _metrics(_toy(task["target"], n_eval, seed + 2000), ref)
    g = torch.Generator().manual_seed(seed + 3)
    x0 = flow.sample_source(n_eval, generator=g, dtype=torch.float32)
    rows: List[Dict[str, Any]] = []
    eps_list = [float(e) for e in cfg.get("epsilons", [0.1, 0.5, 1.0])]
    for steps in cfg.get("steps", [10, 25, 50, 100]):
        runs = [("ODE heun", "heun", {}, max(1, steps // 2)), ("ODE euler", "euler", {}, steps)]
        runs += [(f"SDE EM eps={e:g}", "euler_maruyama", {"epsilon": e, "seed": seed}, steps) for e in eps_list]
        runs += [(f"SDE Heun eps={e:g}", "sde_heun", {"epsilon": e, "seed": seed}, max(1, steps // 2))
                 for e in eps_list if e in [float(v) for v in cfg.get("heun_epsilons", [0.5])]]
        for label, sampler, kw, s in runs:
            res = flow.sample(x0=x0, sampler=sampler, steps=s, **kw)
            m = _metrics(res.x, ref)
            rows.append({"sampler": label, "budget": steps, "steps": s, "nfe": res.nfe, **m})
            print(f"  [{name}] {label:22s} steps={s:4d} NFE={res.nfe:4d}  W2={m['w2']:.4f}  MMD={m['mmd']:.5f}",
                  flush=True)
    return {"train_s": train_s, "floor": floor, "rows": rows, "eps_sb": eps_sb, "flow": flow, "x0": x0, "ref": ref}


def bench_torchsde(name: str, res: Dict[str, Any], cfg: Dict[str, Any], seed: int) -> List[Dict[str, Any]]:
    flow, x0, ref = res["flow"], res["x0"], res["ref"]
    steps, eps, repeats = int(cfg.get("steps", 100)), float(cfg.get("epsilon", 0.5)), int(cfg.get("repeats", 3))
    pairs = [("sciflow euler_maruyama", "euler_maruyama", {}), ("torchsde euler", "torchsde", {"method": "euler"}),
             ("sciflow sde_heun", "sde_heun", {}), ("torchsde heun (Stratonovich)", "torchsde", {"method": "heun"})]
    times = {label: [] for label, _, _ in pairs}
    results = {}
    for r in range(repeats):  # interleaved rounds: load changes on a shared machine hit every sampler alike
        for label, sampler, kw in pairs:
            s = steps // 2 if "heun" in label else steps
            t0 = time.perf_counter()
            results[label] = flow.sample(x0=x0, sampler=sampler, steps=s, epsilon=eps, seed=seed + r, **kw)
            times[label].append(time.perf_counter() - t0)
    out = []
    for label, _, _ in pairs:
        result = results[label]
        m = _metrics(result.x, ref)
        row = {"sampler": label, "steps": len(result.times) - 1, "nfe": result.nfe,
               "ms": 1000 * statistics.median(times[label]), **m}
        out.append(row)
        print(f"  [{name}] {label:30s} steps={row['steps']:4d} NFE={row['nfe']:4d} {row['ms']:8.1f} ms  "
              f"W2={m['w2']:.4f}  MMD={m['mmd']:.5f}", flush=True)
    return out


def _markdown(results, suite, command, machine) -> str:
    from sciflow.benchmarking import markdown_table

    lines = [
        "## Stochastic interpolants: ODE vs SDE sampling, torchsde adapter",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}  ",
        f"Total wall time: {results['wall_s']:.0f} s. Training: `sciflow.training.fit` (Lightning, EMA 0.999), "
        f"{suite['train']['train_steps']} steps, batch {suite['train'].get('batch_size', 256)}, two MLPs "
        f"{suite['train'].get('depth', 3)}x{suite['train'].get('hidden', 128)} (drift, denoiser). "
        f"Metrics on {suite['train'].get('n_eval', 1500)} samples vs held-out target samples: exact W2 (POT) and "
        f"unbiased RBF MMD^2 (median heuristic). NFE = network evaluations per sample (a two-field evaluation "
        f"counts once; torchsde's counts are whatever its solver calls).",
        "",
    ]
    for name, task in suite["tasks"].items():
        r = results[name]
        desc = (f"x0 ~ N(0, I) -> {task['target']}, linear interpolant + gamma = {task.get('gamma_scale', 1.0)} "
                f"sqrt(t(1-t)), antithetic={task.get('antithetic', True)}"
                if task["kind"] == "gaussian_to_data" else
                f"{task['source']} -> {task['target']} (data source), Brownian bridge sigma = {task['sigma']}, "
                f"Schrodinger-bridge entropic OT coupling (reg 2 sigma^2); the bridge SDE is eps = sigma^2/2 = "
                f"{r['eps_sb']:g}")
        lines += [f"### {name}: {desc}", "",
                  f"Training took {r['train_s']:.0f} s. Data floor (two independent target draws): "
                  f"W2 {r['floor']['w2']:.4f}, MMD {r['floor']['mmd']:.5f}. (Empirical W2 between finite samples is "
                  f"biased upward; values near or below the floor mean the difference is not resolved at this sample "
                  f"size.)", ""]
        steps = sorted({row["budget"] for row in r["rows"]})
        samplers = list(dict.fromkeys(row["sampler"] for row in r["rows"]))
        table = []
        for s_name in samplers:
            cells = [s_name]
            for s in steps:
                match = [row for row in r["rows"] if row["sampler"] == s_name and row["budget"] == s]
                row = match[0] if match else None
                cells.append(f"{row['nfe']} / {row['w2']:.3f} / {row['mmd']:.4f}" if row else "-")
            table.append(cells)
        lines += ["NFE / W2 / MMD for a budget of N steps (Heun samplers use N/2 steps, about the same NFE):", "",
                  markdown_table(["sampler"] + [f"N={s}" for s in steps], table), ""]
        if f"{name}_torchsde" in results:
            ts = results[f"{name}_torchsde"]
            lines += [f"Same model, same SDE (eps = {suite['torchsde'].get('epsilon', 0.5)}), our sampler vs "
                      f"`torchsde.sdeint` (median of {suite['torchsde'].get('repeats', 3)} runs):", "",
                      markdown_table(["sampler", "steps", "NFE", "time (ms)", "W2", "MMD"],
                                     [[x["sampler"], x["steps"], x["nfe"], x["ms"], x["w2"], x["mmd"]] for x in ts]),
                      ""]
    return "\n".join(lines)


def run(suite: dict, benchmarks_md: str = "BENCHMARKS.md") -> dict:
    """Run the interpolants suite (the YAML mapping), print the figures, write the ``interpolants`` section
    of ``benchmarks_md`` (skipped when ``None``) and return the figures."""
    from sciflow.benchmarking import machine_description, publish

    seed = int(suite.get("seed", 0))
    if suite.get("num_threads"):
        torch.set_num_threads(int(suite["num_threads"]))
    t_start = time.perf_counter()
    results: Dict[str, Any] = {}
    for name, task in suite["tasks"].items():
        print(f"[interpolants] task {name} ...", flush=True)
        res = bench_task(name, task, suite["train"], seed)
        if task.get("torchsde", False):
            results[f"{name}_torchsde"] = bench_torchsde(name, res, suite.get("torchsde", {}), seed)
        results[name] = {k: res[k] for k in ("train_s", "floor", "rows", "eps_sb")}
    results["wall_s"] = time.perf_counter() - t_start
    command = suite.get("_command") or suite.get("command") or f"python -m sciflow.benchmarks.interpolants {suite.get('_path', 'configs/benchmarks/interpolants.yaml')}"
    md = _markdown(results, suite, command, machine_description())
    publish(SECTION, md, benchmarks_md)
    return results


def main(argv: Optional[List[str]] = None) -> int:
    from sciflow.benchmarking import benchmark_main

    return benchmark_main(run, "sciflow stochastic-interpolant benchmark", "configs/benchmarks/interpolants.yaml", argv)


if __name__ == "__main__":
    sys.exit(main())
