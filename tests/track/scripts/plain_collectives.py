"""Uses no minicluster API: known collectives, then two DDP steps.

torchrun ... plain_collectives.py [--fail-rank N]   (rank N raises at the end)
"""

import argparse

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fail-rank", type=int, default=-1)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    for _ in range(3):
        dist.all_reduce(torch.ones(1000))  # 3 x 4000 bytes
    for _ in range(2):
        dist.broadcast(torch.ones(500), src=0)  # 2 x 2000 bytes
    gathered = [torch.empty(100, dtype=torch.int64) for _ in range(world)]
    dist.all_gather(gathered, torch.full((100,), rank, dtype=torch.int64))  # 800 bytes
    dist.all_gather_into_tensor(torch.empty(64 * world), torch.ones(64))  # 256 bytes
    dist.reduce_scatter_tensor(torch.empty(32), torch.ones(32 * world))  # 32 * world * 4
    dist.barrier()
    dist.barrier()
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(10, 4))  # 44 float32 gradients
    for _ in range(2):
        model(torch.randn(3, 10)).sum().backward()
    if rank == args.fail_rank:
        raise ValueError(f"rank {rank} was told to fail")
    print(f"plain script done on rank {rank}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
