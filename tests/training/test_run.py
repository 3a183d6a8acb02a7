"""Training runs: resume gives the same state, checkpoints are atomic, evaluation writes metrics."""
import json
import os

import pytest
import torch

from sciflow.config import ConfigError
from sciflow.training import atomic_torch_save, load_run, train


def _flat_state(flow):
    return torch.cat([p.detach().flatten() for p in flow.state_dict().values() if p.is_floating_point()])


def test_resume_after_interrupt_gives_same_state(tiny_toy):
    straight = train(tiny_toy("straight"), evaluate=False)
    first = train(tiny_toy("resumed", trainer={"max_steps": 10}), evaluate=False)
    assert not torch.equal(_flat_state(first.flow), _flat_state(straight.flow))
    resumed = train(first.run_dir, ["trainer.max_steps=20"], evaluate=False)
    assert torch.equal(_flat_state(resumed.flow), _flat_state(straight.flow))
    _, loaded = load_run(straight.run_dir)
    assert torch.equal(_flat_state(loaded), _flat_state(straight.flow))


def test_resume_refuses_a_different_config(tiny_toy):
    train(tiny_toy("run", trainer={"max_steps": 2}), evaluate=False)
    with pytest.raises(ConfigError, match="model"):
        train(tiny_toy("run", model={"hidden": 16}), evaluate=False)


def test_train_writes_checkpoint_config_and_metrics(tiny_toy):
    res = train(tiny_toy("full", trainer={"max_steps": 5}))
    assert (res.run_dir / "checkpoints" / "last.ckpt").exists()
    assert (res.run_dir / "config.yaml").exists()
    assert (res.run_dir / "logs" / "csv" / "version_0" / "metrics.csv").exists()
    metrics = json.loads((res.run_dir / "metrics.json").read_text())
    assert metrics["steps"] == 5
    assert metrics["nfe"] == 5 and torch.isfinite(torch.tensor(metrics["w2"]))


def test_unknown_task_key_fails_before_training(tiny_toy, tmp_path):
    with pytest.raises(ConfigError, match="data.n_trian"):
        train(tiny_toy("bad", data={"n_trian": 3}))
    assert not (tmp_path / "bad").exists()


def test_nan_data_is_rejected_before_training(tiny_toy, monkeypatch):
    from sciflow.tasks import toy

    real = toy.Toy2DTask._split

    def poisoned(self, which, n):
        x = real(self, which, n)
        x[3, 1] = float("nan")
        return x

    monkeypatch.setattr(toy.Toy2DTask, "_split", poisoned)
    with pytest.raises(ValueError, match="NaN"):
        train(tiny_toy("nan"), evaluate=False)


def test_atomic_save_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "ck.pt"
    atomic_torch_save({"a": torch.ones(2)}, target)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_torch_save({"bad": Unpicklable()}, target)
    assert torch.equal(torch.load(target)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_warmup_ema_follows_early_weights_then_slows():
    from sciflow.training.module import warmup_ema

    upd = warmup_ema(0.999)
    avg, cur = [torch.zeros(3)], [torch.ones(3)]
    upd(avg, cur, torch.tensor(0))  # first update: decay 0.1 -> 90% of the way
    assert torch.allclose(avg[0], torch.full((3,), 0.9))
    avg = [torch.zeros(3)]
    upd(avg, cur, torch.tensor(10**6))  # late: the configured decay
    assert torch.allclose(avg[0], torch.full((3,), 0.001))


def test_progress_bar_counts_steps_not_epochs(tiny_toy, capsys):
    from sciflow.training import train

    train(tiny_toy("bar", trainer={"max_steps": 12, "progress": True, "log_every": 5}), evaluate=False)
    captured = capsys.readouterr()
    text = (captured.out + captured.err).replace("\r", "\n")
    assert "train steps" in text and "12/12" in text
    assert "Epoch 0" not in text
