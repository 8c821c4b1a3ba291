"""Split N work items into contiguous shards, one per rank."""

from __future__ import annotations


def shard_bounds(total: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, end) of `rank`'s shard; the first `total % world_size` shards get one more."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of {world_size}")
    base, extra = divmod(total, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def sum_of_squares(start: int, end: int) -> int:
    """The work itself: sum of i*i over [start, end), exactly (Python integers)."""
    return sum(i * i for i in range(start, end))
