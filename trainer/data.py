"""The synthetic dataset and how it is split across ranks.

`SyntheticSequences` are walks on a fixed random Markov chain: every token has two
possible successors, taken with probability 3/4 and 1/4. The chain is a pure function of
the seed, the data is learnable (a model that learns the successor table reaches the
chain's entropy, ~0.56 nats, from ln(vocab_size) at the start), and nothing is read from
disk, so every Mini builds the identical dataset.

Sharding is torch's `DistributedSampler` (disjoint, complete, a fresh permutation per
epoch from seed + epoch); `ResumableSampler` adds a start offset so a restarted job carries
on mid-epoch, and `BatchStream` cuts each rank's shard into fixed-size batches and
remembers where it is.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import BatchSampler, Dataset, DistributedSampler

from minicluster.core.config import ConfigError

LIKELY_SUCCESSOR_PROBABILITY = 0.75


class SyntheticSequences(Dataset):
    def __init__(self, size: int, seq_len: int, vocab_size: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        successors = torch.randint(0, vocab_size, (vocab_size, 2), generator=generator)
        tokens = torch.empty(size, seq_len + 1, dtype=torch.long)
        tokens[:, 0] = torch.randint(0, vocab_size, (size,), generator=generator)
        unlikely = torch.rand(size, seq_len, generator=generator) >= LIKELY_SUCCESSOR_PROBABILITY
        for t in range(seq_len):
            tokens[:, t + 1] = successors[tokens[:, t], unlikely[:, t].long()]
        self.tokens = tokens
        self.successors = successors

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = self.tokens[index]
        return row[:-1], row[1:]

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and next-token targets for these samples, gathered in one indexing op."""
        rows = self.tokens[torch.tensor(indices, dtype=torch.long)]
        return rows[:, :-1], rows[:, 1:]

    @staticmethod
    def entropy_floor() -> float:
        """The loss (nats/token) of a model that knows the chain exactly."""
        p = LIKELY_SUCCESSOR_PROBABILITY
        return -(p * math.log(p) + (1 - p) * math.log(1 - p))


class ResumableSampler(DistributedSampler):
    """DistributedSampler that can begin an epoch `start_index` samples in."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int):
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False
        )
        self.start_index = 0

    def __iter__(self):
        return iter(list(super().__iter__())[self.start_index :])

    def __len__(self) -> int:
        return self.num_samples - self.start_index


class BatchStream:
    """This rank's batches, epoch after epoch; `state_dict()` says where it stands.

    Every rank gets the same number of full batches per epoch (DistributedSampler pads
    the shards to equal length, the short last batch is dropped), so all ranks agree on
    the epoch at every step and a step count alone fixes the position.
    """

    def __init__(self, dataset: SyntheticSequences, sampler: ResumableSampler, batch_size: int):
        self.dataset, self.sampler, self.batch_size = dataset, sampler, batch_size
        self.batches_per_epoch = sampler.num_samples // batch_size
        if self.batches_per_epoch == 0:
            raise ConfigError(
                "settings",
                "trainer.dataset_size",
                f"{len(dataset)} samples over {sampler.num_replicas} ranks leaves fewer than "
                f"batch_size={batch_size} per rank",
            )
        self.epoch = 0
        self.position = 0  # samples of this epoch already handed out
        self._batches = None

    def next_indices(self) -> list[int]:
        while True:
            if self._batches is None:
                self.sampler.set_epoch(self.epoch)
                self.sampler.start_index = self.position
                self._batches = iter(BatchSampler(self.sampler, self.batch_size, drop_last=True))
            indices = next(self._batches, None)
            if indices is not None:
                self.position += len(indices)
                return indices
            self.epoch, self.position, self._batches = self.epoch + 1, 0, None

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dataset.batch(self.next_indices())

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position, self._batches = int(state["epoch"]), int(state["position"]), None


def build_stream(
    size: int, seq_len: int, vocab_size: int, seed: int, batch_size: int, rank: int, world: int
) -> BatchStream:
    dataset = SyntheticSequences(size, seq_len, vocab_size, seed)
    sampler = ResumableSampler(dataset, num_replicas=world, rank=rank, seed=seed)
    return BatchStream(dataset, sampler, batch_size)
