"""State spaces: Euclidean here; manifolds and discrete spaces register alongside."""
from sciflow.spaces.base import Space
from sciflow.spaces.euclidean import Euclidean

__all__ = ["Space", "Euclidean"]
