"""Schrodinger-bridge flow matching: SB-CFM and score + flow matching (SF2M), Tong et al. (2024),
"Simulation-free Schrodinger bridges via score and flow matching" / "Improving and generalizing
flow-based generative models with minibatch optimal transport".

Time convention: t = 0 is the source x0, t = 1 is the target x1.

The Schrodinger bridge with reference process sigma W between minibatch samples is approximated by

* **coupling**: the entropic OT plan pi(x0, x1) proportional to exp(-|x0 - x1|^2 / (2 sigma^2)) on the
  minibatch, i.e. Sinkhorn with *absolute* regularisation 2 sigma^2 on the squared Euclidean cost
  (:class:`SchrodingerBridgeCoupling`, which reuses the core log-domain Sinkhorn of
  :mod:`sciflow.couplings.ot`);
* **path**: Brownian bridges x_t = (1 - t) x0 + t x1 + sigma sqrt(t (1 - t)) z, which is the stochastic
  interpolant with the linear interpolant and ``gamma = {"name": "brownian", "scale": sigma}``.

SB-CFM learns the drift b (probability-flow ODE). SF2M learns b and the score together: in sciflow one
network with prediction "drift_denoiser" (the denoiser objective |eta - z|^2 is SF2M's score loss with
weight lambda(t) = gamma(t), and s = -eta / gamma). The bridge SDE of the reference process is then
dX = [b + (sigma^2 / 2) s] dt + sigma dW, i.e. the sciflow SDE samplers with ``epsilon = sigma^2 / 2``
(:func:`schrodinger_bridge` returns that value as ``epsilon``); other epsilon values give other SDEs
with the same marginals.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from sciflow.couplings.ot import SinkhornCoupling
from sciflow.registry import register


@register("coupling", "schrodinger_bridge")
class SchrodingerBridgeCoupling(SinkhornCoupling):
    """Entropic OT coupling with regularisation 2 sigma^2 (absolute, on |x0 - x1|^2), sampled per data point.

    Args:
        sigma: noise level of the reference Brownian motion (the same sigma as the bridge path's gamma).
        max_iter, tol, anneal: Sinkhorn settings (see :func:`sciflow.couplings.solvers.sinkhorn`); ``tol`` is the
            L1 error of the plan's row marginal, 1e-3 by default (pairs are drawn from the plan, so a tighter
            fit buys nothing visible); small sigma on spread-out data converges faster with ``anneal=2.0``.
        sample: draw x0 from the plan's conditional pi(x0 | x1) (default, as SB-CFM) or take its argmax.
    """

    def __init__(self, sigma: float = 1.0, max_iter: int = 300, tol: float = 1e-3, anneal: Optional[float] = None,
                 sample: bool = True):
        if not sigma > 0:
            raise ValueError(f"schrodinger_bridge coupling: sigma must be > 0, got {sigma}")
        super().__init__(epsilon=2.0 * float(sigma) ** 2, max_iter=max_iter, tol=tol, anneal=anneal, sample=sample,
                         relative=False)
        self.sigma = float(sigma)

    def __repr__(self) -> str:
        return f"SchrodingerBridgeCoupling(sigma={self.sigma}, sample={self.sample})"


def bridge_path(sigma: float = 1.0, antithetic: bool = False):
    """The Brownian-bridge stochastic interpolant (1 - t) x0 + t x1 + sigma sqrt(t (1 - t)) z."""
    from sciflow.paths.interpolants import StochasticInterpolantPath

    if not sigma > 0:
        raise ValueError(f"bridge_path: sigma must be > 0, got {sigma}")
    return StochasticInterpolantPath("linear", {"name": "brownian", "scale": float(sigma)}, antithetic=antithetic)


def schrodinger_bridge(sigma: float = 1.0, score: bool = True, **coupling_kwargs: Any) -> Dict[str, Any]:
    """Components of an SB-CFM (``score=False``) or SF2M (``score=True``) flow.

    Returns a dict with ``path``, ``coupling``, ``prediction`` ("drift_denoiser" for SF2M, "drift" for
    SB-CFM) and ``epsilon`` = sigma^2 / 2, the diffusion level at which the SDE sampler follows the
    Schrodinger bridge of the reference process sigma W. Use as::

        sb = schrodinger_bridge(sigma=0.5)
        flow = interpolant_flow(MultiFieldModel(drift=MLP(2), denoiser=MLP(2)), sb["path"],
                                sb["prediction"], coupling=sb["coupling"], source=...)
        flow.sample(x0=x0, sampler="euler_maruyama", steps=100, epsilon=sb["epsilon"])
    """
    return {"path": bridge_path(sigma), "coupling": SchrodingerBridgeCoupling(sigma, **coupling_kwargs),
            "prediction": "drift_denoiser" if score else "drift", "epsilon": 0.5 * float(sigma) ** 2}
