"""Riemannian benchmark: Earth densities on S^2 and exp/log speed against geomstats.

Parts, parameterised by ``configs/benchmarks/riemannian.yaml``:

a. **Earth NLL** (Chen & Lipman 2024, Table 2 protocol): for each data set (volcano, earthquake) and seed,
   a random 80/10/10 split by that seed, train the ``earth`` task with :func:`sciflow.training.train`
   (the same code path as ``sciflow train configs/riemannian/earth_*.yaml``), report test NLL in nats
   (Riemannian change of variables, exact divergence, RK4), mean +- std over seeds, beside the published
   Riemannian FM numbers. Our CPU budget is a few minutes per run, far below the paper's.
   ``earth.workers`` runs train at a time in separate processes.
b. **Known densities** on T^2 (mixture of wrapped normals, closed form) and SO(3) (mixture of IGSO(3),
   density from the IGSO(3) series): train with :func:`sciflow.training.fit`, report the model's test NLL
   beside the oracle NLL (mean -log p_true of the same test points).
c. **exp + log speed** on the same N points (default 20,000): sciflow's closed forms vs geomstats
   (numpy backend) for S^2 and SO(3). geomstats cannot import next to numpy >= 2.4, so when it is
   missing in this environment the timing runs in the Python named by ``geomstats_python`` (a venv
   with numpy<2.4) on the same points, saved to a temporary .npy file.

Run: ``python -m sciflow.benchmarks.riemannian configs/benchmarks/riemannian.yaml`` (or ``sciflow
benchmark configs/benchmarks/riemannian.yaml``); ``--parts known`` runs only that part and reads the others
from the results files of earlier runs. Prints the tables and writes the ``riemannian`` section of
BENCHMARKS.md. Time convention: t = 0 source (uniform on S^2), t = 1 data.
"""
from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

SECTION = "riemannian"
PUBLISHED = {"volcano": (-7.93, 1.67), "earthquake": (-0.28, 0.08)}  # Chen & Lipman 2024, Riemannian FM


def _command() -> str:
    argv = list(sys.argv)
    if argv and argv[0].rsplit("/", 1)[-1] == "sciflow":
        return "sciflow " + " ".join(argv[1:])
    return "python -m sciflow.benchmarks.riemannian " + " ".join(argv[1:])


# -- a. Earth NLL ----------------------------------------------------------------------------------
def _train_one(cfg_path: str, overrides: List[str], num_threads: int) -> Dict[str, Any]:
    """One Earth run (also the body of a worker process): train + evaluate, metrics with wall time."""
    from sciflow.training import train

    if num_threads:
        torch.set_num_threads(int(num_threads))
    t0 = time.perf_counter()
    res = train(cfg_path, overrides)
    m = dict(res.metrics)
    m["wall_seconds"] = time.perf_counter() - t0
    return m


def earth_nll(suite: Dict[str, Any]) -> Dict[str, Any]:
    """Part a: every (data set, seed) run; ``earth.workers`` > 1 trains that many runs in parallel processes
    (each with ``num_threads`` intra-op threads), which changes wall time only, not the results."""
    ec = suite["earth"]
    root = Path(ec.get("run_root", "runs/benchmarks/riemannian"))
    jobs = []
    for name, cfg_path in ec["datasets"].items():
        for seed in ec["seeds"]:
            overrides = [f"seed={seed}", f"name=bench_{name}_s{seed}", f"run_dir={root / f'{name}_s{seed}'}",
                         "trainer.progress=false", f"eval.plot={'true' if seed == ec['seeds'][0] else 'false'}"]
            overrides += [f"{k}={v}" for k, v in ec.get("overrides", {}).items()]
            jobs.append((name, seed, cfg_path, overrides))
    threads = int(suite.get("num_threads") or 0)
    workers = int(ec.get("workers", 1))
    if workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            futs = [pool.submit(_train_one, c, o, threads) for _, _, c, o in jobs]
            metrics = [f.result() for f in futs]
    else:
        metrics = [_train_one(c, o, threads) for _, _, c, o in jobs]
    out: Dict[str, Any] = {}
    for (name, seed, cfg_path, _), m in zip(jobs, metrics):
        m["seed"] = seed
        print(f"[earth] {name} seed {seed}: test NLL {m['test_nll']:.3f} nats "
              f"(train {m.get('train_seconds', float('nan')):.0f} s, total {m['wall_seconds']:.0f} s)", flush=True)
        out.setdefault(name, {"runs": [], "config": cfg_path})["runs"].append(m)
    for r in out.values():
        nll = [x["test_nll"] for x in r["runs"]]
        r["mean"] = statistics.mean(nll)
        r["std"] = statistics.stdev(nll) if len(nll) > 1 else float("nan")
    return out


# -- c. exp/log speed ------------------------------------------------------------------------------
def _points(kind: str, n: int, seed: int):
    from sciflow.spaces import SO3, Sphere

    g = torch.Generator().manual_seed(seed)
    sp = Sphere(2) if kind == "sphere" else SO3()
    return sp, sp.random_base(n, dtype=torch.float64, generator=g), sp.random_base(n, dtype=torch.float64, generator=g)


def _time(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


_GEOMSTATS_SCRIPT = r"""
import json, sys, time
import numpy as np
from geomstats.geometry.hypersphere import Hypersphere
from geomstats.geometry.special_orthogonal import SpecialOrthogonal
kind, xf, yf, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
x, y = np.load(xf), np.load(yf)
m = Hypersphere(2) if kind == "sphere" else SpecialOrthogonal(3)
ts = []
for _ in range(repeats):
    t0 = time.perf_counter()
    v = m.metric.log(y, x)
    z = m.metric.exp(v, x)
    ts.append(time.perf_counter() - t0)
ts.sort()
err = float(np.abs(z - y).max())
print(json.dumps({"seconds": ts[len(ts) // 2], "max_err": err}))
"""


def speed(suite: Dict[str, Any]) -> Dict[str, Any]:
    from sciflow.spaces.geomstats_adapter import geomstats_available

    sc = suite["speed"]
    n, repeats = int(sc.get("n", 20000)), int(sc.get("repeats", 5))
    out = {}
    for kind in sc.get("spaces", ["sphere", "so3"]):
        sp, x, y = _points(kind, n, suite.get("seed", 0))
        ours = _time(lambda: sp.exp(x, sp.log(x, y)), repeats)
        err = float(sp.dist(sp.exp(x, sp.log(x, y)), y).max())
        row = {"n": n, "sciflow_seconds": ours, "sciflow_max_dist_err": err}
        py = None if geomstats_available() else sc.get("geomstats_python")
        if geomstats_available() or (py and Path(py).exists()):
            with tempfile.TemporaryDirectory() as d:
                import numpy as np

                # geomstats may be timed on the first ``geomstats_n[kind]`` of the same points (SO(3) takes
                # about a minute for 20,000 on an idle core); its time is then scaled linearly to n.
                n_gs = int(sc.get("geomstats_n", {}).get(kind, n))
                xf, yf = f"{d}/x.npy", f"{d}/y.npy"
                np.save(xf, x[:n_gs].numpy())
                np.save(yf, y[:n_gs].numpy())
                script = f"{d}/gs.py"
                Path(script).write_text(_GEOMSTATS_SCRIPT)
                gs_repeats = 1 if kind == "so3" else repeats
                timeout = int(sc.get("geomstats_timeout", 600))
                try:
                    proc = subprocess.run([py or sys.executable, script, kind, xf, yf, str(gs_repeats)],
                                          capture_output=True, text=True, timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc = None
            if proc is None:
                row["geomstats_error"] = f"> {timeout} s (timed out on {n_gs} points)"
            elif proc.returncode == 0:
                g = json.loads(proc.stdout.strip().splitlines()[-1])
                row.update(geomstats_seconds=g["seconds"] * n / n_gs, geomstats_max_err=g["max_err"],
                           geomstats_points_timed=n_gs, geomstats_python=py or sys.executable)
            else:
                row["geomstats_error"] = proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"
        else:
            row["geomstats_error"] = "geomstats not importable (numpy>=2.4) and no geomstats_python given"
        print(f"[speed] {kind}: {row}", flush=True)
        out[kind] = row
    return out


# -- c. known densities on T^2 and SO(3) ----------------------------------------------------------
class WrappedNormalMixtureT2:
    """Mixture of axis-aligned wrapped normals on the flat torus T^d (angles in [-pi, pi)).

    p(x) = sum_k w_k prod_j sum_{n=-W..W} N(x_j + 2 pi n; mu_kj, s_kj^2) w.r.t. the flat volume
    (total (2 pi)^d); with s <= 1 and W = 3 the truncated wrapping sum is exact to float precision.
    """

    def __init__(self, means, scales, weights, wraps: int = 3):
        self.mu = torch.as_tensor(means, dtype=torch.float64)          # (K, d)
        self.s = torch.as_tensor(scales, dtype=torch.float64)          # (K, d)
        w = torch.as_tensor(weights, dtype=torch.float64)
        self.logw = (w / w.sum()).log()                                # (K,)
        self.wraps = int(wraps)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        from sciflow.spaces.torus import wrap

        k = torch.multinomial(self.logw.exp(), n, replacement=True, generator=generator)
        z = torch.randn((n, self.mu.shape[1]), dtype=torch.float64, generator=generator)
        return wrap(self.mu[k] + self.s[k] * z)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        shifts = 2 * math.pi * torch.arange(-self.wraps, self.wraps + 1, dtype=torch.float64)
        diff = x[:, None, :, None] + shifts - self.mu[None, :, :, None]            # (B, K, d, 2W+1)
        s = self.s[None, :, :, None]
        lg = -0.5 * (diff / s) ** 2 - torch.log(s) - 0.5 * math.log(2 * math.pi)
        per_dim = torch.logsumexp(lg, -1).sum(-1)                                   # (B, K)
        return torch.logsumexp(per_dim + self.logw, -1)


class IGSO3Mixture:
    """Mixture of isotropic Gaussians on SO(3): p(R) = sum_k w_k f_sigma_k(angle(C_k^T R)) / (8 pi^2).

    f is the IGSO(3) series of :class:`sciflow.spaces.so3.IGSO3` (density w.r.t. the normalised Haar
    measure), so log p is w.r.t. the volume of SO(3) with metric 1/2 tr(U^T V) (total 8 pi^2), the same
    measure as the model's log-likelihood.
    """

    def __init__(self, centres: torch.Tensor, sigmas, weights):
        from sciflow.spaces.so3 import IGSO3

        self.c = centres.to(torch.float64)                                       # (K, 3, 3)
        self.comps = [IGSO3(float(s)) for s in sigmas]
        w = torch.as_tensor(weights, dtype=torch.float64)
        self.logw = (w / w.sum()).log()

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        k = torch.multinomial(self.logw.exp(), n, replacement=True, generator=generator)
        out = torch.empty((n, 3, 3), dtype=torch.float64)
        for j, comp in enumerate(self.comps):   # loop over the few mixture components, not over samples
            m = k == j
            if m.any():
                out[m] = self.c[j] @ comp.sample(int(m.sum()), dtype=torch.float64, generator=generator)
        return out

    def log_prob(self, r: torch.Tensor) -> torch.Tensor:
        r = r.to(torch.float64)
        lp = torch.stack([comp.log_prob(self.c[j].transpose(-1, -2) @ r) for j, comp in enumerate(self.comps)], -1)
        return torch.logsumexp(lp + self.logw, -1)


def _known_problem(kind: str, spec: Dict[str, Any]):
    """(space, target density, flow) for a known-density problem, built from the suite's ``known.<kind>``."""
    from sciflow import Flow
    from sciflow.nn.mlp import MLP
    from sciflow.paths.geodesic import GeodesicPath
    from sciflow.spaces import SO3, Torus
    from sciflow.spaces.so3 import exp_so3
    from sciflow.spaces.torus import PeriodicFeatures

    hidden, depth = int(spec.get("hidden", 256)), int(spec.get("depth", 4))
    if kind == "torus":
        space = Torus(2)
        target = WrappedNormalMixtureT2(spec["means"], spec["scales"], spec["weights"])
        # the network sees (cos x, sin x): a field on T^2 must be 2 pi periodic in every angle
        net = PeriodicFeatures(MLP(4, hidden=hidden, depth=depth), d=2)
    elif kind == "so3":
        space = SO3()
        centres = exp_so3(torch.as_tensor(spec["centres"], dtype=torch.float64))  # rotation vectors (K, 3)
        target = IGSO3Mixture(centres, spec["sigmas"], spec["weights"])
        net = MLP((3, 3), hidden=hidden, depth=depth)  # ambient 3x3 matrix in, projected to the tangent space
    else:
        raise ValueError(f"known-density problem must be 'torus' or 'so3', got {kind!r}")
    return space, target, Flow(net, space=space, path=GeodesicPath(space))


def known_densities(suite: Dict[str, Any]) -> Dict[str, Any]:
    """Train on samples of a closed-form density on T^2 / SO(3); test NLL of the model vs the oracle.

    The oracle NLL is the mean of -log p_true over the same test samples (a Monte Carlo estimate of the
    target's entropy): a perfect model reaches it, the uniform base scores log vol.
    """
    from sciflow.likelihood import log_prob
    from sciflow.training import fit

    kc = suite["known"]
    out: Dict[str, Any] = {}
    for kind in kc.get("spaces", ["torus", "so3"]):
        spec = dict(kc[kind])
        runs = []
        for seed in kc.get("seeds", [0]):
            space, target, flow = _known_problem(kind, spec)
            g = torch.Generator().manual_seed(1000 + seed)
            dtype = torch.get_default_dtype()
            x_train = target.sample(int(spec.get("n_train", 20000)), g).to(dtype)
            x_test = target.sample(int(spec.get("n_test", 2000)), g)
            oracle = float(-target.log_prob(x_test).mean())
            x_test = x_test.to(dtype)
            torch.manual_seed(seed)
            t0 = time.perf_counter()
            model = fit(flow, x_train, max_steps=int(spec.get("steps", 3000)),
                        batch_size=int(spec.get("batch_size", 512)), lr=float(spec.get("lr", 2e-3)), seed=seed,
                        lr_schedule="cosine", warmup_steps=int(spec.get("warmup_steps", 100)),
                        ema_decay=float(spec.get("ema_decay", 0.999)))
            train_s = time.perf_counter() - t0
            with torch.no_grad():
                lp = torch.cat([log_prob(model, xb, steps=int(spec.get("nll_steps", 50)), method="rk4")
                                for xb in x_test.split(1000)])
            nll = float(-lp.mean())
            sem = float(lp.std() / math.sqrt(len(lp)))
            row = {"seed": seed, "test_nll": nll, "test_nll_sem": sem, "oracle_nll": oracle,
                   "uniform_nll": math.log(space.volume()), "train_seconds": train_s,
                   "steps": int(spec.get("steps", 3000))}
            print(f"[known] {kind} seed {seed}: model NLL {nll:.3f} ± {sem:.3f}, oracle {oracle:.3f}, "
                  f"uniform {row['uniform_nll']:.3f} (train {train_s:.0f} s)", flush=True)
            runs.append(row)
        gap = [r["test_nll"] - r["oracle_nll"] for r in runs]
        out[kind] = {"runs": runs, "gap_mean": statistics.mean(gap),
                     "gap_std": statistics.stdev(gap) if len(gap) > 1 else float("nan"), "spec": spec}
    return out


# -- report ----------------------------------------------------------------------------------------
def _markdown(results: Dict[str, Any], suite: Dict[str, Any], command: str, machine: str,
              reused: Optional[Dict[str, str]] = None) -> str:
    from sciflow.benchmarking import markdown_table

    reused = reused or {}
    lines = ["## Riemannian flow matching", "",
             f"Command: `{command}`  ", f"Machine: {machine}  ",
             f"Torch intra-op threads: {suite.get('num_threads')}", ""]
    if reused:
        lines += ["Not re-run by this command (recorded results reused, see `reuse:` in the suite): "
                  + "; ".join(f"{k} ({v})" for k, v in reused.items()) + ".", ""]
    if "earth" in results:
        ec = suite["earth"]
        lines += ["### Earth data on S^2: test NLL (nats, lower is better)", "",
                  f"Random 80/10/10 split per seed, seeds {ec['seeds']}; uniform base on S^2 (NLL log 4 pi = "
                  f"{math.log(4 * math.pi):.3f}); geodesic cond-OT path; test NLL by the Riemannian change of "
                  f"variables (exact divergence, fixed-step RK4). Configs: "
                  + ", ".join(f"`{c}`" for c in ec["datasets"].values())
                  + f"; overrides: `{ec.get('overrides', {})}`; {int(ec.get('workers', 1))} run(s) trained at "
                  "a time in parallel processes (train s / run is wall time under that sharing). "
                  "Published: Chen & Lipman 2024 (Riemannian FM), trained far longer on GPU.", ""]
        rows = []
        for name, r in results["earth"].items():
            pm, ps = PUBLISHED.get(name, (float("nan"), float("nan")))
            per_seed = ", ".join(f"{x['test_nll']:.3f}" for x in r["runs"])
            secs = statistics.mean(x.get("train_seconds", float("nan")) for x in r["runs"])
            rows.append([name, f"{r['mean']:.3f} ± {r['std']:.3f}", per_seed, f"{pm} ± {ps}",
                         f"{r['runs'][0].get('steps', '?')}", f"{secs:.0f}"])
        lines += [markdown_table(["data", "sciflow test NLL (mean ± std)", "per seed", "published RFM",
                                  "train steps", "train s / run"], rows), ""]
    if "known" in results:
        lines += ["### Known densities on T^2 and SO(3): test NLL (nats) vs the true density", "",
                  "Train on samples of a closed-form density (`sciflow.training.fit`, geodesic cond-OT path, "
                  "uniform base, EMA weights), then the model's test NLL (Riemannian change of variables, "
                  "exact divergence, RK4) against the oracle NLL = mean -log p_true on the same test samples "
                  "(a perfect model's score, the target's entropy). T^2: mixture of axis-aligned wrapped "
                  "normals (wrapping sum truncated at |n| <= 3), MLP on (cos, sin) features. SO(3): mixture "
                  "of IGSO(3) components (density from sciflow's IGSO(3) series), MLP on the 3x3 matrix; "
                  "log-densities w.r.t. the volume of the metric 1/2 tr(U^T V) (total 8 pi^2).", ""]
        rows = []
        for kind, r in results["known"].items():
            sp = r["spec"]
            for x in r["runs"]:
                rows.append([kind, x["seed"], f"{x['test_nll']:.3f} ± {x['test_nll_sem']:.3f}",
                             f"{x['oracle_nll']:.3f}", f"{x['test_nll'] - x['oracle_nll']:.3f}",
                             f"{x['uniform_nll']:.3f}", f"{sp.get('hidden', 256)}x{sp.get('depth', 4)}",
                             x["steps"], f"{x['train_seconds']:.0f}"])
        lines += [markdown_table(["space", "seed", "model test NLL ± s.e.", "oracle NLL", "gap",
                                  "uniform NLL", "MLP", "train steps", "train s"], rows), ""]
    if "speed" in results:
        lines += ["### exp + log on the same points (seconds, median of repeats; geomstats numpy backend)", ""]
        rows = []
        for kind, r in results["speed"].items():
            gs_s = r.get("geomstats_seconds")
            gs_cell = f"{gs_s:.4f}" if gs_s else r.get("geomstats_error")
            if gs_s and r.get("geomstats_points_timed", r["n"]) != r["n"]:
                gs_cell += f" (timed on {r['geomstats_points_timed']} points, scaled)"
            rows.append([kind, r["n"], f"{r['sciflow_seconds']:.4f}", gs_cell,
                         f"{gs_s / r['sciflow_seconds']:.3g}x" if gs_s else "-", f"{r['sciflow_max_dist_err']:.1e}"])
        lines += [markdown_table(["space", "points", "sciflow s", "geomstats s", "speed-up",
                                  "sciflow max d(exp(log y), y)"], rows), ""]
        lines += ["geomstats 2.8 does not import with numpy >= 2.4; its timings run in a separate venv with "
                  "numpy<2.4 (`geomstats_python` in the suite) on the same float64 points.", ""]
    return "\n".join(lines)


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=float))


def run(suite: dict, benchmarks_md: str = "BENCHMARKS.md") -> dict:
    """Run the parts named in ``suite["parts"]``, print the tables and write the BENCHMARKS.md section.

    Parts: "earth", "known", "speed". Each part run saves its results to ``<run_root>/<part>.json``
    (``run_root`` from the ``earth`` section). Parts listed in ``suite["reuse"]`` (a mapping part -> JSON
    file) are not run: their recorded results are loaded and the section says so, with the date the
    file was written; so are parts not in ``parts`` whose ``<run_root>/<part>.json`` exists.
    """
    from sciflow.benchmarking import machine_description, write_section

    if suite.get("num_threads"):
        torch.set_num_threads(int(suite["num_threads"]))
    parts = suite.get("parts", ["earth", "known", "speed"])
    root = Path(suite.get("earth", {}).get("run_root", "runs/benchmarks/riemannian"))
    runners = {"earth": earth_nll, "known": known_densities, "speed": speed}
    unknown = [p for p in parts if p not in runners]
    if unknown:
        raise ValueError(f"unknown benchmark parts {unknown}; choose from {sorted(runners)}")
    results: Dict[str, Any] = {}
    reused: Dict[str, str] = {}
    reuse = {k: str(root / f"{k}.json") for k in runners if k not in parts and (root / f"{k}.json").exists()}
    reuse.update(suite.get("reuse") or {})
    for part, file in reuse.items():
        if part not in runners:
            raise ValueError(f"reuse: unknown part {part!r}; choose from {sorted(runners)}")
        if part in parts:
            continue
        if not Path(file).exists():  # nothing recorded here yet: measure it now
            print(f"[reuse] {file} not found; running part {part!r}", flush=True)
            parts = list(parts) + [part]
            continue
        rec = json.loads(Path(file).read_text())
        results[part] = rec["results"]
        reused[part] = f"{rec.get('recorded', '?')}, `{file}`"
    for part in ("speed", "earth", "known"):
        if part in parts:
            results[part] = runners[part](suite)
            root.mkdir(parents=True, exist_ok=True)
            (root / f"{part}.json").write_text(json.dumps(
                {"recorded": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": _command(),
                 "results": _jsonable(results[part])}, indent=1))
    md = _markdown(results, suite, _command(), machine_description(), reused)
    print(md)
    if benchmarks_md:
        write_section(SECTION, md, benchmarks_md)
    return results


def main(argv: Optional[List[str]] = None) -> int:
    import argparse

    import yaml

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("suite", help="configs/benchmarks/riemannian.yaml")
    p.add_argument("--benchmarks-md", default="BENCHMARKS.md")
    p.add_argument("--parts", nargs="+", choices=["earth", "known", "speed"],
                   help="run only these parts; the others are read from <run_root>/<part>.json when present")
    args = p.parse_args(argv)
    suite = yaml.safe_load(Path(args.suite).read_text())
    if args.parts:
        suite["parts"] = args.parts
    run(suite, args.benchmarks_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
