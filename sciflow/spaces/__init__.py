"""State spaces: Euclidean here; manifolds and discrete spaces register alongside."""
from sciflow.spaces.base import Space
from sciflow.spaces.euclidean import Euclidean

__all__ = ["Space", "Euclidean"]
from sciflow.spaces.discrete import Tokens  # noqa: E402
from sciflow.spaces.simplex import Simplex, project_to_simplex  # noqa: E402
from sciflow.spaces.product import ProductSpace  # noqa: E402

__all__ += ["Tokens", "Simplex", "project_to_simplex", "ProductSpace"]
from sciflow.spaces.manifold import Manifold  # noqa: E402
from sciflow.spaces.sphere import Sphere  # noqa: E402
from sciflow.spaces.torus import Torus  # noqa: E402
from sciflow.spaces.so3 import SO3, IGSO3  # noqa: E402
from sciflow.spaces.se3 import SE3  # noqa: E402
from sciflow.spaces.hyperbolic import Hyperbolic  # noqa: E402

__all__ += ["Manifold", "Sphere", "Torus", "SO3", "IGSO3", "SE3", "Hyperbolic"]
from sciflow.spaces.mesh import TriangleMesh  # noqa: E402  (issue 3, spectral premetric)

__all__ += ["TriangleMesh"]
