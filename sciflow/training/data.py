"""Step-indexed data order so that a resumed run sees exactly the batches an uninterrupted one would.

The batch drawn at optimisation step k depends only on (seed, k, rank): each epoch is a permutation of
the dataset seeded by (seed, epoch), and the global batch of step k is the k-th slice of that stream,
split across ranks. Lightning restarts dataloader iteration on resume; the sampler asks the trainer for
its restored step when iteration begins.
"""
from __future__ import annotations

from typing import Callable, Iterator, List, Tuple

import torch
from torch.utils.data import Dataset, Sampler, TensorDataset


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
        cached = getattr(self, "_cached", None)
        if cached is not None and cached[0] == epoch:
            return cached[1]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(self.n, generator=g)
        self._cached = (epoch, perm)
        return perm

    def indices(self, step: int, rank: int, world: int) -> torch.Tensor:
        """Dataset indices ``(batch_size,)`` of this rank's share of the global batch of ``step``."""
        first = step * self.b * world + rank * self.b
        pos = torch.arange(first, first + self.b)
        epochs = pos // self.n
        out = torch.empty(self.b, dtype=torch.long)
        for epoch in epochs.unique().tolist():  # a batch spans at most a few epochs
            sel = epochs == epoch
            out[sel] = self._permutation(epoch)[pos[sel] - epoch * self.n]
        return out

    def __iter__(self) -> Iterator[List[int]]:
        step, rank, world = (int(v) for v in self.placement())
        while True:
            yield self.indices(step, rank, world).tolist()
            step += 1


class TensorBatches(Dataset):
    """Batch-at-once view of a ``TensorDataset``: ``view[idx]`` with an index list returns the tuple of
    indexed tensors. Avoids per-item fetching and collation, which cost more than a small model's step."""

    def __init__(self, dataset: TensorDataset):
        self.tensors = dataset.tensors

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, idx):
        idx = torch.as_tensor(idx, dtype=torch.long)
        return tuple(t[idx] for t in self.tensors)


def step_generator(seed: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    """A generator seeded by (seed, step, rank) for the random draws (x0, t, dropout) of one step."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + step) * 4099 + rank)
    return g
