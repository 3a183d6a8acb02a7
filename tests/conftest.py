"""Suite-wide test settings."""
import sys
from pathlib import Path

import pytest
import torch

# pytest runs in importlib mode (test files in different folders share basenames); oracle helper modules
# next to the tests (e.g. tests/interpolants/si_oracles.py) are imported by plain name, so put their
# folders on sys.path. Helper module names must be unique across folders.
_here = Path(__file__).parent
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
