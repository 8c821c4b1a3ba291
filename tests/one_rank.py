"""A world of one rank: a one-process gloo group runs the hooks' real collectives, on a
model small enough to train in milliseconds."""

from __future__ import annotations

from datetime import timedelta

import pytest
import torch.distributed as dist

from minicluster.core.config import TrainerSettings
from minicluster.trainer.data import build_stream

SETTINGS = TrainerSettings(
    model="transformer", hidden_size=32, layers=2, heads=4, vocab_size=32, seq_len=16,
    dataset_size=64, batch_size=4,
)  # fmt: skip


@pytest.fixture
def group():
    dist.init_process_group(
        "gloo", store=dist.HashStore(), rank=0, world_size=1, timeout=timedelta(seconds=30)
    )
    yield
    dist.destroy_process_group()


def batch():
    """The first batch of SETTINGS' data, rank 0 of 1."""
    s = SETTINGS
    return build_stream(s.dataset_size, s.seq_len, s.vocab_size, 0, s.batch_size, 0, 1).next_batch()
