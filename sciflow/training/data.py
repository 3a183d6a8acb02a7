"""Step-indexed data order so that a resumed run sees exactly the batches an uninterrupted one would.

The batch drawn at optimisation step k depends only on (seed, k, rank): each epoch is a permutation of
the dataset seeded by (seed, epoch), and the global batch of step k is the k-th slice of that stream,
split across ranks. Lightning restarts dataloader iteration on resume; the sampler asks the trainer for
its restored step when iteration begins.
"""
from __future__ import annotations

from typing import Callable, Iterator, List, Tuple

import torch
from torch.utils.data import Sampler


class StepBatchSampler(Sampler[List[int]]):
    """Infinite batch sampler indexed by optimisation step.

    Args:
        n_items: dataset length.
        batch_size: per-rank batch size.
        seed: base seed for the epoch permutations.
        placement: callable returning ``(start_step, rank, world_size)`` when iteration begins: the
            trainer's restored ``global_step`` and this process's shard of every global batch. Read lazily
            because DDP ranks and resumed steps are only known once the trainer has started.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int,
                 placement: Callable[[], Tuple[int, int, int]] = lambda: (0, 0, 1)):
        if n_items <= 0:
            raise ValueError("the training dataset is empty")
        self.n, self.b, self.seed = int(n_items), int(batch_size), int(seed)
        self.placement = placement

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def __iter__(self) -> Iterator[List[int]]:
        step, rank, world = (int(v) for v in self.placement())
        global_b = self.b * world
        cache_epoch, perm = -1, None
        while True:
            first = step * global_b + rank * self.b
            idx = []
            for pos in range(first, first + self.b):
                epoch, offset = divmod(pos, self.n)
                if epoch != cache_epoch:
                    cache_epoch, perm = epoch, self._permutation(epoch)
                idx.append(int(perm[offset]))
            yield idx
            step += 1


def step_generator(seed: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    """A generator seeded by (seed, step, rank) for the random draws (x0, t, dropout) of one step."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + step) * 4099 + rank)
    return g
