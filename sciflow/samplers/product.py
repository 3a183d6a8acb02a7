"""One sampling loop for product states (continuous + discrete + simplex components) and for single
simplex-valued flows (Dirichlet / linear simplex FM).

On a uniform grid from t = 0 (source) to t = 1 (data) each step makes one (batched) network call on the
whole state and then advances every component with the update that fits its path:

* continuous paths (affine, geodesic, ...): an Euler step through the component space's exponential map,
  x <- exp_x(h v); classifier-free guidance mixes the outputs linearly (exact for affine paths);
* discrete mixture paths: a CTMC jump (:func:`sciflow.samplers.ctmc.mixture_jump`); guidance mixes rates
  geometrically (:mod:`sciflow.guidance.discrete`);
* simplex paths (Dirichlet, linear simplex): an Euler step with the velocity built from (guided)
  posterior probabilities, p_w = w p_c + (1 - w) p_u (Stark et al. 2024), through the simplex retraction;
  optional classifier guidance for the Dirichlet path (single simplex flows).

NFE counts network calls (one per step; a CFG step evaluates conditional and unconditional batches in
one call). Registered as "product" and, for single simplex flows, also as "simplex".
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from sciflow.guidance.discrete import classifier_grad, dirichlet_classifier_probs, simplex_cfg_probs
from sciflow.paths.dirichlet import DirichletPath, _SimplexPath
from sciflow.paths.discrete import MixturePath
from sciflow.paths.product import ProductPath
from sciflow.registry import register
from sciflow.samplers.base import SampleResult, stack_trajectory, time_grid
from sciflow.samplers.ctmc import guided_log_weights, mixture_jump, posterior_logits
from sciflow.tree import batch_size, first_leaf


def _mix(oc, ou, scale):
    if ou is None:
        return oc
    if oc is None:
        return ou
    return ou + scale * (oc - ou)


def _expand(t, x):
    return t.reshape(t.shape[0], *([1] * (x.dim() - 1)))


class ProductSampler:
    """``sampler(flow, x0, cond=None, guidance_scale=1.0) -> SampleResult`` for product / simplex flows.

    Args:
        steps: number of uniform steps (NFE = steps).
        corrector: CTMC corrector strength for masked discrete components (0 = off).
        classifier: optional ``f(x, t) -> (B, C)`` class log-probabilities on simplex states, for Dirichlet
            classifier guidance (single-component Dirichlet flows); the network is then called
            unconditionally and ``guidance_scale`` scales the classifier score.
    """

    def __init__(self, steps: int = 100, corrector: float = 0.0, classifier: Optional[Callable] = None):
        if int(steps) < 1:
            raise ValueError(f"steps must be a positive integer, got {steps}")
        self.steps, self.corrector, self.classifier = int(steps), float(corrector), classifier

    def __repr__(self) -> str:
        return f"ProductSampler(steps={self.steps}, corrector={self.corrector})"

    def _update(self, path, pred, space, x, oc, ou, t, t_next, scale, cond):
        h = t_next - t
        if isinstance(path, MixturePath):
            logq, normalised = guided_log_weights(oc, ou, scale)
            return mixture_jump(path, x, logq, t, t_next, normalised=normalised, corrector=self.corrector)
        if isinstance(path, _SimplexPath) and pred == "logits":
            if self.classifier is not None:
                if not isinstance(path, DirichletPath):
                    raise ValueError("simplex classifier guidance is defined for the Dirichlet path only")
                p = torch.softmax(oc if oc is not None else ou, -1)
                if scale != 0.0:
                    g = classifier_grad(x, t, cond, self.classifier)
                    p = dirichlet_classifier_probs(p, x, g, path.score_scale(t), scale)
            else:
                pc = torch.softmax(oc, -1) if oc is not None else None
                pu = torch.softmax(ou, -1) if ou is not None else None
                p = pc if pu is None else (pu if pc is None else simplex_cfg_probs(pc, pu, scale))
            v = path.velocity_from_probs(p, x, t)
        else:
            v = path.velocity(_mix(oc, ou, scale), x, t, pred)
        step = v * _expand(h, v)
        return space.exp(x, step) if space is not None else x + step

    def __call__(self, flow, x0, cond=None, guidance_scale: float = 1.0, return_trajectory: bool = False,
                 progress: bool = False, grid=None) -> SampleResult:
        path = flow.path
        if isinstance(path, ProductPath):
            comps = {k: (p, path.component_predictions[k]) for k, p in path.paths.items()}
            spaces = getattr(flow.space, "components", None) or {k: None for k in comps}
            if not isinstance(x0, dict):
                raise TypeError("product sampler: a ProductPath flow needs dict states x0")
        else:
            comps, spaces = {None: (path, flow.prediction)}, {None: flow.space}
        ref = first_leaf(x0)
        dtype = ref.dtype if ref.is_floating_point() else torch.get_default_dtype()
        if isinstance(x0, dict):
            dtype = next((v.dtype for v in x0.values() if v.is_floating_point()), dtype)
        ts = time_grid(None if grid is not None else self.steps, 0.0, 1.0, grid, ref.device, dtype)
        n = batch_size(x0)
        x, nfe = x0, 0
        traj = [x0] if return_trajectory else None
        it = range(ts.numel() - 1)
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc="product steps", leave=False)
        use_classifier = self.classifier is not None
        with torch.no_grad():
            for i in it:
                t, t_next = ts[i].expand(n), ts[i + 1].expand(n)
                if use_classifier:
                    oc, ou = flow.predict(x, t, None, 1.0), None
                else:
                    oc, ou = posterior_logits(flow, x, t, cond, guidance_scale)
                nfe += 1
                if None in comps:
                    p, pred = comps[None]
                    x = self._update(p, pred, spaces[None], x, oc, ou, t, t_next, guidance_scale, cond)
                else:
                    x = {k: self._update(p, pred, spaces.get(k), x[k], None if oc is None else oc[k],
                                         None if ou is None else ou[k], t, t_next, guidance_scale, cond)
                         for k, (p, pred) in comps.items()}
                if traj is not None:
                    traj.append(x)
        return SampleResult(x=x, nfe=nfe, times=ts, trajectory=stack_trajectory(traj) if traj else None)


@register("sampler", "product")
def product(**kwargs) -> ProductSampler:
    """Joint sampler for product (continuous + discrete) flows; see :class:`ProductSampler`."""
    return ProductSampler(**kwargs)


@register("sampler", "simplex")
def simplex(**kwargs) -> ProductSampler:
    """Euler sampler for Dirichlet / linear simplex flows with probability-space guidance; see :class:`ProductSampler`."""
    return ProductSampler(**kwargs)
