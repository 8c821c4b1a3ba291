"""examples/ddp_plain/train.py with a handful of minicluster.track lines (marked "track"):
progress, steps, phases, loss and the gradient all-reduce in Prometheus, Grafana and the
run-job summary. Under a plain torchrun they log to stdout and serve /metrics locally.

    minicluster run-job --local --workdir examples/ddp_track -- python train.py --steps 50
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from minicluster import track


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
    t = track.start(total_steps=args.steps)  # track
    t.watch(model)  # track: counts DDP's gradient all-reduce

    try:
        for step in range(1, args.steps + 1):
            with t.phase("data"):  # track
                x = torch.randn(args.batch_size, args.features, generator=data)
                y = torch.randint(0, args.classes, (args.batch_size,), generator=data)
            optimizer.zero_grad()
            with t.phase("forward"):  # track
                loss = loss_fn(model(x), y)
            with t.phase("backward"):  # track (the all-reduce overlaps the backward pass)
                loss.backward()
            with t.phase("optimizer"):  # track
                optimizer.step()
            t.loss(loss)  # track: stays on the device, read at log steps
            t.step(samples=args.batch_size)  # track
            if step % 10 == 0 or step == args.steps:
                # The mean loss over ranks: one 4-byte all-reduce per log step.
                mean = loss.detach().clone()
                dist.all_reduce(mean)
                mean /= dist.get_world_size()
                print(f"rank {rank} step {step}/{args.steps} loss {mean.item():.4f}", flush=True)
        print(f"rank {rank} done: {args.steps} steps, {grad_bytes} gradient bytes per step")
        return 0
    finally:
        t.close()  # track: final counters, then linger for the last scrape
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
