"""Built-in datasets and loaders (toy 2-D distributions; domain data lives in the domain packages)."""
from sciflow.datasets.toy import TOY_DATASETS, sample_toy

__all__ = ["TOY_DATASETS", "sample_toy"]
