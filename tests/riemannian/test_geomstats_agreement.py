"""Our closed-form sphere, SO(3) and hyperbolic geometry against geomstats, and the GeomstatsSpace adapter.

geomstats 2.8 does not import with numpy >= 2.4 (it uses numpy.trapz); these tests then skip with that
reason. Run them in an environment with numpy<2.4 (e.g. ``pip install geomstats 'numpy<2.4'``).
"""
import math

import pytest
import torch

from sciflow.spaces import SO3, Hyperbolic, Sphere
from sciflow.spaces.geomstats_adapter import GeomstatsSpace, geomstats_available, import_geomstats


def _skip_reason():
    try:
        import_geomstats()
        return None
    except ImportError as err:
        return str(err)


pytestmark = pytest.mark.skipif(not geomstats_available(), reason=f"geomstats unavailable: {_skip_reason()}")


def _cases():
    from geomstats.geometry.hyperboloid import Hyperboloid
    from geomstats.geometry.hypersphere import Hypersphere
    from geomstats.geometry.special_orthogonal import SpecialOrthogonal

    return [(Sphere(2), Hypersphere(2)), (Sphere(4), Hypersphere(4)), (SO3(), SpecialOrthogonal(3)),
            (Hyperbolic(2, std=0.8), Hyperboloid(2)), (Hyperbolic(3, std=0.8), Hyperboloid(3))]


@pytest.mark.parametrize("i", range(5))
def test_exp_log_dist_inner_agree_with_geomstats(i):
    ours, theirs = _cases()[i]
    g = torch.Generator().manual_seed(i)
    x = ours.random_base(200, dtype=torch.float64, generator=g)
    y = ours.random_base(200, dtype=torch.float64, generator=g)
    xn, yn = x.numpy(), y.numpy()
    v = ours.log(x, y)
    assert torch.allclose(torch.as_tensor(theirs.metric.log(yn, xn)), v, atol=1e-8)
    assert torch.allclose(torch.as_tensor(theirs.metric.exp(v.numpy(), xn)), ours.exp(x, v), atol=1e-8)
    assert torch.allclose(torch.as_tensor(theirs.metric.dist(xn, yn)), ours.dist(x, y), atol=1e-8)
    assert torch.allclose(torch.as_tensor(theirs.metric.inner_product(v.numpy(), v.numpy(), xn)),
                          ours.inner(x, v, v), atol=1e-8)
    w = torch.randn(x.shape, dtype=torch.float64, generator=g)
    assert torch.allclose(torch.as_tensor(theirs.to_tangent(w.numpy(), xn)), ours.proj_tangent(x, w), atol=1e-10)


def test_adapter_wraps_a_manifold_sciflow_lacks_and_matches_native_sphere():
    from geomstats.geometry.hypersphere import Hypersphere
    from geomstats.geometry.spd_matrices import SPDMatrices

    ad = GeomstatsSpace(Hypersphere(2), log_volume=math.log(4 * math.pi))
    sp = Sphere(2)
    x = sp.random_base(50, dtype=torch.float64)
    y = sp.random_base(50, dtype=torch.float64)
    assert ad.event_shape == (3,) and ad.dim == 2
    assert torch.allclose(ad.log(x, y), sp.log(x, y), atol=1e-8)
    assert torch.allclose(ad.dist(x, y), sp.dist(x, y), atol=1e-8)
    assert torch.allclose(ad.base_log_prob(x), sp.base_log_prob(x))
    ad.check(x)
    spd = GeomstatsSpace(SPDMatrices(3))
    p = spd.random_base(8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    q = spd.random_base(8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert p.shape == (8, 3, 3)
    assert (torch.linalg.eigvalsh(p) > 0).all()
    assert spd.dist(spd.exp(p, spd.log(p, q)), q).max() < 1e-6
    with pytest.raises(NotImplementedError, match="log_volume"):
        spd.base_log_prob(p)
