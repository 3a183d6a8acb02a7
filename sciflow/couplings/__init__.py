"""Couplings between source and data minibatches."""
from sciflow.couplings.base import Coupling, IndependentCoupling

__all__ = ["Coupling", "IndependentCoupling", "build_coupling"]


def build_coupling(spec=None) -> Coupling:
    """Build from a name, a mapping ``{"name": ..., **kw}``, ``None`` (independent), or pass through."""
    from sciflow.registry import build

    if spec is None:
        return IndependentCoupling()
    if isinstance(spec, Coupling) or (callable(spec) and not isinstance(spec, (str, dict))):
        return spec
    if isinstance(spec, str):
        return build("coupling", spec)
    if isinstance(spec, dict):
        spec = dict(spec)
        return build("coupling", spec.pop("name"), **spec)
    raise TypeError(f"coupling must be a name, a mapping or a Coupling, got {type(spec).__name__}")
