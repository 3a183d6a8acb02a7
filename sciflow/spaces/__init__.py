"""State spaces: Euclidean, Riemannian manifolds (sphere, torus, SO(3), SE(3), hyperbolic, triangle meshes,
any geomstats manifold), the probability simplex, categorical tokens and products of named components.

Every space works on batched tensors ``(B, *event_shape)`` on any device and offers
exp/log/proj/proj_tangent/inner/dist/random_base/base_log_prob/check (see :class:`Space`).
"""
from sciflow.spaces.base import Space
from sciflow.spaces.discrete import Tokens
from sciflow.spaces.euclidean import Euclidean
from sciflow.spaces.hyperbolic import Hyperbolic
from sciflow.spaces.manifold import Manifold
from sciflow.spaces.mesh import TriangleMesh
from sciflow.spaces.product import ProductSpace
from sciflow.spaces.se3 import SE3
from sciflow.spaces.simplex import Simplex, project_to_simplex
from sciflow.spaces.so3 import IGSO3, SO3
from sciflow.spaces.sphere import Sphere
from sciflow.spaces.torus import Torus

__all__ = [
    "Space", "Euclidean", "Manifold", "Sphere", "Torus", "SO3", "IGSO3", "SE3", "Hyperbolic", "TriangleMesh",
    "Tokens", "Simplex", "project_to_simplex", "ProductSpace", "GeomstatsSpace",
]


def __getattr__(name):
    # geomstats is optional (and needs numpy < 2.4): import the adapter only when asked for
    if name == "GeomstatsSpace":
        from sciflow.spaces.geomstats_adapter import GeomstatsSpace

        return GeomstatsSpace
    raise AttributeError(f"module 'sciflow.spaces' has no attribute '{name}'")
