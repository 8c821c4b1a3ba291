"""Shard a computation across every rank, combine the results, and check them against the
single-process answer. Exits 1 on a mismatch.

    torchrun --nproc-per-node 2 run_distributed.py --items 200000
    minicluster run-job --local --workdir examples/sharding -- python run_distributed.py
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.distributed as dist
from common import shard_bounds, sum_of_squares


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=200_000)
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    try:
        start, end = shard_bounds(args.items, rank, world_size)
        # Partial sums stay exact in int64 for the default size (< 2**63).
        total = torch.tensor([sum_of_squares(start, end)], dtype=torch.int64)
        dist.all_reduce(total)
        counts = [torch.zeros(1, dtype=torch.int64) for _ in range(world_size)]
        dist.all_gather(counts, torch.tensor([end - start], dtype=torch.int64))

        expected = sum_of_squares(0, args.items)
        covered = sum(int(c) for c in counts)
        ok = int(total) == expected and covered == args.items
        print(
            f"rank {rank}/{world_size}: items [{start}, {end}), all-reduced sum {int(total)}, "
            f"expected {expected}, items covered {covered}/{args.items}: "
            + ("OK" if ok else "MISMATCH"),
            flush=True,
        )
        return 0 if ok else 1
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
