"""Suite-wide test settings."""
import os
import sys
from pathlib import Path

import pytest
import torch

# pytest runs in importlib mode (test files in different folders share basenames); oracle helper modules
# next to the tests (e.g. tests/interpolants/si_oracles.py) are imported by plain name, so put their
# folders on sys.path. Helper module names must be unique across folders.
_here = Path(__file__).parent
# tests name configs by their repository paths (configs/...); run from the repository root wherever pytest
# was started
os.chdir(_here.parent)
for _folder in [_here] + sorted(p for p in _here.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
    if str(_folder) not in sys.path:
        sys.path.append(str(_folder))


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    # tests use small tensors: one intra-op thread is as fast and avoids pathological slowdowns when
    # the CI machine's 2 cores are shared with the DDP test's worker processes
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def one_thread():
    """Kept for tests that ask for it explicitly; the session fixture above already pins one thread."""
    yield



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
