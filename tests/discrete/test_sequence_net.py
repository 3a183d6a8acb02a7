"""SequenceTransformer options (depthwise conv, relative-position bias) and a Markov-chain posterior oracle."""
import math

import pytest
import torch
from oracles import JointOracle, markov_posterior_logits

from sciflow import Flow
from sciflow.nn.sequence import LocalAttentionBlock, SequenceTransformer
from sciflow.paths.discrete import MixturePath
from sciflow.spaces import Tokens
from sciflow.tasks.discrete import random_markov_chain, sample_markov


def _chain_joint(initial, transition, length):
    import itertools

    states = torch.tensor(list(itertools.product(range(initial.shape[0]), repeat=length)))
    p = initial[states[:, 0]]
    for i in range(1, length):
        p = p * transition[states[:, i - 1], states[:, i]]
    return p


def test_markov_posterior_oracle_matches_brute_force_joint():
    v, length = 3, 5
    initial, transition = random_markov_chain(v, seed=3, concentration=0.7)
    path = MixturePath(v, source="mask")
    joint = JointOracle(_chain_joint(initial, transition, length), length, v, path)
    g = torch.Generator().manual_seed(0)
    x1 = sample_markov(64, length, initial, transition, seed=1)
    x_t = path.sample(torch.full_like(x1, v), x1, torch.rand(64, generator=g, dtype=torch.float64), generator=g).x_t
    t = torch.full((64,), 0.5, dtype=torch.float64)
    assert torch.allclose(markov_posterior_logits(x_t, v, initial, transition).exp(), joint(x_t, t).exp(), atol=1e-10)


def test_default_network_is_the_stock_encoder_and_options_switch_blocks():
    plain = SequenceTransformer(8, 5, 4, d_model=16, depth=2, heads=2)
    assert isinstance(plain.encoder, torch.nn.TransformerEncoder)
    local = SequenceTransformer(8, 5, 4, d_model=16, depth=2, heads=2, conv_kernel=3, rel_pos=True)
    assert all(isinstance(b, LocalAttentionBlock) for b in local.encoder)
    x, t = torch.randint(0, 5, (3, 8)), torch.rand(3)
    assert local(x, t).shape == (3, 8, 4)
    with pytest.raises(ValueError, match="conv_kernel"):
        SequenceTransformer(8, 5, 4, conv_kernel=4)
    with pytest.raises(ValueError, match="divisible"):
        LocalAttentionBlock(10, 3, 8)


def test_relative_bias_and_conv_are_shift_equivariant_in_the_interior():
    """Without absolute positions, conv + relative attention bias only see offsets: shifting a sequence by one
    shifts the outputs (away from the borders, where padding and the attention window differ)."""
    torch.manual_seed(0)
    block = LocalAttentionBlock(16, 2, 32, conv_kernel=3, rel_pos=True).eval()
    with torch.no_grad():
        block.rel_bias.normal_(0, 3.0)  # a strongly local bias: far-away tokens barely matter
        block.rel_bias[:, :31 - 3] = -1e4
        block.rel_bias[:, 31 + 4:] = -1e4
    h = torch.randn(1, 33, 16)
    a, b = block(h[:, :32]), block(h[:, 1:])
    assert torch.allclose(a[:, 8:24], b[:, 7:23], atol=1e-5)


def test_local_network_learns_markov_posterior_beyond_unigram():
    """On a 5-symbol chain the conv/relative-position network beats the best position-independent
    (unigram) predictor by most of the gap to the exact posterior within a short training."""
    torch.manual_seed(0)
    v, length = 5, 16
    initial, transition = random_markov_chain(v, seed=0, concentration=0.3)
    data = sample_markov(4096, length, initial, transition, seed=1)
    path = MixturePath(v, source="mask")
    model = SequenceTransformer(length, v + 1, v, d_model=32, depth=1, heads=2, conv_kernel=3, rel_pos=True)
    flow = Flow(model, space=Tokens(length, v, source="mask"), path=path, prediction="logits")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = flow.loss(data[torch.randint(0, data.shape[0], (64,))])
        opt.zero_grad()
        loss.backward()
        opt.step()
    g = torch.Generator().manual_seed(5)
    x1 = sample_markov(2048, length, initial, transition, seed=2)
    s = path.sample(torch.full_like(x1, v), x1, torch.rand(2048, generator=g), generator=g)
    with torch.no_grad():
        net = path.loss(model(s.x_t, s.t), s).mean().item()
    oracle = path.loss(markov_posterior_logits(s.x_t, v, initial, transition), s).mean().item()
    freq = torch.bincount(data.flatten(), minlength=v).double() / data.numel()
    unigram = path.loss(freq.log().expand(*s.x_t.shape, v), s).mean().item()
    assert oracle < unigram - 0.1
    assert net - oracle < 0.25 * (unigram - oracle), (net, oracle, unigram)


def test_benchmark_partial_run_keeps_recorded_part_a_once(tmp_path):
    from sciflow.benchmarks.discrete import run

    md = tmp_path / "B.md"
    md.write_text("# b\n\n<!-- begin:discrete -->\n## Discrete\n\n### a. Simplex-dimension toy\n\ntext\n\n| K |\n|---|\n"
                  "| 20 |\n\n### b. Markov-chain sequences\n\nold b\n<!-- end:discrete -->\n")
    for _ in range(2):  # idempotent: the "recorded earlier" marker is added once
        run({"parts": [], "notes": "N"}, benchmarks_md=str(md))
        text = md.read_text()
        assert text.count("Recorded by an earlier") == 1 and "| 20 |" in text and "old b" not in text
        assert text.rstrip().endswith("N\n<!-- end:discrete -->") and "'parts=[]'" in text
