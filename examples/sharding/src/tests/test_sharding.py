"""Checks the sharding helper; runs as `python src/tests/test_sharding.py`,
`python -m src.tests.test_sharding`, or under pytest. Exits non-zero on a failure."""

from __future__ import annotations

import itertools
import os
import sys

from common import shard_bounds, sum_of_squares


def test_shards_cover_every_item_once() -> None:
    for total in (0, 1, 7, 100, 101):
        for world_size in (1, 2, 3, 8):
            bounds = [shard_bounds(total, r, world_size) for r in range(world_size)]
            assert bounds[0][0] == 0 and bounds[-1][1] == total
            assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
            sizes = [end - start for start, end in bounds]
            assert max(sizes) - min(sizes) <= 1


def test_shard_sums_add_up() -> None:
    total, world_size = 1000, 3
    parts = [sum_of_squares(*shard_bounds(total, r, world_size)) for r in range(world_size)]
    assert sum(parts) == sum_of_squares(0, total) == (total - 1) * total * (2 * total - 1) // 6


def main() -> int:
    tests = [test_shards_cover_every_item_once, test_shard_sums_add_up]
    for test in tests:
        test()
    rank = os.environ.get("RANK", "0")
    print(f"rank {rank}: {len(tests)} sharding tests passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
