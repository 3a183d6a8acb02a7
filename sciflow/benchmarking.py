"""Helpers for benchmark scripts: machine description and per-suite sections of ``BENCHMARKS.md``.

Each suite owns one section delimited by ``<!-- begin:NAME -->`` / ``<!-- end:NAME -->`` so suites
can be re-run independently without clobbering each other's results.
"""
from __future__ import annotations

import os
import platform
import re
import tempfile
from pathlib import Path


def machine_description() -> str:
    """One line: CPU model, core count, torch version and device."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    return (f"{cpu}, {os.cpu_count()} cores visible, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), {dev}, Python {platform.python_version()}")


def write_section(name: str, markdown: str, path: str | os.PathLike = "BENCHMARKS.md") -> Path:
    """Replace (or append) the section ``name`` of the benchmarks file, atomically."""
    path = Path(path)
    text = path.read_text() if path.exists() else "# sciflow benchmarks\n\nEach section is written by the command it names.\n"
    begin, end = f"<!-- begin:{name} -->", f"<!-- end:{name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=".bench-")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


def markdown_table(header: list, rows: list) -> str:
    """A GitHub markdown table from a header and rows of cells (numbers formatted with 4 significant digits)."""

    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def publish(section: str, markdown: str, benchmarks_md) -> None:
    """Print a suite's markdown and, unless ``benchmarks_md`` is falsy, write it as ``section``."""
    print(markdown)
    if benchmarks_md:
        write_section(section, markdown, benchmarks_md)
        print(f"[{section}] wrote section '{section}' of {benchmarks_md}")


def benchmark_main(run, description: str, default_suite: str, argv=None) -> int:
    """Command-line entry of a benchmark module: ``python -m sciflow.benchmarks.X [SUITE] [--out FILE]``."""
    import argparse

    import yaml

    p = argparse.ArgumentParser(description=description)
    p.add_argument("suite", nargs="?", default=default_suite)
    p.add_argument("--out", default="BENCHMARKS.md", help="benchmarks file to update ('' to skip)")
    args = p.parse_args(argv)
    with open(args.suite) as fh:
        suite = yaml.safe_load(fh) or {}
    suite.setdefault("_path", args.suite)
    module = getattr(run, "__module__", "sciflow.benchmarks")
    suite.setdefault("_command", f"python -m {module} {args.suite}")
    run(suite, benchmarks_md=args.out or None)
    return 0
