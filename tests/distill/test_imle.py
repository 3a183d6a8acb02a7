"""One-step IMLE distillation: distances, the one-step generator, mode coverage, the distill command."""
import json

import pytest
import torch
import yaml

import sciflow
from sciflow.distill import group_distances, imle_loss, one_step, repeat_groups
from sciflow.spaces import Euclidean


def test_group_distances_match_brute_force_with_weights():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(3, 4, 5, 2, generator=g)
    x = torch.randn(3, 6, 5, 2, generator=g)
    w = (torch.rand(3, 1, 5, 1, generator=g) > 0.4).float()
    w[:, :, 0] = 1.0
    d = group_distances(y, x, w)
    assert d.shape == (3, 4, 6)
    for gi in range(3):
        for s in range(4):
            for m in range(6):
                ref = (w[gi, 0] * (y[gi, s] - x[gi, m]) ** 2).sum() / (w[gi, 0].sum() * 2)
                assert torch.allclose(d[gi, s, m], ref, atol=1e-5)


def test_group_distances_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="event shape"):
        group_distances(torch.zeros(2, 3, 4), torch.zeros(2, 3, 5))


def test_one_step_equals_a_single_euler_sampler_step():
    torch.manual_seed(0)
    flow = sciflow.Flow(sciflow.nn.MLP(2, hidden=16), space=Euclidean(2), prediction="x1")
    x0 = torch.randn(7, 2)
    ref = flow.sample(x0=x0, sampler="euler", steps=1).x
    assert torch.allclose(one_step(flow, x0), ref, atol=1e-6)


@pytest.mark.parametrize("steps", [2, 5])
def test_euler_unrolled_equals_the_euler_sampler_and_passes_gradients(steps):
    from sciflow.distill import euler_unrolled

    torch.manual_seed(0)
    flow = sciflow.Flow(sciflow.nn.MLP(2, hidden=16), space=Euclidean(2), prediction="x1")
    x0 = torch.randn(7, 2)
    ref = flow.sample(x0=x0, sampler="euler", steps=steps).x
    x = euler_unrolled(flow, x0, steps=steps)
    assert torch.allclose(x, ref, atol=1e-6)
    assert not torch.allclose(x, one_step(flow, x0), atol=1e-3)
    x.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in flow.parameters())
    with pytest.raises(ValueError, match="steps"):
        euler_unrolled(flow, x0, steps=0)


def test_repeat_groups_is_group_major():
    c = {"a": torch.tensor([1, 2])}
    assert repeat_groups(c, 3)["a"].tolist() == [1, 1, 1, 2, 2, 2]
    assert repeat_groups(None, 3) is None


class _StandStill(torch.nn.Module):
    """Zero velocity everywhere: the one-step generator returns its source draw unchanged."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, cond=None):
        return self.w * x


@pytest.mark.parametrize("match_dims", [0, 1])
def test_imle_loss_matches_each_agent_or_the_whole_scene_by_brute_force(match_dims):
    """Targets (G, S, N, T, 2); candidates are the source draws (zero velocity). match_dims=1: every agent
    picks its own nearest candidate and padded agents (weight 0) are left out; 0: one pick per scene."""
    flow = sciflow.Flow(_StandStill(), space=Euclidean((4, 3, 2)), prediction="velocity")
    G, S, M, N = 2, 3, 5, 4
    y = torch.randn(G, S, N, 3, 2, generator=torch.Generator().manual_seed(0))
    w = torch.ones(G, 1, N, 1, 1)
    w[1, :, 3] = 0.0  # scene 1 has three real agents
    loss = imle_loss(flow, y, candidates=M, weight=w, generator=torch.Generator().manual_seed(1),
                     match_dims=match_dims)
    x = flow.sample_source(G * M, generator=torch.Generator().manual_seed(1)).view(G, M, N, 3, 2)
    per_agent = ((y[:, :, None] - x[:, None]) ** 2).mean(dim=(-1, -2))  # (G, S, M, N)
    real = w[:, 0, :, 0, 0]  # (G, N)
    if match_dims == 1:
        best = per_agent.min(dim=2).values.mean(dim=1)  # (G, N)
        expect = (best * real).sum() / real.sum()
    else:
        joint = (per_agent * real[:, None, None]).sum(-1) / real.sum(-1)[:, None, None]  # (G, S, M)
        expect = joint.min(dim=2).values.mean()
    assert loss.item() == pytest.approx(expect.item(), rel=1e-5)
    # per-agent matching can only lower the loss: each agent chooses from the same M candidates
    joint_loss = imle_loss(flow, y, candidates=M, weight=w, generator=torch.Generator().manual_seed(1))
    assert loss.item() <= joint_loss.item() + 1e-6
    with pytest.raises(ValueError, match="event dimension"):
        imle_loss(flow, y, candidates=M, match_dims=3)


def test_imle_student_recovers_both_modes_that_a_one_step_teacher_averages_away():
    """Data N(+-2, 0.1^2): one Euler step of an x1-predicting flow lands on the mean (0); the IMLE student,
    started from the same weights and matched to 20-step teacher samples, puts its mass on both modes."""
    import copy

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)

    def data(n):
        return 2.0 * (torch.randint(0, 2, (n, 1), generator=g) * 2.0 - 1.0) + 0.1 * torch.randn(n, 1, generator=g)

    teacher = sciflow.Flow(sciflow.nn.MLP(1, hidden=64), space=Euclidean(1), prediction="x1")
    opt = torch.optim.Adam(teacher.parameters(), lr=3e-3)
    for _ in range(500):
        loss = teacher.loss(data(256), generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def near_modes(flow, steps):
        x = flow.sample(4000, sampler="euler", steps=steps, generator=g).x.squeeze(-1)
        return ((x - 2).abs() < 0.5).float().mean().item(), ((x + 2).abs() < 0.5).float().mean().item()

    assert sum(near_modes(teacher, 1)) < 0.05  # the one-step teacher collapses to the mean
    student = copy.deepcopy(teacher)
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    for _ in range(300):
        targets = teacher.sample(64, sampler="euler", steps=20, generator=g).x.view(1, 64, 1)
        loss = imle_loss(student, targets, candidates=16, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    plus, minus = near_modes(student, 1)
    assert plus > 0.2 and minus > 0.2 and plus + minus > 0.5, (plus, minus)


def test_distill_command_trains_a_one_step_student_and_resumes(tmp_path, tiny_toy):
    from sciflow.cli import main
    from sciflow.training import load_run, train

    cfg = tiny_toy("teacher", trainer={"max_steps": 30})
    train(cfg, evaluate=False)
    teacher = tmp_path / "teacher"
    over = ["distill.max_steps=12", "distill.teacher_samples=64", "distill.candidates=64", "distill.ckpt_every=6",
            "trainer.progress=false"]
    assert main(["distill", str(teacher), *over]) == 0
    student_dir = teacher / "distill"
    saved = yaml.safe_load((student_dir / "config.yaml").read_text())
    assert saved["sample"] == {**saved["sample"], "sampler": "euler", "steps": 1}
    assert saved["trainer"]["max_steps"] == 12
    metrics = json.loads((student_dir / "metrics.json").read_text())
    assert metrics["distill_steps"] == 12 and metrics["nfe"] == 1
    task, flow = load_run(student_dir)
    x = flow.sample(16, sampler="euler", steps=1).x
    assert x.shape == (16, 2) and torch.isfinite(x).all()
    # a second call finds the finished checkpoint and trains no further steps
    assert main(["distill", str(teacher), *over]) == 0
    assert json.loads((student_dir / "metrics.json").read_text())["distill_steps"] == 12


@pytest.mark.parametrize("targets", ["data", "both"])
def test_distill_on_data_targets_runs_and_rejects_unknown_targets(tmp_path, tiny_toy, targets):
    from sciflow.config import ConfigError
    from sciflow.training import train
    from sciflow.training.distill import distill

    train(tiny_toy("teacher", trainer={"max_steps": 10}), evaluate=False)
    teacher = tmp_path / "teacher"
    res = distill(teacher, [f"distill.targets={targets}", "distill.max_steps=4", "distill.candidates=32",
                            "trainer.progress=false", f"run_dir={tmp_path / targets}"])
    assert res.metrics["distill_steps"] == 4 and res.metrics["nfe"] == 1
    with pytest.raises(ConfigError, match="distill.targets"):
        distill(teacher, ["distill.targets=labels", f"run_dir={tmp_path / 'bad'}"])


def test_imle_loss_uses_a_given_distance_and_checks_its_shape():
    """A custom distance (here the mean absolute error) both picks the nearest candidate and is the loss."""
    flow = sciflow.Flow(_StandStill(), space=Euclidean((3,)), prediction="velocity")
    G, S, M = 2, 4, 5
    y = torch.randn(G, S, 3, generator=torch.Generator().manual_seed(0))

    def l1(targets, candidates, weight):
        return (targets[:, :, None] - candidates[:, None]).abs().mean(-1)

    loss = imle_loss(flow, y, candidates=M, generator=torch.Generator().manual_seed(1), distance=l1)
    x = flow.sample_source(G * M, generator=torch.Generator().manual_seed(1)).view(G, M, 3)
    expect = (y[:, :, None] - x[:, None]).abs().mean(-1).min(dim=2).values.mean()
    assert loss.item() == pytest.approx(expect.item(), rel=1e-6)
    with pytest.raises(ValueError, match="distance returned shape"):
        imle_loss(flow, y, candidates=M, distance=lambda a, b, w: l1(a, b, w)[:, :, :2])


def test_imle_loss_matches_every_term_of_a_stacked_distance_on_its_own():
    """A distance returning (P, G, S, M) is P error terms, each minimised over its own best candidate:
    the loss is the sum of the terms' best-of-M errors (e.g. minADE + minFDE), never above matching their sum."""
    flow = sciflow.Flow(_StandStill(), space=Euclidean((3,)), prediction="velocity")
    G, S, M = 2, 4, 5
    y = torch.randn(G, S, 3, generator=torch.Generator().manual_seed(0))

    def first_and_rest(targets, candidates, weight):
        e = (targets[:, :, None] - candidates[:, None]).abs()  # (G, S, M, 3)
        return torch.stack([e[..., 0], e[..., 1:].sum(-1)])

    loss = imle_loss(flow, y, candidates=M, generator=torch.Generator().manual_seed(1), distance=first_and_rest)
    x = flow.sample_source(G * M, generator=torch.Generator().manual_seed(1)).view(G, M, 3)
    e = (y[:, :, None] - x[:, None]).abs()
    expect = e[..., 0].min(dim=2).values.mean() + e[..., 1:].sum(-1).min(dim=2).values.mean()
    assert loss.item() == pytest.approx(expect.item(), rel=1e-6)
    joint = imle_loss(flow, y, candidates=M, generator=torch.Generator().manual_seed(1),
                      distance=lambda a, b, w: first_and_rest(a, b, w).sum(0))
    assert loss.item() < joint.item()


def test_imle_with_a_fixed_codebook_learns_one_hypothesis_per_mode():
    """Multiple-choice learning: a source that hands every condition the same two codes turns IMLE on data
    into winner-takes-all; data at +-2 (plus 0.05 noise) is then covered by one code each, best-of-2 error ~0."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    book = torch.tensor([[-0.3], [0.3]])

    def codebook(n, cond=None, device=None, dtype=None, generator=None):
        return book.repeat(n // 2, 1).to(device=device, dtype=dtype or book.dtype)

    student = sciflow.Flow(sciflow.nn.MLP(1, hidden=32), space=Euclidean(1), prediction="x1", source=codebook)
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    for _ in range(300):
        y = 2.0 * (torch.randint(0, 2, (64, 1, 1), generator=g) * 2.0 - 1.0) + 0.05 * torch.randn(64, 1, 1, generator=g)
        loss = imle_loss(student, y.view(1, 64, 1), candidates=2, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = student.sample(2, sampler="euler", steps=1).x.squeeze(-1)
    assert sorted(out.tolist()) == pytest.approx([-2.0, 2.0], abs=0.1), out


def test_annealed_imle_loss_is_the_softmin_weighted_distance_and_hard_at_zero():
    """With T > 0 each target's distances to the M candidates are averaged with weights softmax(-d / T);
    T = 0 is the hard min and a negative T is refused."""
    flow = sciflow.Flow(_StandStill(), space=Euclidean((3,)), prediction="velocity")
    G, S, M = 2, 4, 5
    y = torch.randn(G, S, 3, generator=torch.Generator().manual_seed(0))
    x = flow.sample_source(G * M, generator=torch.Generator().manual_seed(1)).view(G, M, 3)
    d = ((y[:, :, None] - x[:, None]) ** 2).mean(-1)  # (G, S, M)
    for T in (0.3, 2.0):
        loss = imle_loss(flow, y, candidates=M, generator=torch.Generator().manual_seed(1), temperature=T)
        expect = (torch.softmax(-d / T, dim=2) * d).sum(2).mean()
        assert loss.item() == pytest.approx(expect.item(), rel=1e-5)
        assert loss.item() > d.min(dim=2).values.mean().item()  # soft assignment >= hard min
    hard = imle_loss(flow, y, candidates=M, generator=torch.Generator().manual_seed(1), temperature=0.0)
    assert hard.item() == pytest.approx(d.min(dim=2).values.mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        imle_loss(flow, y, candidates=M, temperature=-1.0)


def test_linear_annealing_reaches_hard_assignment_at_its_last_step():
    from sciflow.distill import linear_annealing

    assert [linear_annealing(s, 2.0, 4) for s in (0, 1, 4, 9)] == [2.0, 1.5, 0.0, 0.0]
    with pytest.raises(ValueError, match="annealing steps"):
        linear_annealing(0, 1.0, 0)


class _TwoHypotheses(torch.nn.Module):
    """x1-prediction that is one free scalar per code: code -1 -> theta[0], code +1 -> theta[1]."""

    def __init__(self, start):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor(start))

    def forward(self, x, t, cond=None):
        return torch.where(x > 0, self.theta[1], self.theta[0])


def _fit_two_hypotheses(temperature_at):
    """Both hypotheses start right of data at +-2, so the nearer one wins every target under hard WTA."""
    codes = torch.tensor([[-1.0], [1.0]])

    def codebook(n, cond=None, device=None, dtype=None, generator=None):
        return codes.repeat(n // 2, 1)

    student = sciflow.Flow(_TwoHypotheses([3.0, 5.0]), space=Euclidean(1), prediction="x1", source=codebook)
    opt = torch.optim.SGD(student.parameters(), lr=0.2)
    y = torch.tensor([-2.0, 2.0]).repeat(32).view(1, 64, 1)
    for step in range(400):
        loss = imle_loss(student, y, candidates=2, temperature=temperature_at(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return sorted(student.model.theta.tolist())


def test_annealing_revives_a_hypothesis_that_hard_winner_takes_all_leaves_dead():
    """Hard WTA: the hypothesis at 5 never wins and stays there; annealed from T = 20 (above the critical
    temperature 2 var = 8 of squared distances, Perera et al. 2024) both hypotheses first merge at the data
    mean and then split onto the two modes."""
    from sciflow.distill import linear_annealing

    hard = _fit_two_hypotheses(lambda step: 0.0)
    assert hard == pytest.approx([0.0, 5.0], abs=0.01)  # one at the data mean, one dead
    annealed = _fit_two_hypotheses(lambda step: linear_annealing(step, 20.0, 300))
    assert annealed == pytest.approx([-2.0, 2.0], abs=0.05), annealed


def test_student_init_copies_the_teacher_keeps_new_modules_and_refuses_dropped_weights(capsys):
    from sciflow.training.distill import _init_student

    torch.manual_seed(0)
    teacher = torch.nn.ModuleDict({"body": torch.nn.Linear(3, 3)})
    student = torch.nn.ModuleDict({"body": torch.nn.Linear(3, 3), "extra": torch.nn.Linear(3, 2)})
    extra = student["extra"].weight.detach().clone()
    _init_student(student, teacher)
    assert torch.equal(student["body"].weight, teacher["body"].weight)
    assert torch.equal(student["extra"].weight, extra)
    assert "2 student tensors are not in the teacher" in capsys.readouterr().out
    with pytest.raises(ValueError, match="the teacher has weights the student lacks: \\['extra"):
        _init_student(teacher, student)
