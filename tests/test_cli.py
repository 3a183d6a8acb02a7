"""The sciflow command: help, listing, errors that name the problem, a full train/sample/evaluate cycle."""
import json
import subprocess
import sys

import pytest
import torch
import yaml

from sciflow.cli import main


def test_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "sciflow.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    for cmd in ("train", "sample", "evaluate", "benchmark"):
        assert cmd in out.stdout


def test_list_shows_registered_components(capsys):
    assert main(["list", "sampler"]) == 0
    out = capsys.readouterr().out
    assert "euler" in out and "dopri5" in out


def test_bad_override_exits_with_named_key(tmp_path, capsys):
    code = main(["train", "configs/toy/moons.yaml", "trainer.max_stepz=3", f"run_dir={tmp_path / 'x'}"])
    assert code == 2
    assert "trainer.max_stepz" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_missing_config_file(capsys):
    assert main(["train", "does/not/exist.yaml"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_train_sample_evaluate_cycle(tmp_path, capsys):
    run = tmp_path / "cycle"
    over = [f"run_dir={run}", "trainer.max_steps=30", "trainer.progress=false", "data.n_train=512",
            "data.n_test=256", "eval.n_samples=256", "eval.plot=true", "sample.steps=4", "model.hidden=32"]
    assert main(["train", "configs/toy/moons.yaml", *over]) == 0
    assert (run / "samples.png").exists()
    assert main(["sample", str(run), "--n", "10", "--out", str(tmp_path / "s.pt")]) == 0
    samples = torch.load(tmp_path / "s.pt")
    assert samples["x"].shape == (10, 2) and torch.isfinite(samples["x"]).all()
    assert main(["evaluate", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["nfe"] == 8  # midpoint, 4 steps
    # eval-time overrides: same weights, other sampler; the run's own metrics.json and plot stay as they were
    plot = (run / "samples.png").read_bytes()
    assert main(["evaluate", str(run), "sample.steps=2"]) == 0
    assert json.loads((run / "eval" / "sample.steps=2" / "metrics.json").read_text())["nfe"] == 4
    assert (run / "eval" / "sample.steps=2" / "samples.png").exists()
    assert json.loads((run / "metrics.json").read_text()) == metrics
    assert (run / "samples.png").read_bytes() == plot
    assert main(["evaluate", str(run), "model.hidden=64"]) == 2
    assert "only the sections ['eval', 'sample']" in capsys.readouterr().err
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["trainer"]["max_steps"] == 30


def test_benchmark_suite_needs_a_runner(tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: x\n")
    assert main(["benchmark", str(suite)]) == 2
    assert "runner" in capsys.readouterr().err
