import pytest


@pytest.fixture
def tiny_toy(tmp_path):
    """A toy config small enough to train in a couple of seconds."""

    def make(name="tiny", **over):
        cfg = {
            "name": name, "task": "toy2d", "seed": 0, "run_dir": str(tmp_path / name),
            "data": {"dataset": "gaussian", "n_train": 512, "n_val": 64, "n_test": 256},
            "model": {"name": "mlp", "hidden": 32, "depth": 2},
            "trainer": {"max_steps": 20, "batch_size": 64, "lr": 1e-3, "progress": False, "log_every": 5,
                        "val_every": 10, "ckpt_every": 10, "ema_decay": 0.9},
            "sample": {"sampler": "euler", "steps": 5, "n": 128},
            "eval": {"n_samples": 128, "plot": False},
        }
        for k, v in over.items():
            cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
        return cfg

    return make
