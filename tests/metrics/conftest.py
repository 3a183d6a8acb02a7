import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    """Small tensors: one intra-op thread avoids OpenMP spin contention on busy 2-core machines
    (a 50x50 Sinkhorn ran ~300x slower with 2 threads under load)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
