"""Triangle meshes as state spaces: points on a closed (or open) polyhedral surface in R^3.

Chen & Lipman 2024, "Flow Matching on General Geometries" (ICLR), Sec. 3.3 train flows on surfaces given as
triangle meshes (Stanford bunny, spot the cow, a maze). This module supplies the *space*: states are points
on the surface in ambient coordinates, shape ``(B, 3)``; the premetric and conditional path live in
:mod:`sciflow.paths.spectral`.

Geometry (all batched torch, on the input's device and dtype):

* ``locate(x) -> (face, bary, closest)``: the closest point of the surface to each ambient point, found
  exactly and vectorised: a bounding-sphere lower bound |x - c_f| - r_f for every face (one matmul)
  against the upper bound min_v |x - v| (distance to the nearest vertex, itself a surface point) prunes the
  faces; the surviving (point, face) pairs (typically ~10 per point) get the exact point-triangle test
  (projection onto the plane if it falls inside, else the closest point on one of the three edges).
  ``method="brute"`` tests every face, chunked over faces (the reference the tests compare against).
* ``proj(x)`` = the closest surface point; ``proj_tangent(x, v)`` = v minus its component along the unit
  normal of the face that contains x (the face ``locate`` returns; on an edge, one of the adjacent faces).
* ``exp(x, v) = proj(x + v)``: a *retraction* (first-order agreement with the exponential map), not the
  geodesic exponential of the polyhedral metric; samplers use it as their step.
* ``log``/``dist`` are not implemented (geodesics on meshes are not closed form); use the spectral premetric
  of :class:`sciflow.paths.spectral.SpectralPath` instead of the geodesic path.
* base distribution: uniform with respect to surface area: a face drawn with probability area_f / A and a
  uniform point in it (r1, r2 ~ U(0,1): a (1 - sqrt r1) + b sqrt r1 (1 - r2) + c sqrt r1 r2);
  log-density -log A.

Mesh generators (no downloads): :func:`icosphere`, :func:`torus_mesh`, :func:`bumpy_sphere`.
"""
from __future__ import annotations

import math
import weakref
from typing import Dict, Optional, Tuple

import torch

from sciflow.registry import register
from sciflow.spaces.manifold import Manifold

_CHUNK = 2 ** 21  # max (points x faces) pairs handled at once


# ---------------------------------------------------------------------------------------------------
# point-triangle geometry
# ---------------------------------------------------------------------------------------------------
def _seg(p, u, w):
    """Closest point on segments [u, w] (broadcast) to p: (point, parameter s in [0, 1], squared distance)."""
    e = w - u
    s = ((p - u) * e).sum(-1) / (e * e).sum(-1).clamp_min(torch.finfo(p.dtype).tiny)
    s = s.clamp(0, 1)
    q = u + s.unsqueeze(-1) * e
    return q, s, (p - q).pow(2).sum(-1)


def closest_point_on_triangles(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor
                               ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Closest points of triangles (a, b, c) to points p; all inputs broadcast to ``(..., 3)``.

    Returns ``(q, bary, d2)``: closest points ``(..., 3)``, their barycentric coordinates ``(..., 3)``
    (w.r.t. a, b, c; non-negative, summing to 1) and squared distances ``(...)``. The minimiser lies either
    in the interior (the orthogonal projection onto the plane, if its barycentrics are non-negative) or on
    one of the three edges; all four candidates are computed and the nearest valid one is kept.
    """
    ab, ac, ap = b - a, c - a, p - a
    d00, d01, d11 = (ab * ab).sum(-1), (ab * ac).sum(-1), (ac * ac).sum(-1)
    d20, d21 = (ap * ab).sum(-1), (ap * ac).sum(-1)
    den = d00 * d11 - d01 * d01
    ok = den > torch.finfo(p.dtype).eps * (d00 * d11).clamp_min(torch.finfo(p.dtype).tiny)
    den = torch.where(ok, den, torch.ones_like(den))
    v = (d11 * d20 - d01 * d21) / den
    w = (d00 * d21 - d01 * d20) / den
    u = 1 - v - w
    inside = ok & (u >= 0) & (v >= 0) & (w >= 0)
    q_in = a + v.unsqueeze(-1) * ab + w.unsqueeze(-1) * ac
    d_in = torch.where(inside, (p - q_in).pow(2).sum(-1), torch.full_like(u, float("inf")))
    q_ab, s_ab, d_ab = _seg(p, a, b)
    q_bc, s_bc, d_bc = _seg(p, b, c)
    q_ca, s_ca, d_ca = _seg(p, c, a)
    d_all = torch.stack([d_in, d_ab, d_bc, d_ca], -1)
    d2, k = d_all.min(-1)
    z = torch.zeros_like(u)
    bary_all = torch.stack([
        torch.stack([u, v, w], -1),
        torch.stack([1 - s_ab, s_ab, z], -1),
        torch.stack([z, 1 - s_bc, s_bc], -1),
        torch.stack([s_ca, z, 1 - s_ca], -1),
    ], -2)
    q_all = torch.stack([q_in, q_ab, q_bc, q_ca], -2)
    idx = k[..., None, None].expand(*k.shape, 1, 3)
    return q_all.gather(-2, idx).squeeze(-2), bary_all.gather(-2, idx).squeeze(-2), d2


# ---------------------------------------------------------------------------------------------------
# the space
# ---------------------------------------------------------------------------------------------------
@register("space", "mesh")
class TriangleMesh(Manifold):
    """A triangle mesh surface in R^3 as a 2-manifold; states ``(B, 3)`` lie on the surface.

    Args:
        vertices: ``(V, 3)`` float vertex positions (tensor or nested list), or ``None`` with ``generator``.
        faces: ``(F, 3)`` integer vertex indices, counter-clockwise seen from outside (the orientation only
            fixes the sign of the normals, which the tangent projection does not use).
        generator: build the mesh with a built-in generator instead: ``"icosphere"``, ``"torus"`` or
            ``"bumpy_sphere"``; ``generator_kwargs`` are passed on (e.g. ``subdivisions=3``).

    Example::

        mesh = TriangleMesh(generator="bumpy_sphere", subdivisions=3)
        x = mesh.random_base(512)              # (512, 3) uniform on the surface
        y = mesh.exp(x, 0.01 * torch.randn(512, 3))   # retraction step, stays on the surface
    """

    atol = 1e-5

    def __init__(self, vertices=None, faces=None, generator: Optional[str] = None, **generator_kwargs):
        if generator is not None:
            if vertices is not None or faces is not None:
                raise ValueError("TriangleMesh takes either vertices/faces or generator, not both")
            gens = {"icosphere": icosphere, "torus": torus_mesh, "bumpy_sphere": bumpy_sphere}
            if generator not in gens:
                raise ValueError(f"TriangleMesh generator must be one of {sorted(gens)}, got {generator!r}")
            vertices, faces = gens[generator](**generator_kwargs)
        elif generator_kwargs:
            raise TypeError(f"unexpected TriangleMesh arguments {sorted(generator_kwargs)} (no generator given)")
        if vertices is None or faces is None:
            raise ValueError("TriangleMesh needs vertices (V, 3) and faces (F, 3), or generator=...")
        v = torch.as_tensor(vertices)
        f = torch.as_tensor(faces)
        if not v.is_floating_point() or v.dim() != 2 or v.shape[1] != 3 or v.shape[0] < 3:
            raise ValueError(f"vertices must be a float tensor of shape (V >= 3, 3), got {tuple(v.shape)} {v.dtype}")
        if f.is_floating_point() or f.is_complex() or f.dim() != 2 or f.shape[1] != 3 or f.shape[0] < 1:
            raise ValueError(f"faces must be an integer tensor of shape (F >= 1, 3), got {tuple(f.shape)} {f.dtype}")
        f = f.long()
        if int(f.min()) < 0 or int(f.max()) >= v.shape[0]:
            raise ValueError(f"faces index vertices out of range [0, {v.shape[0]}): min {int(f.min())}, "
                             f"max {int(f.max())}")
        if not torch.isfinite(v).all():
            raise ValueError("vertices contain NaN or inf")
        self.vertices = v.detach().to(torch.float64).cpu()
        self.faces = f.detach().cpu()
        cr = torch.cross(self.vertices[f[:, 1]] - self.vertices[f[:, 0]],
                         self.vertices[f[:, 2]] - self.vertices[f[:, 0]], dim=-1)
        self.face_areas = 0.5 * cr.norm(dim=-1)
        if (self.face_areas <= 0).any():
            bad = (self.face_areas <= 0).nonzero().flatten()[:5].tolist()
            raise ValueError(f"faces {bad} are degenerate (zero area)")
        self.event_shape = (3,)
        self._cache: Dict[Tuple, Dict[str, torch.Tensor]] = {}
        self._last = None

    def __repr__(self) -> str:
        return f"TriangleMesh(V={self.vertices.shape[0]}, F={self.faces.shape[0]}, area={self.area():.4g})"

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"], state["_last"] = {}, None  # device caches and the weakref are rebuilt on demand
        return state

    @property
    def dim(self) -> int:
        return 2

    def area(self) -> float:
        """Total surface area A (sum of the face areas)."""
        return float(self.face_areas.sum())

    def _geom(self, device, dtype) -> Dict[str, torch.Tensor]:
        """Per-face tensors on (device, dtype), computed once and cached."""
        key = (str(device), dtype)
        g = self._cache.get(key)
        if g is None:
            v = self.vertices.to(device=device, dtype=dtype)
            f = self.faces.to(device)
            a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
            n = torch.cross(b - a, c - a, dim=-1)
            n = n / n.norm(dim=-1, keepdim=True)
            cen = (a + b + c) / 3
            rad = torch.stack([(a - cen).norm(dim=-1), (b - cen).norm(dim=-1), (c - cen).norm(dim=-1)], -1).amax(-1)
            g = dict(v=v, f=f, a=a, b=b, c=c, n=n, cen=cen, rad=rad,
                     area=self.face_areas.to(device=device, dtype=dtype))
            self._cache[key] = g
        return g

    # -- point location ---------------------------------------------------------------------------
    @torch.no_grad()
    def locate(self, x: torch.Tensor, method: str = "pruned"
               ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Closest surface point to each ambient point ``x`` ``(B, 3)``.

        Returns ``(face (B,) long, bary (B, 3), closest (B, 3))`` (detached). ``method="pruned"`` (default)
        is exact and tests only faces whose bounding sphere can beat the nearest vertex; ``"brute"`` tests
        every face, chunked over faces.
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != 3:
            raise ValueError(f"x must be a tensor of shape (B, 3), got {getattr(x, 'shape', type(x))}")
        g = self._geom(x.device, x.dtype)
        if method == "brute":
            return self._locate_brute(x, g)
        if method != "pruned":
            raise ValueError(f"locate method must be 'pruned' or 'brute', got {method!r}")
        hit = self._cached(x)
        if hit is not None:
            return hit
        nf = g["f"].shape[0]
        rows = max(1, _CHUNK // max(nf, g["v"].shape[0]))
        outs = [self._locate_pruned(x[i:i + rows], g) for i in range(0, x.shape[0], rows)]
        out = tuple(torch.cat(o, 0) for o in zip(*outs)) if len(outs) != 1 else outs[0]
        q = out[2]
        self._last = (weakref.ref(q), q._version, out[0], out[1])
        return out

    def _cached(self, x: torch.Tensor):
        """(face, bary, x) if x holds exactly the points the last ``locate`` returned (same live storage,
        unmodified), so that a sampler's step (exp -> proj) and its next field evaluation locate only once."""
        last = getattr(self, "_last", None)
        if last is None:
            return None
        ref = last[0]()
        if (ref is None or ref.data_ptr() != x.data_ptr() or ref.shape != x.shape or ref.stride() != x.stride()
                or ref.dtype != x.dtype or ref.device != x.device or x._version != last[1]
                or ref._version != last[1]):
            return None
        return last[2], last[3], x

    def _locate_pruned(self, x, g):
        # Face f can hold the closest point only if |x - c_f| - r_f <= ub = min_v |x - v| (a vertex is a surface
        # point), i.e. |x|^2 + |c_f|^2 - 2 x.c_f - (ub + r_f)^2 <= 0: one addmm over (B, F) with augmented
        # rows [x, ub] and columns [c_f, r_f]. Both sides are widened by a bound on the rounding error of the
        # expansion so that the pruning stays exact.
        s = 32 * torch.finfo(x.dtype).eps
        xx = x.pow(2).sum(-1)
        vv, cc, rr = g["v"].pow(2).sum(-1), g["cen"].pow(2).sum(-1), g["rad"].pow(2)
        d2v = torch.addmm((xx.unsqueeze(-1) + vv), x, g["v"].T, alpha=-2)
        ub = (d2v.amin(-1) + s * (xx + vv.max())).clamp_min(0).sqrt()
        uu = ub.pow(2)
        bias = ((xx - uu - s * (xx + uu)).unsqueeze(-1) + (cc - rr - s * (cc + rr)))
        lhs = torch.addmm(bias, torch.cat([x, ub.unsqueeze(-1)], -1),
                          torch.cat([g["cen"], g["rad"].unsqueeze(-1)], -1).T, alpha=-2)
        rows, cols = (lhs <= 0).nonzero(as_tuple=True)  # >= 1 face per row (any face at the nearest vertex)
        q, bary, d2 = closest_point_on_triangles(x[rows], g["a"][cols], g["b"][cols], g["c"][cols])
        n = x.shape[0]
        best = torch.full((n,), float("inf"), device=x.device, dtype=x.dtype).scatter_reduce(0, rows, d2, "amin")
        pair = torch.arange(rows.numel(), device=x.device)
        pair = torch.where(d2 == best[rows], pair, torch.full_like(pair, rows.numel()))
        sel = torch.full((n,), rows.numel(), device=x.device, dtype=torch.long).scatter_reduce(0, rows, pair, "amin")
        return cols[sel], bary[sel], q[sel]

    def _locate_brute(self, x, g):
        nf = g["f"].shape[0]
        step = max(1, _CHUNK // max(1, x.shape[0]))
        best_d = torch.full((x.shape[0],), float("inf"), device=x.device, dtype=x.dtype)
        face = torch.zeros(x.shape[0], device=x.device, dtype=torch.long)
        bary = torch.zeros_like(x)
        q = torch.zeros_like(x)
        for s in range(0, nf, step):
            sl = slice(s, min(nf, s + step))
            qc, bc, dc = closest_point_on_triangles(x.unsqueeze(1), g["a"][sl], g["b"][sl], g["c"][sl])
            d, j = dc.min(-1)
            better = d < best_d
            best_d = torch.where(better, d, best_d)
            face = torch.where(better, j + s, face)
            jj = j[:, None, None].expand(-1, 1, 3)
            bary = torch.where(better[:, None], bc.gather(1, jj).squeeze(1), bary)
            q = torch.where(better[:, None], qc.gather(1, jj).squeeze(1), q)
        return face, bary, q

    def barycentric(self, x: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        """Differentiable barycentric coordinates ``(B, 3)`` of x ``(B, 3)`` in the planes of ``face`` ``(B,)``.

        Linear in x and blind to the normal component, so autograd gives tangential gradients.
        """
        g = self._geom(x.device, x.dtype)
        a, b, c = g["a"][face], g["b"][face], g["c"][face]
        ab, ac, ap = b - a, c - a, x - a
        d00, d01, d11 = (ab * ab).sum(-1), (ab * ac).sum(-1), (ac * ac).sum(-1)
        d20, d21 = (ap * ab).sum(-1), (ap * ac).sum(-1)
        den = d00 * d11 - d01 * d01
        v = (d11 * d20 - d01 * d21) / den
        w = (d00 * d21 - d01 * d20) / den
        return torch.stack([1 - v - w, v, w], -1)

    def face_normals(self, face: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Unit normals ``(B, 3)`` of ``face`` ``(B,)`` on ``like``'s device and dtype."""
        return self._geom(like.device, like.dtype)["n"][face]

    # -- geometry ------------------------------------------------------------------------------------
    def proj(self, x: torch.Tensor) -> torch.Tensor:
        """The closest point of the surface, ``(B, 3)``."""
        return self.locate(x)[2]

    def proj_tangent(self, x: torch.Tensor, v: torch.Tensor, face: Optional[torch.Tensor] = None) -> torch.Tensor:
        """v minus its normal component on the face containing x (``face`` may be passed if known)."""
        if face is None:
            face = self.locate(x.detach())[0]
        n = self.face_normals(face, v)
        return v - (v * n).sum(-1, keepdim=True) * n

    def exp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Retraction R_x(v) = proj(x + v) (first-order exact; not the polyhedral geodesic exponential)."""
        return self.proj(x + v)

    def log(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("TriangleMesh has no closed-form log map; use path 'spectral' "
                                  "(sciflow.paths.spectral.SpectralPath), which needs only a premetric")

    def dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("TriangleMesh has no closed-form geodesic distance; use "
                                  "SpectralPath.premetric(x, y) (biharmonic / diffusion distance)")

    def inner(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Induced (Euclidean) metric, shape ``(B,)``."""
        return (u * v).sum(-1)

    # -- base distribution ---------------------------------------------------------------------------
    def random_base(self, n: int, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n`` points uniform with respect to surface area, shape ``(n, 3)``."""
        dtype = dtype if dtype is not None else torch.get_default_dtype()
        gdev = generator.device if generator is not None else device
        g = self._geom(device if device is not None else torch.device("cpu"), dtype)
        face = torch.multinomial(g["area"].to(gdev), n, replacement=True, generator=generator).to(g["area"].device)
        r = torch.rand((n, 2), generator=generator, device=gdev, dtype=dtype).to(g["area"].device)
        s1 = r[:, :1].sqrt()
        return g["a"][face] * (1 - s1) + g["b"][face] * (s1 * (1 - r[:, 1:])) + g["c"][face] * (s1 * r[:, 1:])

    def base_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """-log A for every row, shape ``(B,)``."""
        return torch.full(x.shape[:1], -math.log(self.area()), device=x.device, dtype=x.dtype)

    def on_manifold_error(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.proj(x)).norm(dim=-1)


# ---------------------------------------------------------------------------------------------------
# built-in meshes (float64 vertices, long faces)
# ---------------------------------------------------------------------------------------------------
def icosphere(subdivisions: int = 3, radius: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Icosahedron subdivided ``subdivisions`` times and pushed to the sphere of ``radius``.

    V = 10 * 4^s + 2 vertices, F = 20 * 4^s faces (s = 3: 642 and 1280). Outward-oriented faces.
    """
    s = int(subdivisions)
    if s < 0 or s > 7:
        raise ValueError(f"icosphere subdivisions must be in [0, 7], got {subdivisions}")
    p = (1 + 5 ** 0.5) / 2
    verts = [[-1, p, 0], [1, p, 0], [-1, -p, 0], [1, -p, 0], [0, -1, p], [0, 1, p], [0, -1, -p], [0, 1, -p],
             [p, 0, -1], [p, 0, 1], [-p, 0, -1], [-p, 0, 1]]
    faces = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
             [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5], [2, 4, 11],
             [6, 2, 10], [8, 6, 7], [9, 8, 1]]
    v = torch.tensor(verts, dtype=torch.float64)
    v = v / v.norm(dim=-1, keepdim=True)
    f = torch.tensor(faces, dtype=torch.long)
    for _ in range(s):
        nv = v.shape[0]
        edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], 0).sort(-1).values
        uniq, inv = torch.unique(edges, dim=0, return_inverse=True)
        mids = v[uniq[:, 0]] + v[uniq[:, 1]]
        v = torch.cat([v, mids / mids.norm(dim=-1, keepdim=True)], 0)
        m = inv.reshape(3, -1).T + nv  # midpoints of edges (01, 12, 20) per face
        a, b, c = f[:, 0], f[:, 1], f[:, 2]
        f = torch.cat([torch.stack([a, m[:, 0], m[:, 2]], -1), torch.stack([b, m[:, 1], m[:, 0]], -1),
                       torch.stack([c, m[:, 2], m[:, 1]], -1), m], 0)
    return v * float(radius), f


def bumpy_sphere(subdivisions: int = 3, amplitude: float = 0.15, frequency: int = 3, seed: int = 0
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """An icosphere with radius 1 + amplitude * (sum of a few random smooth bumps), a star-shaped surface.

    r(u) = 1 + amplitude * sum_j exp(frequency * (<u, c_j> - 1)) * s_j for 6 fixed random centres c_j and
    signs s_j (bumps and dents of angular width ~ 1/sqrt(frequency)); deterministic given ``seed``.
    """
    if not 0 <= amplitude < 0.5:
        raise ValueError(f"bumpy_sphere amplitude must be in [0, 0.5), got {amplitude}")
    v, f = icosphere(subdivisions)
    g = torch.Generator().manual_seed(int(seed))
    cen = torch.randn(6, 3, generator=g, dtype=torch.float64)
    cen = cen / cen.norm(dim=-1, keepdim=True)
    sign = torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0, 1.0], dtype=torch.float64)
    bumps = (torch.exp(float(frequency) * (v @ cen.T - 1)) * sign).sum(-1)
    return v * (1 + amplitude * bumps).unsqueeze(-1), f


def torus_mesh(major_radius: float = 1.0, minor_radius: float = 0.4, n_major: int = 32, n_minor: int = 16
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Torus of revolution around the z axis, ``n_major * n_minor`` vertices, twice as many faces."""
    if not 0 < minor_radius < major_radius:
        raise ValueError(f"torus needs 0 < minor_radius < major_radius, got {minor_radius}, {major_radius}")
    if n_major < 3 or n_minor < 3:
        raise ValueError(f"torus needs n_major, n_minor >= 3, got {n_major}, {n_minor}")
    u = torch.arange(n_major, dtype=torch.float64) * (2 * math.pi / n_major)
    w = torch.arange(n_minor, dtype=torch.float64) * (2 * math.pi / n_minor)
    uu, ww = torch.meshgrid(u, w, indexing="ij")
    rr = major_radius + minor_radius * torch.cos(ww)
    v = torch.stack([rr * torch.cos(uu), rr * torch.sin(uu), minor_radius * torch.sin(ww)], -1).reshape(-1, 3)
    i = torch.arange(n_major)[:, None]
    j = torch.arange(n_minor)[None, :]
    i1, j1 = (i + 1) % n_major, (j + 1) % n_minor
    p00, p10, p01, p11 = i * n_minor + j, i1 * n_minor + j, i * n_minor + j1, i1 * n_minor + j1
    f = torch.cat([torch.stack([p00, p10, p11], -1).reshape(-1, 3), torch.stack([p00, p11, p01], -1).reshape(-1, 3)], 0)
    return v, f
