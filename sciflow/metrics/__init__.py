"""Evaluation metrics. Distances between samples are registered under kind "metric" as callables
``metric(x, y, **options) -> float``: "w1", "w2", "mmd", "energy"."""
from sciflow.metrics.distances import energy_distance, median_bandwidth, mmd, w1, w2, wasserstein

__all__ = ["wasserstein", "w1", "w2", "mmd", "energy_distance", "median_bandwidth"]
