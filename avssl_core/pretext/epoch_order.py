"""The order in which a rank visits the pairs of an epoch: shuffled, sharded, resumable.

One permutation of ``range(num_samples)`` per (seed, epoch), the same on every rank. Rank r takes
positions r, r + W, r + 2W, ... of it (W = world size). After k steps of ``batch_size`` on every rank the
ranks together have consumed exactly the first ``k * batch_size * W`` positions, so resuming at step k
means starting every rank at that point of the same permutation: the remainder is exactly what an
uninterrupted run would still have visited.

No sample is repeated and none dropped: when ``num_samples`` is not a multiple of W, the permutation is
padded with ``PAD_INDEX`` (at most W - 1 of them, at its end, at most one per rank) so that every rank
runs the same number of steps, which DDP needs. PairDataset turns a pad into a ``PaddingSample`` that
``collate_skipping_failures`` drops, so the last batch of some ranks is one sample short (and empty in
the rare case that the pad is the only sample left on that rank: the collate then returns a batch without
tensors, which the trainer must step over while still joining the collective calls).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

ORDER_SEED_TAG = 0x4F524452  # "ORDR": keeps this stream apart from the pair recipes' streams
PAD_INDEX = -1


def epoch_permutation(num_samples: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The epoch's visiting order, identical on every rank and worker."""
    if not shuffle:
        return np.arange(num_samples, dtype=np.int64)
    return np.random.default_rng([ORDER_SEED_TAG, seed, epoch]).permutation(num_samples).astype(np.int64)


class ResumableDistributedSampler(Sampler):
    """Yields this rank's positions of the epoch (``(epoch, i)`` pairs when ``with_epoch``).

    ``start_step`` (batches already done by each rank in ``epoch``) applies to that epoch only;
    ``set_epoch`` to any other epoch starts it from the beginning. ``with_epoch=True`` lets a dataset
    living in persistent workers know the epoch without ``set_epoch`` reaching them.
    """

    def __init__(self, num_samples: int, *, seed: int, epoch: int = 0, rank: int = 0, world_size: int = 1,
                 start_step: int = 0, batch_size: int = 1, shuffle: bool = True,
                 with_epoch: bool = False) -> None:
        if num_samples <= 0 or batch_size <= 0 or world_size <= 0:
            raise ValueError("num_samples, batch_size and world_size must be positive")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        if start_step < 0:
            raise ValueError("start_step must be >= 0")
        self.num_samples, self.seed, self.rank, self.world_size = num_samples, seed, rank, world_size
        self.batch_size, self.shuffle, self.with_epoch = batch_size, shuffle, with_epoch
        self.epoch = epoch
        self._resume_epoch, self._resume_step = epoch, start_step
        if start_step > self.steps_per_epoch:
            raise ValueError(f"start_step {start_step} beyond the epoch's {self.steps_per_epoch} steps")

    @property
    def samples_per_rank(self) -> int:
        """Positions per rank in a whole epoch, pads included (the same on every rank)."""
        return -(-self.num_samples // self.world_size)

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.samples_per_rank // self.batch_size)

    @property
    def start_step(self) -> int:
        return self._resume_step if self.epoch == self._resume_epoch else 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def positions(self) -> np.ndarray:
        """This rank's remaining positions in the epoch (PAD_INDEX marks padding)."""
        order = epoch_permutation(self.num_samples, self.seed, self.epoch, self.shuffle)
        padded = np.full(self.samples_per_rank * self.world_size, PAD_INDEX, dtype=np.int64)
        padded[: self.num_samples] = order
        consumed = self.start_step * self.batch_size * self.world_size
        return padded[consumed + self.rank:: self.world_size]

    def __iter__(self) -> Iterator[int] | Iterator[tuple[int, int]]:
        positions = self.positions().tolist()
        if self.with_epoch:
            return iter([(self.epoch, p) for p in positions])
        return iter(positions)

    def __len__(self) -> int:
        return max(0, self.samples_per_rank - self.start_step * self.batch_size)
