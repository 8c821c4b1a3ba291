"""Sharding the data across ranks: disjoint, complete, deterministic, resumable."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from minicluster.core.config import ConfigError, TrainerSettings
from minicluster.trainer.data import BatchStream, ResumableSampler, SyntheticSequences, build_stream
from minicluster.trainer.models import build_model, language_model_loss


def shards(size: int, world: int, epoch: int, seed: int = 0) -> list[list[int]]:
    dataset = SyntheticSequences(size, seq_len=4, vocab_size=8, seed=0)
    result = []
    for rank in range(world):
        sampler = ResumableSampler(dataset, num_replicas=world, rank=rank, seed=seed)
        sampler.set_epoch(epoch)
        result.append(list(sampler))
    return result


@pytest.mark.parametrize("world", [2, 3, 4])
def test_shards_are_disjoint_and_complete(world):
    size = 96  # divisible by 2, 3 and 4: no padding
    for epoch in (0, 1):
        parts = shards(size, world, epoch)
        assert {len(p) for p in parts} == {size // world}
        flat = list(itertools.chain.from_iterable(parts))
        assert len(flat) == len(set(flat)) == size
        assert set(flat) == set(range(size))


def test_uneven_shards_pad_with_repeats_only_as_far_as_needed():
    size, world = 10, 3
    parts = shards(size, world, epoch=0)
    flat = list(itertools.chain.from_iterable(parts))
    assert {len(p) for p in parts} == {math.ceil(size / world)}  # equal length: equal steps
    assert set(flat) == set(range(size))
    assert len(flat) - len(set(flat)) == world * math.ceil(size / world) - size


def test_order_is_a_function_of_seed_and_epoch():
    assert shards(64, 2, epoch=0) == shards(64, 2, epoch=0)
    assert shards(64, 2, epoch=0) != shards(64, 2, epoch=1)
    assert shards(64, 2, epoch=0, seed=1) != shards(64, 2, epoch=0, seed=0)


def stream(rank: int, world: int, batch: int = 4, size: int = 40) -> BatchStream:
    return build_stream(
        size, seq_len=4, vocab_size=8, seed=3, batch_size=batch, rank=rank, world=world
    )


def test_each_step_gives_ranks_disjoint_batches_and_an_epoch_covers_the_data():
    world, batch, size = 2, 4, 40  # 20 per rank: 5 batches per epoch, nothing dropped
    streams = [stream(r, world, batch, size) for r in range(world)]
    seen = []
    for _ in range(streams[0].batches_per_epoch):
        batches = [s.next_indices() for s in streams]
        assert not set(batches[0]) & set(batches[1])
        assert {len(b) for b in batches} == {batch}
        seen += batches[0] + batches[1]
    assert sorted(seen) == list(range(size))
    assert {s.epoch for s in streams} == {0}
    streams[0].next_indices()
    assert streams[0].epoch == 1


@pytest.mark.parametrize("consumed", [0, 2, 4, 5, 7, 13])  # 5 batches make an epoch
def test_a_restored_stream_carries_on_exactly_where_the_old_one_stopped(consumed):
    original = stream(rank=1, world=2)
    for _ in range(consumed):
        original.next_indices()
    saved = original.state_dict()
    resumed = stream(rank=1, world=2)
    resumed.load_state_dict(saved)
    assert [resumed.next_indices() for _ in range(8)] == [original.next_indices() for _ in range(8)]
    assert resumed.state_dict() == original.state_dict()


def test_the_batch_tensors_are_inputs_and_next_token_targets():
    s = stream(rank=0, world=1)
    indices = s.next_indices()
    inputs, targets = s.dataset.batch(indices)
    rows = s.dataset.tokens[torch.tensor(indices)]
    assert torch.equal(inputs, rows[:, :-1]) and torch.equal(targets, rows[:, 1:])
    assert inputs.shape == (4, 4)


def test_the_dataset_is_a_pure_function_of_the_seed_and_follows_its_chain():
    a = SyntheticSequences(64, seq_len=12, vocab_size=16, seed=5)
    b = SyntheticSequences(64, seq_len=12, vocab_size=16, seed=5)
    c = SyntheticSequences(64, seq_len=12, vocab_size=16, seed=6)
    assert torch.equal(a.tokens, b.tokens) and not torch.equal(a.tokens, c.tokens)
    for row in a.tokens.tolist():
        for current, following in itertools.pairwise(row):
            assert following in a.successors[current].tolist()


def test_too_little_data_for_the_batch_is_a_config_error():
    with pytest.raises(ConfigError, match=r"trainer\.dataset_size: 10 samples over 2 ranks"):
        stream(rank=0, world=2, batch=8, size=10)


@pytest.mark.parametrize("model", ["mlp", "transformer"])
def test_the_data_is_learnable_loss_falls_to_the_chains_entropy(model):
    torch.manual_seed(0)
    settings = TrainerSettings(
        model=model, hidden_size=32, layers=1, heads=2, vocab_size=32, seq_len=16,
        dataset_size=2048, batch_size=32,
    )  # fmt: skip
    net = build_model(settings)
    optimizer = torch.optim.AdamW(net.parameters(), lr=settings.learning_rate)
    data = build_stream(2048, 16, 32, 0, 32, 0, 1)
    losses = []
    for _ in range(120):
        inputs, targets = data.next_batch()
        loss = language_model_loss(net(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    floor = SyntheticSequences.entropy_floor()
    assert losses[0] > math.log(32) - 0.5  # starts near chance
    assert sum(losses[-10:]) / 10 < floor + 0.2, (floor, losses[-10:])
