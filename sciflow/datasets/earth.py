"""Point events on the Earth's surface (volcanic eruptions, earthquakes, floods, fires, ...) from a CSV of
latitudes and longitudes, as used by the Riemannian CNF/flow-matching papers (Mathieu & Nickel 2020;
Chen & Lipman 2024).

The CSV may start with ``#`` comment lines; its header must name a latitude column ("latitude" or
"lat", any case) and a longitude column ("longitude", "lon", "lng" or "long"); other columns are
ignored. Values are degrees: latitude in [-90, 90], longitude in [-180, 360]. Points are returned as
unit vectors on S^2 (x towards longitude 0 on the equator, z towards the north pole).

The standard protocol splits the points at random 80/10/10 into train/validation/test with a seed.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Dict, Sequence, Tuple, Union

import torch

from sciflow.spaces.sphere import latlon_to_xyz

LAT_NAMES = ("latitude", "lat")
LON_NAMES = ("longitude", "lon", "lng", "long")


def load_latlon_csv(path: Union[str, os.PathLike]) -> torch.Tensor:
    """Read ``(N, 2)`` float64 (latitude, longitude) in degrees from a CSV file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: no header with latitude/longitude columns, a non-numeric or missing value, or a value
            out of range; the message names the file, line and column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"earth data file '{path}' does not exist (give data.path: a CSV of latitude, "
                                f"longitude in degrees, e.g. ../shared/data/earth/volcano.csv)")
    rows = []
    with path.open(newline="") as fh:
        lines = [(i + 1, ln) for i, ln in enumerate(fh) if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ValueError(f"earth data file '{path}' has no header or data lines")
    header_no, header_line = lines[0]
    header = [h.strip().lower() for h in next(csv.reader([header_line]))]
    try:
        i_lat = next(header.index(n) for n in LAT_NAMES if n in header)
        i_lon = next(header.index(n) for n in LON_NAMES if n in header)
    except StopIteration:
        raise ValueError(f"earth data file '{path}' line {header_no}: header {header} must name a latitude column "
                         f"(one of {LAT_NAMES}) and a longitude column (one of {LON_NAMES})") from None
    for line_no, line in lines[1:]:
        cells = next(csv.reader([line]))
        vals = []
        for idx, name in ((i_lat, "latitude"), (i_lon, "longitude")):
            cell = cells[idx].strip() if idx < len(cells) else ""
            try:
                v = float(cell)
            except ValueError:
                raise ValueError(f"earth data file '{path}' line {line_no}: {name} {cell!r} is not a number") from None
            if v != v:
                raise ValueError(f"earth data file '{path}' line {line_no}: {name} is NaN")
            vals.append(v)
        lat, lon = vals
        if not -90 <= lat <= 90:
            raise ValueError(f"earth data file '{path}' line {line_no}: latitude {lat} outside [-90, 90]")
        if not -180 <= lon <= 360:
            raise ValueError(f"earth data file '{path}' line {line_no}: longitude {lon} outside [-180, 360]")
        rows.append(vals)
    if not rows:
        raise ValueError(f"earth data file '{path}' has a header but no data rows")
    return torch.tensor(rows, dtype=torch.float64)


def load_earth(path: Union[str, os.PathLike], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Unit vectors ``(N, 3)`` on S^2 for the events in the CSV at ``path``."""
    ll = load_latlon_csv(path)
    return latlon_to_xyz(ll[:, 0], ll[:, 1]).to(dtype)


def random_split(x: torch.Tensor, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
                 ) -> Dict[str, torch.Tensor]:
    """Random train/val/test split of the rows of ``x`` with a seeded permutation.

    Args:
        fractions: (train, val, test) fractions summing to 1; test gets the remainder after rounding.
    Returns:
        ``{"train": ..., "val": ..., "test": ...}``.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {list(fractions)}")
    n = x.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    n_train, n_val = int(round(fractions[0] * n)), int(round(fractions[1] * n))
    idx = {"train": perm[:n_train], "val": perm[n_train:n_train + n_val], "test": perm[n_train + n_val:]}
    return {k: x[v] for k, v in idx.items()}


def earth_splits(path: Union[str, os.PathLike], fractions: Tuple[float, float, float] = (0.8, 0.1, 0.1),
                 seed: int = 0, dtype: torch.dtype = torch.float32) -> Dict[str, torch.Tensor]:
    """Load the CSV at ``path`` and split it at random (seeded) into train/val/test unit vectors."""
    return random_split(load_earth(path, dtype), fractions, seed)
