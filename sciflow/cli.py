"""The ``sciflow`` command: train, sample, evaluate, benchmark.

    sciflow train CONFIG_OR_RUN_DIR [key=value ...]    train from YAML (resumes an existing run dir)
    sciflow sample RUN_DIR --n 64 --out samples.pt     draw samples from a trained run
    sciflow evaluate RUN_DIR                           metrics (and baselines) of a trained run
    sciflow distill RUN_DIR [key=value ...]            one-step (or few-step) student by IMLE in RUN_DIR/distill
    sciflow benchmark SUITE.yaml [key=value ...]       run a benchmark suite, update BENCHMARKS.md
    sciflow list [KIND]                                registered components (tasks, paths, samplers, ...)
"""
from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
from typing import List, Optional

from sciflow.config import ConfigError


def _print_metrics(metrics) -> None:
    width = max((len(k) for k in metrics), default=0)
    for k, v in metrics.items():
        if isinstance(v, float):
            v = f"{v:.5g}"
        print(f"  {k:<{width}}  {v}")


def _report(result, label: str) -> int:
    """Print a finished run (train or distill): its directory, time and metrics."""
    print(f"{label}: {result.run_dir} ({result.train_seconds:.0f} s)")
    if result.metrics:
        print("metrics:")
        _print_metrics(result.metrics)
    return 0


def _cmd_train(args) -> int:
    from sciflow.training import train

    return _report(train(args.config, args.overrides, evaluate=not args.no_eval), "run directory")


def _cmd_sample(args) -> int:
    from sciflow.training import sample_run

    out = sample_run(args.run_dir, args.n, args.out, seed=args.seed)
    print(f"wrote {args.n} samples to {out}")
    return 0


def _cmd_evaluate(args) -> int:
    from sciflow.training import evaluate_run

    metrics = evaluate_run(args.run_dir, args.overrides)
    print(f"metrics of {args.run_dir}{' with ' + ' '.join(args.overrides) if args.overrides else ''} "
          f"(also written to {args.run_dir}):")
    _print_metrics(metrics)
    return 0


def _cmd_distill(args) -> int:
    from sciflow.training.distill import distill

    res = distill(args.run_dir, args.overrides, evaluate=not args.no_eval)
    steps = res.task.config.sample.steps
    return _report(res, "one-step student" if steps == 1 else f"{steps}-step student")


def _cmd_benchmark(args) -> int:
    import yaml

    from sciflow.config import deep_merge, parse_overrides

    with open(args.suite) as fh:
        suite = yaml.safe_load(fh) or {}
    suite = deep_merge(suite, parse_overrides(args.overrides))
    # the runner records how it was invoked next to its results
    suite.setdefault("_path", args.suite)
    suite["_command"] = " ".join(["sciflow", "benchmark", args.suite, *(shlex.quote(o) for o in args.overrides)])
    runner = suite.get("runner")
    if not isinstance(runner, str) or ":" not in runner:
        raise ConfigError(f"benchmark suite '{args.suite}' needs a key 'runner: package.module:function'")
    module_name, func_name = runner.split(":", 1)
    func = getattr(importlib.import_module(module_name), func_name, None)
    if func is None:
        raise ConfigError(f"runner '{runner}': module {module_name} has no function {func_name}")
    result = func(suite, benchmarks_md=args.out)
    if result is not None:
        print(json.dumps(result, indent=2, default=str)[:4000])
    return 0


def _cmd_list(args) -> int:
    from sciflow.registry import _REGISTRY, names

    names("task")  # triggers the core import
    kinds = [args.kind] if args.kind else sorted(_REGISTRY)
    for kind in kinds:
        print(f"{kind}: {', '.join(names(kind)) or '(none)'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sciflow", description="Flow matching for scientific data.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train from a YAML config (or resume a run directory)")
    p.add_argument("config", help="YAML config file, or an existing run directory to resume")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. trainer.max_steps=500")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("sample", help="draw samples from a trained run")
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", default="samples.pt", help="output file (.pt; domains may offer .nc, .npz, ...)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("evaluate", help="evaluate a trained run; writes RUN_DIR/metrics.json "
                                        "(with overrides: metrics and plots in RUN_DIR/eval/<overrides>/)")
    p.add_argument("run_dir")
    p.add_argument("overrides", nargs="*", help="eval.* / sample.* overrides, e.g. eval.split=val sample.steps=10")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("distill", help="distil a trained run into a one-step sampler (IMLE); writes RUN_DIR/distill")
    p.add_argument("run_dir", help="a trained run directory (the teacher)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. distill.max_steps=500 eval.noise_scale=1")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation of the student")
    p.set_defaults(func=_cmd_distill)

    p = sub.add_parser("benchmark", help="run a benchmark suite and update BENCHMARKS.md")
    p.add_argument("suite", help="suite YAML, e.g. configs/benchmarks/core.yaml")
    p.add_argument("overrides", nargs="*", help="dotted overrides of the suite's keys")
    p.add_argument("--out", default="BENCHMARKS.md", help="benchmarks file to update (default BENCHMARKS.md)")
    p.set_defaults(func=_cmd_benchmark)

    p = sub.add_parser("list", help="list registered components")
    p.add_argument("kind", nargs="?", help="task, path, sampler, coupling, model, scheduler, ...")
    p.set_defaults(func=_cmd_list)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, FileNotFoundError) as err:
        print(f"sciflow {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
