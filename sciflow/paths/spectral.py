"""Spectral premetrics and the simulated conditional flow on triangle meshes (Chen & Lipman 2024,
"Flow Matching on General Geometries", ICLR, Sec. 3.2-3.3).

**Premetric.** On a surface where geodesics are expensive, the paper builds the conditional flow from a
premetric d(x, y) >= 0 with d(x, y) = 0 iff x = y, computed from the Laplace-Beltrami eigenpairs
(lambda_i, phi_i), i = 1..k (the constant phi_0, lambda_0 = 0, dropped):

    biharmonic:  d_b(x, y)^2 = sum_i (phi_i(x) - phi_i(y))^2 / lambda_i^2      (Lipman, Rustamov & Funkhouser 2010)
    diffusion:   d_tau(x, y)^2 = sum_i exp(-2 lambda_i tau) (phi_i(x) - phi_i(y))^2   (Coifman & Lafon 2006)

The eigenpairs solve L phi = lambda M phi with the cotangent Laplacian L (L_ij = -(cot a_ij + cot b_ij) / 2 for
an edge ij with opposite angles a_ij, b_ij; L_ii = -sum_j L_ij) and the lumped (barycentric) mass matrix
M_ii = (area of the faces around i) / 3, solved once at setup on CPU with ``scipy.sparse.linalg.eigsh``
(shift-invert about 0); eigenvectors are M-orthonormal. At a surface point x in face (a, b, c) with
barycentrics (beta_a, beta_b, beta_c), phi_i(x) = sum_v beta_v phi_i(v) (piecewise-linear interpolation).

**Conditional vector field** (paper Eq. 15, Theorem 3.1). The paper's scheduler kappa decreases from
kappa(0) = 1 to kappa(1) = 0 and the conditional flow is characterised by d(x_t, x1) = kappa(t) d(x0, x1);
the minimal-norm field achieving it is

    u_t(x | x1) = (d log kappa(t) / dt) d(x, x1) grad d(x, x1) / ||grad d(x, x1)||_g^2.

Check: d/dt d(x_t, x1) = <grad d, u_t> = (kappa'/kappa) d, whose solution is d(x_t, x1) = kappa(t) d(x0, x1).
sciflow's time is the paper's (t = 0 source, t = 1 data). sciflow schedulers give alpha_t increasing from 0 to
1 (the geodesic path uses kappa_geo = alpha_t as the fraction travelled); the matching premetric scheduler
is kappa(t) = 1 - alpha_t, so (cond-OT: alpha_t = t)

    u_t(x | x1) = -alpha'_t / (1 - alpha_t) * d(x, x1) grad d / ||grad d||^2        (cond-OT: -d grad d / ((1 - t) ||grad d||^2)).

With D = d^2 and g = grad D = 2 d grad d this is u_t = -alpha'/(1 - alpha) * 2 D g / ||g||^2, which is how it is
computed (no square root at x = x1). g is taken by autograd through the barycentric interpolation of the
eigenfunctions (linear on each face and blind to the normal component, so g is tangent to the face); it is
also projected to the face's tangent plane. 1 - alpha_t is floored at machine epsilon (the field is singular
only at t = 1 exactly, which training times never reach). On the sphere with the geodesic distance as the
premetric this field is the geodesic path's target.

**Simulated x_t.** x_t has no closed form: it is the solution at time t of dx/dt = u_t(x | x1) from x0.
:meth:`SpectralPath.sample` integrates all examples at once in a normalised time s in [0, 1]: y(s) = x_{s t}
obeys dy/ds = t u_{s t}(y | x1), so every example takes the same ``steps`` steps of
:func:`sciflow.samplers.integrate` (with the mesh's retraction as step) up to its own t.

The loss is ||P_{x_t} v_theta - u_t(x_t | x1)||^2 in the induced metric; only "velocity" prediction.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from sciflow.paths.base import Path, PathSample
from sciflow.paths.schedulers import Scheduler, build_scheduler
from sciflow.registry import register


# ---------------------------------------------------------------------------------------------------
# discrete Laplace-Beltrami operator
# ---------------------------------------------------------------------------------------------------
def cotangent_laplacian(vertices, faces):
    """Cotangent Laplacian L (scipy CSR, V x V, symmetric positive semi-definite, rows sum to 0) and the
    lumped mass matrix M (scipy diagonal CSR, vertex area = one third of the adjacent face areas).

    Args:
        vertices: ``(V, 3)`` array or tensor; faces: ``(F, 3)`` integer array or tensor.
    """
    import scipy.sparse as sp

    v = np.asarray(torch.as_tensor(vertices).detach().cpu().double())
    f = np.asarray(torch.as_tensor(faces).detach().cpu().long())
    nv = v.shape[0]
    rows, cols, vals = [], [], []
    area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    for k in range(3):  # the angle at corner k is opposite the edge (k+1, k+2)
        i, j, o = f[:, (k + 1) % 3], f[:, (k + 2) % 3], f[:, k]
        e1, e2 = v[i] - v[o], v[j] - v[o]
        cot = (e1 * e2).sum(1) / np.linalg.norm(np.cross(e1, e2), axis=1)
        rows += [i, j]
        cols += [j, i]
        vals += [-0.5 * cot, -0.5 * cot]
    w = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nv, nv)).tocsr()
    lap = (sp.diags(-np.asarray(w.sum(1)).ravel()) + w).tocsr()
    mass = np.zeros(nv)
    np.add.at(mass, f.ravel(), np.repeat(area / 3.0, 3))
    return lap, sp.diags(mass).tocsr()


def laplace_beltrami_eigenpairs(vertices, faces, k: int = 64) -> Tuple[np.ndarray, np.ndarray]:
    """The ``k + 1`` smallest eigenpairs of L phi = lambda M phi (float64 numpy, ascending; the first is the
    constant function with lambda ~ 0). Eigenvectors ``(V, k + 1)`` are M-orthonormal.

    On the unit sphere the exact spectrum is l (l + 1) with multiplicity 2 l + 1 (0, 2 x3, 6 x5, 12 x7, ...).
    """
    from scipy.sparse.linalg import eigsh

    lap, mass = cotangent_laplacian(vertices, faces)
    nv = lap.shape[0]
    if not 1 <= k <= nv - 2:
        raise ValueError(f"n_eigs must be in [1, V - 2 = {nv - 2}], got {k}")
    shift = -1e-8 * abs(lap.diagonal()).max()  # L - shift M is positive definite
    # ARPACK can miss members of a degenerate eigenvalue cluster at the edge of the requested range, and its
    # default random start vector makes that vary between runs: ask for a few more pairs than needed, from a
    # fixed start vector, and keep the k + 1 smallest
    n_solve = min(k + 1 + 8, nv - 1)
    v0 = np.random.default_rng(0).standard_normal(nv)
    evals, evecs = eigsh(lap, k=n_solve, M=mass, sigma=shift, which="LM", v0=v0)
    order = np.argsort(evals)[: k + 1]
    return evals[order], evecs[:, order]


# ---------------------------------------------------------------------------------------------------
# spectral premetric
# ---------------------------------------------------------------------------------------------------
class SpectralPremetric:
    """Biharmonic or diffusion distance on a :class:`~sciflow.spaces.mesh.TriangleMesh`.

    Args:
        mesh: the TriangleMesh.
        kind: "biharmonic" (weights 1 / lambda_i^2) or "diffusion" (weights exp(-2 lambda_i tau)).
        n_eigs: number k of non-constant eigenpairs.
        tau: diffusion time (``kind="diffusion"`` only), in the mesh's length units squared.
    """

    def __init__(self, mesh, kind: str = "biharmonic", n_eigs: int = 64, tau: Optional[float] = None):
        if kind not in ("biharmonic", "diffusion"):
            raise ValueError(f"premetric kind must be 'biharmonic' or 'diffusion', got {kind!r}")
        if kind == "diffusion" and (tau is None or tau <= 0):
            raise ValueError(f"diffusion distance needs tau > 0, got tau={tau}")
        self.mesh, self.kind, self.n_eigs, self.tau = mesh, kind, int(n_eigs), tau
        evals, evecs = laplace_beltrami_eigenpairs(mesh.vertices, mesh.faces, self.n_eigs)
        lam = evals[1:]
        if lam[0] <= 1e-8 * lam[-1]:
            raise ValueError("the mesh's Laplacian has more than one zero eigenvalue: is the mesh disconnected? "
                             "the spectral premetric needs a connected surface")
        self.evals = torch.from_numpy(lam)                 # (k,)
        self.evecs = torch.from_numpy(evecs[:, 1:].copy())  # (V, k)
        w = 1.0 / lam ** 2 if kind == "biharmonic" else np.exp(-2.0 * lam * tau)
        self.weights = torch.from_numpy(w)
        self._cache: Dict[Tuple, Tuple[torch.Tensor, torch.Tensor]] = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    def __repr__(self) -> str:
        extra = f", tau={self.tau}" if self.kind == "diffusion" else ""
        return f"SpectralPremetric({self.kind}, n_eigs={self.n_eigs}{extra})"

    def _tensors(self, like: torch.Tensor):
        key = (str(like.device), like.dtype)
        t = self._cache.get(key)
        if t is None:
            fv = self.evecs.to(device=like.device, dtype=like.dtype)[self.mesh.faces.to(like.device)]  # (F, 3, k)
            t = (fv, self.weights.to(device=like.device, dtype=like.dtype).sqrt())
            self._cache[key] = t
        return t

    def features(self, x: torch.Tensor, face: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Weighted eigenfunctions sqrt(w_i) phi_i(x), ``(B, k)``, so that d^2 is a squared Euclidean distance.

        ``face`` (from ``mesh.locate``) may be given; the result is differentiable in x.
        """
        if face is None:
            face = self.mesh.locate(x.detach())[0]
        fv, sw = self._tensors(x)
        bary = self.mesh.barycentric(x, face)
        return torch.einsum("bj,bjk->bk", bary, fv[face]) * sw

    def dist2(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Squared premetric d(x, y)^2, shape ``(B,)``, for surface points x, y ``(B, 3)``."""
        return (self.features(x) - self.features(y)).pow(2).sum(-1)

    def dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Premetric d(x, y), shape ``(B,)``."""
        return self.dist2(x, y).clamp_min(0).sqrt()


# ---------------------------------------------------------------------------------------------------
# the path
# ---------------------------------------------------------------------------------------------------
@register("path", "spectral")
class SpectralPath(Path):
    """Premetric conditional path on a triangle mesh with a simulated x_t (see the module docstring).

    Args:
        space: a :class:`~sciflow.spaces.mesh.TriangleMesh` (or ``{"name": "mesh", ...}``); may be bound
            later by the Flow.
        kind: "biharmonic" (default, as the paper's mesh experiments) or "diffusion".
        n_eigs: number of non-constant Laplace-Beltrami eigenpairs k.
        tau: diffusion time for ``kind="diffusion"``.
        scheduler: alpha_t of a core scheduler; the premetric decays as kappa(t) = 1 - alpha_t (default cond-OT).
        steps: steps of the simulation of x_t from x0 (per example, in normalised time).
        method: fixed-step method of :func:`sciflow.samplers.integrate` for that simulation.
    """

    predictions = ("velocity",)

    def __init__(self, space=None, kind: str = "biharmonic", n_eigs: int = 64, tau: Optional[float] = None,
                 scheduler="cond_ot", steps: int = 32, method: str = "euler"):
        if kind not in ("biharmonic", "diffusion"):
            raise ValueError(f"SpectralPath kind must be 'biharmonic' or 'diffusion', got {kind!r}")
        if int(steps) < 1:
            raise ValueError(f"SpectralPath steps must be >= 1, got {steps}")
        from sciflow.samplers.ode import FIXED_STEP_METHODS

        if method not in FIXED_STEP_METHODS:
            raise ValueError(f"SpectralPath method must be one of {FIXED_STEP_METHODS}, got {method!r}")
        self.kind, self.n_eigs, self.tau = kind, int(n_eigs), tau
        self.scheduler: Scheduler = build_scheduler(scheduler)
        self.steps, self.method = int(steps), method
        self.space = None
        self.premetric: Optional[SpectralPremetric] = None
        if space is not None:
            self.bind(space)

    def __repr__(self) -> str:
        return (f"SpectralPath(space={self.space!r}, kind={self.kind!r}, n_eigs={self.n_eigs}, "
                f"scheduler={self.scheduler!r}, steps={self.steps}, method={self.method!r})")

    def bind(self, space) -> "SpectralPath":
        """Set the mesh and compute its eigenpairs (once); raises if a different space is already bound."""
        from sciflow.paths.geodesic import build_space
        from sciflow.spaces.mesh import TriangleMesh

        space = build_space(space)
        if not isinstance(space, TriangleMesh):
            raise TypeError(f"SpectralPath needs a TriangleMesh space, got {type(space).__name__}")
        if self.space is not None:
            if self.space is not space:
                raise ValueError(f"SpectralPath is bound to {self.space!r}, not {space!r}")
            return self
        self.space = space
        self.premetric = SpectralPremetric(space, self.kind, self.n_eigs, self.tau)
        return self

    def _mesh(self):
        if self.space is None:
            raise ValueError("SpectralPath has no mesh: pass space=... or call path.bind(mesh)")
        return self.space

    def target_features(self, x1: torch.Tensor) -> torch.Tensor:
        """Premetric features of the data points x1 ``(B, 3)``; raises if x1 is not on the mesh."""
        mesh = self._mesh()
        face, _, q = mesh.locate(x1)
        err = (x1 - q).norm(dim=-1)
        if (err > mesh.atol * (1 + x1.norm(dim=-1))).any():
            raise ValueError(f"x1 is not on the mesh (off by up to {err.max().item():.3g}); project with mesh.proj")
        return self.premetric.features(x1, face).detach()

    def conditional_velocity(self, x: torch.Tensor, t: torch.Tensor, feat1: torch.Tensor,
                             face: Optional[torch.Tensor] = None) -> torch.Tensor:
        """u_t(x | x1) = -alpha'_t / (1 - alpha_t) * 2 D g / ||g||^2 with D = d(x, x1)^2, g = grad_x D (tangent).

        Args:
            x: surface points ``(B, 3)``; t: times ``(B,)`` (t = 0 source, t = 1 data);
            feat1: ``target_features(x1)`` ``(B, k)``; face: faces of x if known.
        Returns:
            ``(B, 3)`` tangent vectors (detached).
        """
        mesh = self._mesh()
        if face is None:
            face = mesh.locate(x.detach())[0]
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            big_d = (self.premetric.features(xg, face) - feat1).pow(2).sum(-1)
            (g,) = torch.autograd.grad(big_d.sum(), xg)
        big_d = big_d.detach()
        g = mesh.proj_tangent(x, g, face=face)
        gg = g.pow(2).sum(-1)
        sch = self.scheduler(t)
        rate = -sch.d_alpha / (1 - sch.alpha).clamp_min(torch.finfo(x.dtype).eps)  # d log kappa / dt
        coef = torch.where(gg > 0, 2 * big_d / torch.where(gg > 0, gg, torch.ones_like(gg)), torch.zeros_like(gg))
        return (rate * coef).unsqueeze(-1) * g

    @torch.no_grad()
    def simulate(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, steps: Optional[int] = None,
                 return_trajectory: bool = False, feat1: Optional[torch.Tensor] = None):
        """x_t for per-example times t ``(B,)`` by integrating the conditional field from x0 in normalised time.

        Returns a :class:`~sciflow.samplers.SampleResult` (``.x`` = x_t ``(B, 3)``; the trajectory is in
        normalised time s, example b being at time s * t_b). ``feat1`` = ``target_features(x1)`` if known.
        """
        from sciflow.samplers.ode import integrate

        mesh = self._mesh()
        feat1 = self.target_features(x1) if feat1 is None else feat1
        tt = t.to(x0.dtype)

        def field(y, s):
            return tt.unsqueeze(-1) * self.conditional_velocity(y, s * tt, feat1)

        return integrate(field, x0, method=self.method, steps=steps or self.steps, t0=0.0, t1=1.0, space=mesh,
                         return_trajectory=return_trajectory)

    def sample(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> PathSample:
        """Simulated x_t and target u_t(x_t | x1) for x0, x1 ``(B, 3)`` on the mesh and t ``(B,)`` (t=0 source)."""
        mesh = self._mesh()
        for name, a in (("x0", x0), ("x1", x1)):
            if not isinstance(a, torch.Tensor) or a.dim() != 2 or a.shape[1] != 3:
                raise ValueError(f"{name} must be a tensor of shape (B, 3), got {getattr(a, 'shape', type(a))}")
        if t.shape != x0.shape[:1]:
            raise ValueError(f"t must have shape ({x0.shape[0]},), got {tuple(t.shape)}")
        feat1 = self.target_features(x1)
        x_t = self.simulate(x0, x1, t, feat1=feat1).x
        face = mesh.locate(x_t)[0]
        u = self.conditional_velocity(x_t, t.to(x_t.dtype), feat1, face=face)
        return PathSample(x0=x0, x1=x1, t=t, x_t=x_t, dx_t=u, extra={"face": face})

    def loss(self, output: Any, sample: PathSample, prediction: str = "velocity") -> torch.Tensor:
        """||P_{x_t} output - u_t||^2 in the induced metric, shape ``(B,)``."""
        self.check_prediction(prediction)
        face = sample.extra.get("face") if sample.extra else None
        diff = self._mesh().proj_tangent(sample.x_t, output, face=face) - sample.dx_t
        return diff.pow(2).sum(-1)

    def velocity(self, output: Any, x_t: Any, t: torch.Tensor, prediction: str = "velocity") -> Any:
        """The network output projected onto the tangent plane of the face containing x_t."""
        self.check_prediction(prediction)
        return self._mesh().proj_tangent(x_t, output)
