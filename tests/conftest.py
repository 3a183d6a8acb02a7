"""Suite-wide test settings."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    # tests use small tensors: one intra-op thread is as fast and avoids pathological slowdowns when
    # the CI machine's 2 cores are shared with the DDP test's worker processes
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
