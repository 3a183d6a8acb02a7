"""Couplings between source and data minibatches."""
from sciflow.couplings.base import Coupling, IndependentCoupling
from sciflow.couplings.ot import (  # noqa: E402  (OT solvers and couplings)
    ExactOTCoupling, OTCoupling, SinkhornCoupling, assignment, auction, ot_plan, sample_from_plan, sinkhorn,
    sq_euclidean_cost,
)
from sciflow.couplings.conditional import ConditionalOTCoupling

__all__ = ["Coupling", "IndependentCoupling", "build_coupling"]
__all__ += ["ExactOTCoupling", "OTCoupling", "SinkhornCoupling", "ConditionalOTCoupling", "assignment", "auction",
            "ot_plan", "sample_from_plan", "sinkhorn", "sq_euclidean_cost"]


def build_coupling(spec=None) -> Coupling:
    """Build from a name, a mapping ``{"name": ..., **kw}``, ``None`` (independent), or pass through."""
    from sciflow.registry import build_spec

    if spec is None:
        return IndependentCoupling()
    if isinstance(spec, Coupling) or (callable(spec) and not isinstance(spec, (str, dict))):
        return spec
    return build_spec("coupling", spec)
