"""Where the real data sets for tests live (see ../shared/data/README.md).

Looked up in order: $SCIFLOW_SHARED_DATA, ``<repo>/../shared/data``, ``/work/shared/data``. Tests that need a
data set skip with a clear reason when none of these holds it, rather than failing on a machine without it.
"""
import os
from pathlib import Path

import pytest

_CANDIDATES = [os.environ.get("SCIFLOW_SHARED_DATA"), Path(__file__).resolve().parents[1] / ".." / "shared" / "data",
               "/work/shared/data"]


def shared_data(*parts: str) -> Path:
    """Path of a shared data file/folder; skips the calling test if it is not on this machine."""
    for root in _CANDIDATES:
        if root and (Path(root) / Path(*parts)).exists():
            return (Path(root) / Path(*parts)).resolve()
    pytest.skip(f"shared data '{'/'.join(parts)}' not found (set SCIFLOW_SHARED_DATA to the folder holding it)")
