"""Riemannian benchmark: Earth densities on S^2 and exp/log speed against geomstats.

Parts, parameterised by ``configs/benchmarks/riemannian.yaml``:

a. **Earth NLL** (Chen & Lipman 2024, Table 2 protocol): for each data set (volcano, earthquake) and seed,
   a random 80/10/10 split by that seed, train the ``earth`` task with :func:`sciflow.training.train`
   (the same code path as ``sciflow train configs/riemannian/earth_*.yaml``), report test NLL in nats
   (Riemannian change of variables, exact divergence, RK4), mean +- std over seeds, beside the published
   Riemannian FM numbers. Our CPU budget is a few minutes per run, far below the paper's.
b. **exp + log speed** on the same N points (default 20,000): sciflow's closed forms vs geomstats
   (numpy backend) for S^2 and SO(3). geomstats cannot import next to numpy >= 2.4, so when it is
   missing in this environment the timing runs in the Python named by ``geomstats_python`` (a venv
   with numpy<2.4) on the same points, saved to a temporary .npy file.

Run: ``python -m sciflow.benchmarks.riemannian configs/benchmarks/riemannian.yaml`` (or ``sciflow
benchmark configs/benchmarks/riemannian.yaml``). Prints the tables and writes the ``riemannian`` section
of BENCHMARKS.md. Time convention: t = 0 source (uniform on S^2), t = 1 data.
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
def earth_nll(suite: Dict[str, Any]) -> Dict[str, Any]:
    from sciflow.training import train

    ec = suite["earth"]
    out: Dict[str, Any] = {}
    root = Path(ec.get("run_root", "runs/benchmarks/riemannian"))
    for name, cfg_path in ec["datasets"].items():
        runs = []
        for seed in ec["seeds"]:
            overrides = [f"seed={seed}", f"name=bench_{name}_s{seed}", f"run_dir={root / f'{name}_s{seed}'}",
                         "trainer.progress=false", f"eval.plot={'true' if seed == ec['seeds'][0] else 'false'}"]
            overrides += [f"{k}={v}" for k, v in ec.get("overrides", {}).items()]
            t0 = time.perf_counter()
            res = train(cfg_path, overrides)
            m = dict(res.metrics)
            m["wall_seconds"] = time.perf_counter() - t0
            m["seed"] = seed
            print(f"[earth] {name} seed {seed}: test NLL {m['test_nll']:.3f} nats "
                  f"(train {m.get('train_seconds', float('nan')):.0f} s, total {m['wall_seconds']:.0f} s)", flush=True)
            runs.append(m)
        nll = [r["test_nll"] for r in runs]
        out[name] = {"runs": runs, "mean": statistics.mean(nll),
                     "std": statistics.stdev(nll) if len(nll) > 1 else float("nan"), "config": cfg_path}
    return out


# -- b. exp/log speed ------------------------------------------------------------------------------
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


# -- report ----------------------------------------------------------------------------------------
def _markdown(results: Dict[str, Any], suite: Dict[str, Any], command: str, machine: str) -> str:
    from sciflow.benchmarking import markdown_table

    lines = ["## Riemannian flow matching", "",
             f"Command: `{command}`  ", f"Machine: {machine}  ",
             f"Torch intra-op threads: {suite.get('num_threads')}", ""]
    if "earth" in results:
        ec = suite["earth"]
        lines += ["### Earth data on S^2: test NLL (nats, lower is better)", "",
                  f"Random 80/10/10 split per seed, seeds {ec['seeds']}; uniform base on S^2 (NLL log 4 pi = "
                  f"{math.log(4 * math.pi):.3f}); geodesic cond-OT path; test NLL by the Riemannian change of "
                  f"variables (exact divergence, RK4). Config overrides: `{ec.get('overrides', {})}`. "
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


def run(suite: dict, benchmarks_md: str = "BENCHMARKS.md") -> dict:
    """Run the parts named in ``suite["parts"]``, print the tables and write the BENCHMARKS.md section."""
    from sciflow.benchmarking import machine_description, write_section

    if suite.get("num_threads"):
        torch.set_num_threads(int(suite["num_threads"]))
    parts = suite.get("parts", ["earth", "speed"])
    results: Dict[str, Any] = {}
    if "earth" in parts:
        results["earth"] = earth_nll(suite)
    if "speed" in parts:
        results["speed"] = speed(suite)
    md = _markdown(results, suite, _command(), machine_description())
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
    args = p.parse_args(argv)
    suite = yaml.safe_load(Path(args.suite).read_text())
    run(suite, args.benchmarks_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
