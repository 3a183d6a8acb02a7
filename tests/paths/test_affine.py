"""AffinePath: interpolant and target vs finite differences, exact parameterisation round trips, losses."""
import pytest
import torch

from sciflow.paths import AffinePath, CondOTScheduler, PathSample, PolynomialScheduler, VPScheduler

SCHEDULERS = ["cond_ot", {"name": "polynomial", "n": 2.5}, "cosine", "vp"]
PREDS = ("velocity", "x1", "noise")


def _batch(seed=0, shape=(6, 3, 2)):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(shape, generator=g, dtype=torch.float64)
    x1 = torch.randn(shape, generator=g, dtype=torch.float64) * 2 + 1
    t = torch.rand(shape[0], generator=g, dtype=torch.float64) * 0.9 + 0.05
    return x0, x1, t


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_dx_t_is_time_derivative_of_x_t(scheduler):
    path = AffinePath(scheduler)
    x0, x1, t = _batch()
    h = 1e-6
    s = path.sample(x0, x1, t)
    fd = (path.sample(x0, x1, t + h).x_t - path.sample(x0, x1, t - h).x_t) / (2 * h)
    assert s.x_t.shape == x0.shape and s.dx_t.shape == x0.shape
    torch.testing.assert_close(s.dx_t, fd, rtol=1e-6, atol=1e-6)


def test_cond_ot_closed_form():
    path = AffinePath()
    x0, x1, t = _batch()
    s = path.sample(x0, x1, t)
    tt = t[:, None, None]
    torch.testing.assert_close(s.x_t, tt * x1 + (1 - tt) * x0)
    torch.testing.assert_close(s.dx_t, x1 - x0)
    # endpoints
    s0 = path.sample(x0, x1, torch.zeros_like(t))
    s1 = path.sample(x0, x1, torch.ones_like(t))
    torch.testing.assert_close(s0.x_t, x0)
    torch.testing.assert_close(s1.x_t, x1)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("source", PREDS)
@pytest.mark.parametrize("dest", PREDS)
def test_conversions_recover_true_quantities(scheduler, source, dest):
    """Converting the exact conditional quantity of one kind gives the exact one of any other kind."""
    path = AffinePath(scheduler)
    x0, x1, t = _batch(seed=1)
    s = path.sample(x0, x1, t)
    truth = {"velocity": s.dx_t, "x1": x1, "noise": x0}
    out = path.convert(truth[source], s.x_t, t, source, dest)
    torch.testing.assert_close(out, truth[dest], rtol=1e-10, atol=1e-10)
    # and back again
    back = path.convert(out, s.x_t, t, dest, source)
    torch.testing.assert_close(back, truth[source], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_round_trip_on_arbitrary_predictions(scheduler):
    """velocity -> x1 -> noise -> velocity is the identity for any prediction (not only the true one)."""
    path = AffinePath(scheduler)
    x0, x1, t = _batch(seed=2)
    x_t = path.sample(x0, x1, t).x_t
    v = torch.randn_like(x_t)
    x1_hat = path.convert(v, x_t, t, "velocity", "x1")
    eps_hat = path.convert(x1_hat, x_t, t, "x1", "noise")
    v_back = path.convert(eps_hat, x_t, t, "noise", "velocity")
    torch.testing.assert_close(v_back, v, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(path.velocity(x1_hat, x_t, t, "x1"), v, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("prediction", PREDS)
def test_loss_targets_and_values(prediction):
    path = AffinePath()
    x0, x1, t = _batch(seed=3)
    s = path.sample(x0, x1, t)
    target = {"velocity": x1 - x0, "x1": x1, "noise": x0}[prediction]
    torch.testing.assert_close(path.target(s, prediction), target)
    # loss is zero at the target and equals the per-example mean squared error otherwise
    assert torch.all(path.loss(target, s, prediction) == 0)
    out = target + 0.5
    loss = path.loss(out, s, prediction)
    assert loss.shape == (x0.shape[0],)
    torch.testing.assert_close(loss, torch.full_like(loss, 0.25))


def test_unknown_prediction_is_rejected():
    path = AffinePath()
    x0, x1, t = _batch()
    s = path.sample(x0, x1, t)
    with pytest.raises(ValueError, match="prediction 'score'"):
        path.loss(x0, s, "score")
    with pytest.raises(ValueError, match="velocity"):
        path.convert(x0, s.x_t, t, "velocity", "logits")


def test_scheduler_spec_forms():
    assert isinstance(AffinePath().scheduler, CondOTScheduler)
    assert isinstance(AffinePath({"name": "polynomial", "n": 2}).scheduler, PolynomialScheduler)
    assert isinstance(AffinePath(VPScheduler()).scheduler, VPScheduler)


def test_float32_and_dtype_preserved():
    path = AffinePath("cosine")
    x0, x1 = torch.randn(4, 2), torch.randn(4, 2)
    s = path.sample(x0, x1, torch.rand(4))
    assert isinstance(s, PathSample)
    assert s.x_t.dtype == torch.float32 and s.dx_t.dtype == torch.float32


def test_weighted_loss_ignores_masked_elements():
    import torch

    from sciflow import Flow
    from sciflow.paths import AffinePath
    from sciflow.paths.base import PathSample
    from sciflow.spaces import Euclidean

    path = AffinePath()
    x0, x1 = torch.zeros(2, 3, 2), torch.ones(2, 3, 2)
    s = path.sample(x0, x1, torch.full((2,), 0.5))
    out = s.dx_t.clone()
    out[:, 2] += 10.0  # a "padded" element predicted badly
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])[:, :, None]
    assert torch.allclose(path.loss(out, s, "velocity", weight=mask), torch.zeros(2))
    assert path.loss(out, s, "velocity").min() > 30  # unweighted: the padded element dominates
    # through the Flow: all-zero weights give zero loss; weights 1 equal the plain loss
    flow = Flow(lambda x, t: torch.zeros_like(x), space=Euclidean((3, 2)))
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    x = torch.randn(4, 3, 2)
    assert flow.loss(x, weight=torch.zeros(4, 3, 1), generator=g()) == 0
    assert torch.allclose(flow.loss(x, weight=torch.ones(4, 3, 1), generator=g()), flow.loss(x, generator=g()))
