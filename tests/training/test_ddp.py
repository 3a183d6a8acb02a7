"""Two-process DDP on CPU (gloo) through the CLI, as a user would launch it."""
import json
import subprocess
import sys

import yaml


def test_ddp_two_cpu_processes(tiny_toy, tmp_path):
    cfg = tiny_toy("ddp", trainer={"max_steps": 30, "accelerator": "cpu", "devices": 2, "strategy": "ddp"})
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "sciflow.cli", "train", str(path)], capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["steps"] == 30
    # 30 steps of a tiny model already move samples toward N(2, 0.5^2) and away from N(0, I)
    assert metrics["w2"] < metrics["w2_source_baseline"]
