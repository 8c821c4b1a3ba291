"""An ordinary small DDP training script: a two-layer MLP on synthetic data, gloo.

torchrun --nproc-per-node 2 train.py --steps 50
minicluster run-job --local --workdir examples/ddp_plain -- python train.py --steps 50
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP


def make_model(features: int, hidden: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.05)
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)  # the same initial weights on every rank
    model = DDP(make_model(args.features, args.hidden, args.classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    data = torch.Generator().manual_seed(1000 + rank)  # each rank its own batches
    grad_bytes = sum(p.numel() * p.element_size() for p in model.parameters())

    try:
        for step in range(1, args.steps + 1):
            x = torch.randn(args.batch_size, args.features, generator=data)
            y = torch.randint(0, args.classes, (args.batch_size,), generator=data)
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            if step % 10 == 0 or step == args.steps:
                # The mean loss over ranks: one 4-byte all-reduce per log step.
                mean = loss.detach().clone()
                dist.all_reduce(mean)
                mean /= dist.get_world_size()
                print(f"rank {rank} step {step}/{args.steps} loss {mean.item():.4f}", flush=True)
        print(f"rank {rank} done: {args.steps} steps, {grad_bytes} gradient bytes per step")
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
