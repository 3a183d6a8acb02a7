"""ETH/UCY benchmark: train the flow on each leave-one-out fold, evaluate it beside the baselines.

    sciflow benchmark configs/benchmarks/trajectories.yaml [key=value ...]

Suite keys (all optional but ``runner``):

* ``name`` (``trajectories``): the BENCHMARKS.md section;
* ``root``: ETH/UCY folder (default ``../shared/data/eth_ucy``, relative to the working directory);
* ``scenes``: folds to run (default all five);
* ``config``: per-fold config path with ``{scene}`` (default ``configs/trajectories/{scene}.yaml``);
* ``overrides``: dotted overrides applied to every fold (e.g. ``[trainer.max_steps=300]``);
* ``run_root``: where run directories go (default ``runs/bench_trajectories``);
* ``resume`` (default false): fold run directories are ``run_root/<scene>`` instead of timestamped ones, so a
  re-run after an interruption continues each fold from its checkpoint and reuses the metrics of folds
  (and students) whose saved config is unchanged and whose training finished. Opt-in because a code
  change since the stored run is invisible to that check;
* ``threads``: torch intra-op threads (default 1: on a shared 2-core machine two contending threads
  were >10x slower than one);
* ``distill``: optional list of dotted ``distill.*`` / ``eval.*`` overrides; when present every fold's flow is
  also distilled into a one-step student (``sciflow distill``, conditional IMLE) and the student gets its own
  rows (accuracy, distillation time, seconds per scene at 1 NFE).
* ``seeds``: optional list of training seeds (e.g. ``[0, 1, 2]``); every fold is then trained (and distilled)
  once per seed (run directories ``<scene>-seed<s>``), the tables show each number's mean over the seeds,
  and a line lists every seed's five-fold average with their mean and sample standard deviation. Without it
  each fold trains once with its config's ``seed``.

Every fold trains from scratch (``sciflow.training.train``) and is evaluated on the full test scene with
K = 20 samples per agent; the baselines run on the same windows.
"""
from __future__ import annotations

import math
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import torch

from sciflow.benchmarking import machine_description, markdown_table, write_section

from .data import SCENES

#: published ETH/UCY averages (minADE_20 / minFDE_20, metres) as reported by the papers
PUBLISHED = {
    "MoFlow (Fu et al., CVPR 2025)": (0.20, 0.32),
    "LED (Mao et al., CVPR 2023)": (0.21, 0.33),
    "AgentFormer (Yuan et al., ICCV 2021)": (0.23, 0.39),
}
BASELINES = {"constant_velocity": "constant velocity", "cvm_s": "CVM-S (K=20, sigma 25 deg)",
             "linear": "linear fit to observed track"}


def run(suite: Dict[str, Any], benchmarks_md: str = "BENCHMARKS.md") -> Dict[str, Any]:
    """Run the suite (see module docstring), write the ``trajectories`` section and return all numbers."""
    name = suite.get("name", "trajectories")
    root = suite.get("root", "../shared/data/eth_ucy")
    scenes: List[str] = list(suite.get("scenes", SCENES))
    bad = [s for s in scenes if s not in SCENES]
    if bad:
        raise ValueError(f"suite scenes {bad} unknown; choose from {list(SCENES)}")
    template = suite.get("config", "configs/trajectories/{scene}.yaml")
    overrides = [str(o) for o in suite.get("overrides", [])]
    run_root = Path(suite.get("run_root", "runs/bench_trajectories"))
    threads = int(suite.get("threads", 1))
    resume = bool(suite.get("resume", False))
    if threads > 0:
        torch.set_num_threads(threads)

    seeds = suite.get("seeds")
    if seeds is not None and (not isinstance(seeds, (list, tuple)) or not seeds
                              or not all(isinstance(v, int) and not isinstance(v, bool) for v in seeds)
                              or len(set(seeds)) != len(seeds)):
        raise ValueError(f"suite seeds must be a non-empty list of distinct integers, got {seeds!r}")

    per_seed: Dict[Any, Dict[str, Dict[str, float]]] = {}
    for seed in seeds or [None]:
        per_seed[seed] = {scene: _run_fold(scene, seed, suite, template, root, overrides, run_root, resume)
                          for scene in scenes}
    results = per_seed[None] if seeds is None else {
        scene: _mean_metrics([per_seed[v][scene] for v in seeds]) for scene in scenes}

    md = _markdown(results, scenes, suite, benchmarks_md, per_seed if seeds is not None else None)
    _save(results, run_root / "results.json")
    if seeds is not None:
        _save({str(v): r for v, r in per_seed.items()}, run_root / "results_per_seed.json")
    print(md)
    write_section(name, md, benchmarks_md)
    return {"results": results, **({"per_seed": per_seed} if seeds is not None else {})}


def _run_fold(scene, seed, suite, template, root, overrides, run_root, resume) -> Dict[str, float]:
    """Train (or reuse, with ``resume``) one fold at one seed (None: the config's), distil it when the suite
    asks, and return its metrics (the student's prefixed ``student/``)."""
    from sciflow.training import train
    from sciflow.training.run import completed_metrics, resolve_config

    path = template.format(scene=scene)
    tag = scene if seed is None else f"{scene}-seed{seed}"
    run_dir = run_root / (tag if resume else f"{tag}-{int(time.time())}")
    ov = overrides + ([] if seed is None else [f"seed={seed}"]) + [
        f"data.root={root}", f"data.scene={scene}", f"run_dir={run_dir}",
        "trainer.progress=false", "eval.split=test", "eval.max_scenes=null"]
    done = completed_metrics(resolve_config(path, ov)) if resume else None
    if done is None:
        print(f"[trajectories] fold {tag}: training {path} -> {run_dir}", flush=True)
        done = train(path, ov, evaluate=True).metrics
    else:
        print(f"[trajectories] fold {tag}: finished run in {run_dir}, reusing its metrics", flush=True)
    m = dict(done)
    k = _k(m)
    print(f"[trajectories] {tag}: minADE_{k} {m[f'minADE_{k}']:.3f} minFDE_{k} {m[f'minFDE_{k}']:.3f} "
          f"(train {m.get('train_seconds', float('nan')):.0f} s, {m['sec_per_scene']:.3f} s/scene)", flush=True)
    if "distill" in suite:
        from sciflow.training.distill import distill, distill_config

        d_over = [str(o) for o in suite["distill"] or []] + ["trainer.progress=false", "eval.plot=false",
                                                             "eval.baselines=false"]
        student = completed_metrics(distill_config(run_dir, d_over), "distill_steps") if resume else None
        if student is None:
            student = distill(run_dir, d_over, evaluate=True).metrics
        m.update({f"student/{key}": v for key, v in student.items()})
        print(f"[trajectories] {tag} student: minADE_{k} {student[f'minADE_{k}']:.3f} "
              f"minFDE_{k} {student[f'minFDE_{k}']:.3f} ({student['sec_per_scene']:.3f} s/scene)", flush=True)
    return m


def _mean_metrics(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Key-wise mean of numeric metrics over seeds; non-numeric settings (e.g. ``fpc_keep``) from the first."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and all(key in r for r in runs):
            out[key] = sum(float(r[key]) for r in runs) / len(runs)
    return out


def _save(results, path: Path) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=float))


def render(results_or_runs: Dict[str, Any], suite: Dict[str, Any], benchmarks_md: str = "BENCHMARKS.md") -> str:
    """Re-write the section from stored metrics (``{scene: metrics dict}`` or ``{scene: run_dir}`` holding
    ``metrics.json``) without re-training, e.g. after a change of the table layout."""
    import json

    results = {s: (json.loads((Path(v) / "metrics.json").read_text()) if isinstance(v, (str, Path)) else v)
               for s, v in results_or_runs.items()}
    md = _markdown(results, list(results), suite, benchmarks_md)
    write_section(suite.get("name", "trajectories"), md, benchmarks_md)
    return md


def _k(m: Dict[str, float]) -> int:
    """K of the stored ``minADE_K`` (not of its per-speed-bin or standard-error variants)."""
    return int(next(match.group(1) for key in m for match in [re.fullmatch(r"minADE_(\d+)", key)] if match))


def _noise_floor(results, scenes, k, prefix) -> str:
    """A sentence with each fold's standard error over test agents and that of the average (folds
    independent: sqrt(sum se^2) / folds); empty for results stored before the errors were recorded."""
    keys = [f"{prefix}minADE_{k}_se", f"{prefix}minFDE_{k}_se"]
    if not all(key in results[s] for s in scenes for key in keys):
        return ""
    ade_se, fde_se = ([results[s][key] for s in scenes] for key in keys)
    avg_se = [math.sqrt(sum(v * v for v in se)) / len(scenes) for se in (ade_se, fde_se)]
    folds = ", ".join(f"{s} {a:.3f} / {f:.3f}" for s, a, f in zip(scenes, ade_se, fde_se))
    who = "the student" if prefix else "the flow"
    return (f"\n\nStandard error over test agents of {who}'s minADE_{k} / minFDE_{k} (per-agent spread / "
            f"sqrt(agents)): {folds}; of the average {avg_se[0]:.3f} / {avg_se[1]:.3f}. That is how far a number "
            f"could move with another sample of test agents; training seeds add their own spread "
            f"(docs/trajectories.md).")


def _seed_spread(per_seed, scenes, k, prefix) -> str:
    """A sentence with every seed's average over the folds and their mean and sample standard deviation."""
    keys = (f"{prefix}minADE_{k}", f"{prefix}minFDE_{k}")
    avgs = {seed: [sum(r[s][key] for s in scenes) / len(scenes) for key in keys] for seed, r in per_seed.items()}
    n = len(avgs)

    def mean_sd(i):
        vals = [a[i] for a in avgs.values()]
        mu = sum(vals) / n
        sd = math.sqrt(sum((v - mu) ** 2 for v in vals) / (n - 1)) if n > 1 else float("nan")
        return mu, sd

    (ma, sa), (mf, sf) = mean_sd(0), mean_sd(1)
    listed = ", ".join(f"seed {seed} {a:.3f} / {f:.3f}" for seed, (a, f) in avgs.items())
    who = "the student's" if prefix else "the flow's"
    return (f"\n\nEvery number above is the mean over {n} training seeds. Average over the folds of {who} "
            f"minADE_{k} / minFDE_{k} per seed: {listed}; mean {ma:.3f} / {mf:.3f}, sample standard deviation "
            f"{sa:.3f} / {sf:.3f} (the standard errors above: means of the seeds').")


def _speed_table(results, scenes, k) -> str:
    """minFDE_K per bin of observed speed (``eval.speed_bins``), flow / student and the agents in each bin;
    empty for results stored before the bins were recorded."""
    first = results[scenes[0]]
    labels = [key[len("agents/speed_"):] for key in first if key.startswith("agents/speed_")]
    if not labels or not all(f"agents/speed_{b}" in results[s] for s in scenes for b in labels):
        return ""
    student = all(f"student/minFDE_{k}" in results[s] for s in scenes)

    def cell(m, b):
        n = int(m[f"agents/speed_{b}"])
        if not n:
            return "(0)"
        pair = [m[f"minFDE_{k}/speed_{b}"]] + ([m[f"student/minFDE_{k}/speed_{b}"]] if student else [])
        return " / ".join(f"{v:.2f}" for v in pair) + f" ({n})"

    who = "flow / student" if student else "flow"
    return (f"\n\nminFDE_{k} by each agent's mean observed speed [m/step] ({who}; agents in the bin):\n\n"
            + markdown_table(["fold"] + [f"speed {b}" for b in labels], [[s] + [cell(results[s], b) for b in labels]
                                                                       for s in scenes]))


def _markdown(results, scenes, suite, benchmarks_md, per_seed=None) -> str:
    first = next(iter(results.values()))  # settings shared by all folds (k, sampling, which rows exist)
    k = _k(first)
    ade, fde = f"minADE_{k}", f"minFDE_{k}"

    def avg(vals):
        return sum(vals) / len(vals)

    header = ["method"] + [s for s in scenes] + ["average"]
    rows = []

    def row(label, getter):
        pairs = [getter(results[s]) for s in scenes]
        cells = [f"{a:.2f} / {f:.2f}" for a, f in pairs]
        cells.append(f"{avg([a for a, _ in pairs]):.3f} / {avg([f for _, f in pairs]):.3f}")
        rows.append([label] + cells)

    row("**sciflow flow (ours)**", lambda m: (m[ade], m[fde]))
    distilled = all(f"student/{ade}" in results[s] for s in scenes)
    if distilled:
        nfe = int(first.get("student/nfe_per_sample", 1))
        codes = first.get("student/codes")
        kind = f"multiple-choice student ({int(codes)} fixed codes" if codes else "student (IMLE"
        row(f"**sciflow {'one-step ' if nfe == 1 else ''}{kind}, {nfe} NFE)**" if codes else
            f"sciflow {'one-step ' if nfe == 1 else ''}{kind}, {nfe} NFE)",
            lambda m: (m[f"student/{ade}"], m[f"student/{fde}"]))
    for key, label in BASELINES.items():
        if f"baseline/{key}/{ade}" in first:
            row(label, lambda m, key=key: (m[f"baseline/{key}/{ade}"], m[f"baseline/{key}/{fde}"]))
    all_folds = sorted(scenes) == sorted(SCENES)
    for label, (a, f) in PUBLISHED.items() if all_folds else ():  # five-fold averages: only beside all five
        rows.append([f"{label}, published"] + ["" for _ in scenes] + [f"{a:.2f} / {f:.2f}"])
    table = markdown_table(header, rows) + _noise_floor(results, scenes, k, "student/" if distilled else "")
    if per_seed:
        table += _seed_spread(per_seed, scenes, k, "student/" if distilled else "")

    detail = markdown_table(
        ["fold", "train steps", "train time [s]", "sec / scene (K samples)", "NFE / sample",
         f"joint ADE/FDE_{k}", "collision rate (pred / gt)", "test scenes", "test agents"],
        [[s, int(results[s].get("steps", 0)), f"{results[s].get('train_seconds', float('nan')):.0f}",
          f"{results[s]['sec_per_scene']:.3f}", int(results[s].get("nfe_per_sample", 0)),
          f"{results[s][f'jointADE_{k}']:.2f} / {results[s][f'jointFDE_{k}']:.2f}",
          f"{results[s]['collision_rate']:.3f} / {results[s]['gt_collision_rate']:.3f}",
          int(results[s]["scenes"]), int(results[s]["agents"])] for s in scenes]) + _speed_table(results, scenes, k)
    if distilled:
        detail += "\n\nStudents (`sciflow distill`, conditional IMLE, see docs/distillation.md; suite `distill`: " \
            f"`{suite.get('distill')}`):\n\n" + markdown_table(
                ["fold", "distill steps", "distill time [s]", "sec / scene (K samples)", "NFE / sample",
                 f"minADE/minFDE_{k}", f"joint ADE/FDE_{k}", "speed-up vs flow"],
                [[s, int(results[s]["student/distill_steps"]), f"{results[s]['student/distill_seconds']:.0f}",
                  f"{results[s]['student/sec_per_scene']:.3f}", int(results[s]["student/nfe_per_sample"]),
                  f"{results[s][f'student/{ade}']:.2f} / {results[s][f'student/{fde}']:.2f}",
                  f"{results[s][f'student/jointADE_{k}']:.2f} / {results[s][f'student/jointFDE_{k}']:.2f}",
                  f"{results[s]['sec_per_scene'] / results[s]['student/sec_per_scene']:.1f}x"] for s in scenes])
    cmd = suite.get("_command") or (
        "sciflow benchmark " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 2
        else "sciflow benchmark configs/benchmarks/trajectories.yaml")
    overrides = suite.get("overrides", [])
    over, temp = int(first.get("oversample", 1)), float(first.get("noise_scale", 1.0))
    sampling = (f"Sampling: {int(first.get('nfe_per_sample', 0))} Euler steps; "
                + (f"{over * k} futures drawn per agent and reduced to K = {k} by final position clustering "
                   f"(k-means on endpoints, Xu et al. 2022; kept per cluster: "
                   f"{'its mean trajectory' if first.get('fpc_keep') == 'mean' else 'the member nearest its centre'}), "
                   f"so the joint (scene-level) numbers below mix draws "
                   f"across agents and are not true joint samples; " if over > 1 else "K i.i.d. joint draws; ")
                + f"source noise scaled by {temp:g} at sampling time (trained with 1).")
    if distilled and first.get("student/codes"):
        sampling += (f" Multiple-choice student: the flow fine-tuned on the training data by IMLE with a fixed "
                     f"codebook of {int(first['student/codes'])} source latents (in each agent's heading frame) and "
                     f"the ADE + FDE distance, each agent matched to its nearest code (winner-takes-all, "
                     f"Guzman-Rivera et al. 2012); it predicts its K = {k} futures with one network evaluation "
                     f"per code, no clustering and no temperature.")
        if "model.mode_attention=true" in [str(o).replace(" ", "").lower() for o in suite.get("distill", [])]:
            sampling += (" Its network also attends over the codes of each agent (mode attention), so an agent's "
                         f"{k} futures are made together and see each other.")
    note = suite.get("note", "")
    min_agents = int(first.get("min_agents", 1))
    windows = ("all windows with at least two such agents (the Social-GAN loader's rule)" if min_agents == 2
               else "all windows" if min_agents == 1 else f"all windows with at least {min_agents} such agents")
    published_note = ("published rows are the papers' five-fold averages (not re-run)." if all_folds else
                      "the papers' five-fold averages are left out because this run covers only some folds.")
    return f"""## {suite.get('name', 'trajectories')}: ETH/UCY leave-one-scene-out, minADE_{k} / minFDE_{k} [m]

Observe 8 steps (3.2 s), predict 12 (4.8 s); every agent present in all 20 frames of a window;
{windows} of the test scene; best of K = {k} samples per agent (per-agent min, averaged over agents).
Ours: `agent_transformer` flow, source = constant-velocity guess + noise, trained from scratch per fold on this CPU (fold configs `configs/trajectories/<scene>.yaml`, suite overrides: `{overrides}`).
Baselines measured here on the same windows; {published_note}
{sampling}

{table}

Per fold (ours): training time, sampling time per scene (all K samples of all agents, batched), joint
(scene-level) metrics and the fraction of predicted agent pairs closer than 0.2 m.

{detail}

Command: `{cmd}`
Machine: {machine_description()}
{note}
"""
